//! `fields=` partial responses, as Google's front end serves them: a
//! selection such as `id,threadId`, `messages(id,threadId),nextPageToken`
//! or `payload/headers(name,value)` keeps only the named fields of the
//! answer (arrays are looked through: a selection applies to each element).
//!
//! Names are checked against the response's schema (Gmail's discovery
//! document): a name the resource does not have is a 400 "Invalid field
//! selection", as Google's front end answers, not silently nothing. A field
//! the schema has but this answer lacks (no `nextPageToken` on the last
//! page) is simply absent.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A parsed selection: each name maps to what is selected below it; an
/// empty map selects the whole field.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Selection(BTreeMap<String, Selection>);

impl Selection {
    fn whole(&self) -> bool {
        self.0.is_empty()
    }

    /// Merge `other` into this one (`a/b,a/c` selects both; a whole field
    /// wins over a part of it).
    fn merge(&mut self, other: Selection) {
        if self.whole() {
            return;
        }
        if other.whole() {
            self.0.clear();
            return;
        }
        for (k, v) in other.0 {
            match self.0.get_mut(&k) {
                Some(mine) => mine.merge(v),
                None => {
                    self.0.insert(k, v);
                }
            }
        }
    }

    fn insert(&mut self, name: String, below: Selection) {
        match self.0.get_mut(&name) {
            Some(mine) if !mine.whole() => mine.merge(below),
            Some(_) => {}
            None => {
                self.0.insert(name, below);
            }
        }
    }

    /// Keep only the selected parts of `v`.
    pub(crate) fn apply(&self, v: Value) -> Value {
        match v {
            Value::Array(items) => Value::Array(items.into_iter().map(|i| self.apply(i)).collect()),
            Value::Object(obj) => {
                let star = self.0.get("*");
                let mut out = Map::new();
                for (k, v) in obj {
                    match self.0.get(&k).or(star) {
                        Some(sel) if sel.whole() => {
                            out.insert(k, v);
                        }
                        Some(sel) => {
                            out.insert(k, sel.apply(v));
                        }
                        None => {}
                    }
                }
                Value::Object(out)
            }
            scalar => scalar,
        }
    }
}

/// Parse `fields` and check it against the response schema `root` (None:
/// the method answers no body, so no field can be selected). The error is
/// the text to name in "Invalid field selection ...".
pub(crate) fn parse(fields: &str, root: Option<&'static str>) -> Result<Selection, String> {
    let mut p = Parser {
        s: fields.as_bytes(),
        i: 0,
    };
    let sel = p.selection()?;
    if p.i != p.s.len() {
        return Err(fields[p.i..].to_string());
    }
    check(&sel, root)?;
    Ok(sel)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'*')
        {
            self.i += 1;
        }
        if self.i == start {
            let rest = String::from_utf8_lossy(&self.s[start..]).into_owned();
            return Err(if rest.is_empty() {
                "(an empty name)".into()
            } else {
                rest
            });
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// item (',' item)*
    fn selection(&mut self) -> Result<Selection, String> {
        let mut sel = Selection::default();
        loop {
            let (name, below) = self.item()?;
            sel.insert(name, below);
            if self.peek() == Some(b',') {
                self.i += 1;
            } else {
                return Ok(sel);
            }
        }
    }

    /// name ('/' name)* ['(' selection ')']
    fn item(&mut self) -> Result<(String, Selection), String> {
        let name = self.name()?;
        let below = match self.peek() {
            Some(b'/') => {
                self.i += 1;
                let (n, b) = self.item()?;
                let mut s = Selection::default();
                s.insert(n, b);
                s
            }
            Some(b'(') => {
                self.i += 1;
                let s = self.selection()?;
                if self.peek() != Some(b')') {
                    return Err(format!("{name}: a '(' without its ')'"));
                }
                self.i += 1;
                s
            }
            _ => Selection::default(),
        };
        Ok((name, below))
    }
}

fn check(sel: &Selection, schema: Option<&'static str>) -> Result<(), String> {
    for (name, below) in &sel.0 {
        let Some(schema) = schema else {
            return Err(name.clone());
        };
        if name == "*" {
            if !below.whole() {
                return Err(format!("*/{}", first(below)));
            }
            continue;
        }
        let Some((_, child)) = properties(schema).iter().find(|(n, _)| n == name) else {
            return Err(name.clone());
        };
        if !below.whole() {
            match child {
                Some(c) => check(below, Some(c)).map_err(|e| format!("{name}/{e}"))?,
                None => return Err(format!("{name}/{}", first(below))),
            }
        }
    }
    Ok(())
}

fn first(sel: &Selection) -> String {
    sel.0.keys().next().cloned().unwrap_or_default()
}

/// Fields of Gmail's response schemas (discovery document gmail.v1), with
/// the schema of each field that has sub-fields (arrays by their items).
fn properties(schema: &str) -> &'static [(&'static str, Option<&'static str>)] {
    match schema {
        "Profile" => &[
            ("emailAddress", None),
            ("historyId", None),
            ("messagesTotal", None),
            ("threadsTotal", None),
        ],
        "ListMessagesResponse" => &[
            ("messages", Some("Message")),
            ("nextPageToken", None),
            ("resultSizeEstimate", None),
        ],
        "Message" => &[
            (
                "classificationLabelValues",
                Some("ClassificationLabelValue"),
            ),
            ("historyId", None),
            ("id", None),
            ("internalDate", None),
            ("labelIds", None),
            ("payload", Some("MessagePart")),
            ("raw", None),
            ("sizeEstimate", None),
            ("snippet", None),
            ("threadId", None),
        ],
        "ClassificationLabelValue" => &[
            ("fields", Some("ClassificationLabelFieldValue")),
            ("labelId", None),
        ],
        "ClassificationLabelFieldValue" => &[("fieldId", None), ("selection", None)],
        "MessagePart" => &[
            ("body", Some("MessagePartBody")),
            ("filename", None),
            ("headers", Some("MessagePartHeader")),
            ("mimeType", None),
            ("partId", None),
            ("parts", Some("MessagePart")),
        ],
        "MessagePartBody" => &[("attachmentId", None), ("data", None), ("size", None)],
        "MessagePartHeader" => &[("name", None), ("value", None)],
        "ListThreadsResponse" => &[
            ("nextPageToken", None),
            ("resultSizeEstimate", None),
            ("threads", Some("Thread")),
        ],
        "Thread" => &[
            ("historyId", None),
            ("id", None),
            ("messages", Some("Message")),
            ("snippet", None),
        ],
        "ListLabelsResponse" => &[("labels", Some("Label"))],
        // Admin SDK Directory (discovery document admin.directory_v1).
        "Users" => &[
            ("etag", None),
            ("kind", None),
            ("nextPageToken", None),
            ("trigger_event", None),
            ("users", Some("User")),
        ],
        "User" => &[
            ("addresses", None),
            ("agreedToTerms", None),
            ("aliases", None),
            ("archivalTime", None),
            ("archived", None),
            ("changePasswordAtNextLogin", None),
            ("creationTime", None),
            ("customSchemas", None),
            ("customerId", None),
            ("deletionTime", None),
            ("emails", None),
            ("etag", None),
            ("externalIds", None),
            ("gender", None),
            ("guestAccountInfo", None),
            ("hashFunction", None),
            ("id", None),
            ("ims", None),
            ("includeInGlobalAddressList", None),
            ("ipWhitelisted", None),
            ("isAdmin", None),
            ("isDelegatedAdmin", None),
            ("isEnforcedIn2Sv", None),
            ("isEnrolledIn2Sv", None),
            ("isGuestUser", None),
            ("isMailboxSetup", None),
            ("keywords", None),
            ("kind", None),
            ("languages", None),
            ("lastLoginTime", None),
            ("locations", None),
            ("name", Some("UserName")),
            ("nonEditableAliases", None),
            ("notes", None),
            ("orgUnitPath", None),
            ("organizations", None),
            ("password", None),
            ("phones", None),
            ("posixAccounts", None),
            ("primaryEmail", None),
            ("recoveryEmail", None),
            ("recoveryPhone", None),
            ("relations", None),
            ("sshPublicKeys", None),
            ("suspended", None),
            ("suspensionReason", None),
            ("suspensionTime", None),
            ("thumbnailPhotoEtag", None),
            ("thumbnailPhotoUrl", None),
            ("websites", None),
        ],
        "UserName" => &[
            ("displayName", None),
            ("familyName", None),
            ("fullName", None),
            ("givenName", None),
        ],
        "Label" => &[
            ("color", Some("LabelColor")),
            ("id", None),
            ("labelListVisibility", None),
            ("messageListVisibility", None),
            ("messagesTotal", None),
            ("messagesUnread", None),
            ("name", None),
            ("threadsTotal", None),
            ("threadsUnread", None),
            ("type", None),
        ],
        "LabelColor" => &[("backgroundColor", None), ("textColor", None)],
        "ListHistoryResponse" => &[
            ("history", Some("History")),
            ("historyId", None),
            ("nextPageToken", None),
        ],
        "History" => &[
            ("id", None),
            ("labelsAdded", Some("HistoryLabelChange")),
            ("labelsRemoved", Some("HistoryLabelChange")),
            ("messages", Some("Message")),
            ("messagesAdded", Some("HistoryMessageChange")),
            ("messagesDeleted", Some("HistoryMessageChange")),
        ],
        "HistoryLabelChange" => &[("labelIds", None), ("message", Some("Message"))],
        "HistoryMessageChange" => &[("message", Some("Message"))],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({
            "messages": [{"id": "a", "threadId": "t", "labelIds": ["X"]}, {"id": "b", "threadId": "u"}],
            "nextPageToken": "7",
            "resultSizeEstimate": 2,
        })
    }

    #[test]
    fn the_common_forms_select_what_they_name() {
        let sel = parse("messages(id),nextPageToken", Some("ListMessagesResponse")).unwrap();
        assert_eq!(
            sel.apply(list()),
            json!({"messages": [{"id": "a"}, {"id": "b"}], "nextPageToken": "7"})
        );
        let sel = parse("messages/threadId", Some("ListMessagesResponse")).unwrap();
        assert_eq!(
            sel.apply(list()),
            json!({"messages": [{"threadId": "t"}, {"threadId": "u"}]})
        );
        let m = json!({"id": "a", "threadId": "t", "payload": {"mimeType": "text/plain",
            "headers": [{"name": "From", "value": "x"}]}});
        let sel = parse("id,threadId", Some("Message")).unwrap();
        assert_eq!(sel.apply(m.clone()), json!({"id": "a", "threadId": "t"}));
        let sel = parse("payload/headers", Some("Message")).unwrap();
        assert_eq!(
            sel.apply(m.clone()),
            json!({"payload": {"headers": [{"name": "From", "value": "x"}]}})
        );
        let sel = parse("payload/headers(value),payload/mimeType", Some("Message")).unwrap();
        assert_eq!(
            sel.apply(m.clone()),
            json!({"payload": {"mimeType": "text/plain", "headers": [{"value": "x"}]}})
        );
        let sel = parse("*", Some("Message")).unwrap();
        assert_eq!(sel.apply(m.clone()), m);
        let sel = parse("payload,payload/mimeType", Some("Message")).unwrap();
        assert_eq!(sel.apply(m.clone()), json!({"payload": m["payload"]}));
    }

    #[test]
    fn bad_selections_name_what_is_wrong() {
        for (fields, root, bad) in [
            ("ids", Some("Message"), "ids"),
            (
                "messages(id,bogus)",
                Some("ListMessagesResponse"),
                "messages/bogus",
            ),
            ("id/x", Some("Message"), "id/x"),
            (
                "messages(id",
                Some("ListMessagesResponse"),
                "messages: a '(' without its ')'",
            ),
            ("id,", Some("Message"), "(an empty name)"),
            ("id)", Some("Message"), ")"),
            ("id", None, "id"),
            ("a b", Some("Message"), " b"),
        ] {
            assert_eq!(parse(fields, root).unwrap_err(), bad, "{fields}");
        }
    }
}
