//! history.list records as changes, for `gmail.history` and `gmail.watch`.

use serde_json::Value;

/// What happened to a message in one history record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Deleted,
    LabelsAdded,
    LabelsRemoved,
}

impl ChangeKind {
    /// The name scripts see (`c.type`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Deleted => "deleted",
            ChangeKind::LabelsAdded => "labels_added",
            ChangeKind::LabelsRemoved => "labels_removed",
        }
    }
}

/// One change to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The record it came in; several changes can share one record.
    pub(crate) history_id: String,
    pub(crate) kind: ChangeKind,
    pub(crate) id: String,
    pub(crate) thread_id: String,
    /// Added: the message's labels; labels_*: the labels added or removed.
    pub(crate) labels: Vec<String>,
    /// labels_*: the message's labels after the change.
    pub(crate) message_labels: Option<Vec<String>>,
}

/// One history record as changes, in the API's order. Entries without a
/// message id are not changes anyone can act on and are left out.
pub(crate) fn changes_of(record: &Value) -> Vec<Change> {
    let hid = record["id"].as_str().unwrap_or("").to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let mut out = Vec::new();
    for (key, kind) in [
        ("messagesAdded", ChangeKind::Added),
        ("messagesDeleted", ChangeKind::Deleted),
        ("labelsAdded", ChangeKind::LabelsAdded),
        ("labelsRemoved", ChangeKind::LabelsRemoved),
    ] {
        for c in record[key].as_array().into_iter().flatten() {
            let m = &c["message"];
            let Some(id) = m["id"].as_str().filter(|id| !id.is_empty()) else {
                continue;
            };
            let (labels, message_labels) = match kind {
                ChangeKind::Added => (strings(&m["labelIds"]), None),
                ChangeKind::Deleted => (Vec::new(), None),
                _ => (strings(&c["labelIds"]), Some(strings(&m["labelIds"]))),
            };
            out.push(Change {
                history_id: hid.clone(),
                kind,
                id: id.to_string(),
                thread_id: m["threadId"].as_str().unwrap_or("").to_string(),
                labels,
                message_labels,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_gives_its_changes_in_order_and_drops_idless_ones() {
        let r = json!({
            "id": "42",
            "messagesAdded": [{"message": {"id": "a", "threadId": "t", "labelIds": ["INBOX"]}},
                              {"message": {"threadId": "t"}}],
            "labelsRemoved": [{"message": {"id": "a", "labelIds": []}, "labelIds": ["INBOX"]}],
        });
        let c = changes_of(&r);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].kind, c[0].id.as_str()), (ChangeKind::Added, "a"));
        assert_eq!(c[0].labels, ["INBOX"]);
        assert_eq!(c[1].kind, ChangeKind::LabelsRemoved);
        assert_eq!(c[1].message_labels.as_deref(), Some(&[][..]));
        assert!(c.iter().all(|c| c.history_id == "42"));
    }
}
