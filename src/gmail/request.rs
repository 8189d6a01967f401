//! Gmail calls as data: what to send, and which quota cost it carries.
//! Built here, sent by [`super::Client`] alone or inside a batch.

use serde_json::{json, Value};

/// Google's method name of a call; it sets the quota cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Method {
    GetProfile,
    MessagesList,
    MessagesGet,
    MessagesBatchModify,
    MessagesTrash,
    LabelsList,
    HistoryList,
    /// messages.import and messages.insert (25 units each).
    MessagesImport,
    MessagesInsert,
    /// Any other users/{user}/... call.
    Other,
}

/// messages.get formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Minimal,
    Metadata,
    Full,
    Raw,
}

impl Format {
    const NAMES: &'static [&'static str] = &["minimal", "metadata", "full", "raw"];

    pub(crate) fn parse(s: &str) -> Option<Format> {
        match s {
            "minimal" => Some(Format::Minimal),
            "metadata" => Some(Format::Metadata),
            "full" => Some(Format::Full),
            "raw" => Some(Format::Raw),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        Format::NAMES[self as usize]
    }
}

/// One call under `users/{user}/`.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Which API call this is (prices it against the quota).
    pub(crate) call: Method,
    /// The HTTP verb: GET, POST, PUT, PATCH or DELETE.
    pub(crate) verb: &'static str,
    /// Path below `users/{user}/`, segments already percent-encoded.
    pub(crate) path: String,
    query: Vec<(String, String)>,
    pub(crate) body: Option<Value>,
    /// The message or thread this call is about: its answer must carry
    /// this id, or it is not the answer asked for.
    pub(crate) answer_id: Option<String>,
    /// A message sent as a media upload (messages.import / insert): the
    /// RFC 822 bytes as they are, and `body` the metadata (labelIds).
    pub(crate) media: Option<bytes::Bytes>,
}

/// `mediaUpload.maxSize` of messages.import and messages.insert in the
/// discovery document (gmail.v1): 150 MiB.
pub const MAX_UPLOAD: usize = 157_286_400;

/// How Gmail dates an imported message (`internalDateSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateSource {
    /// The Date header, when it is valid (import's default).
    Header,
    /// When Gmail receives it (insert's default).
    Received,
}

/// The parameters of one messages.import / insert.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    /// insert (no spam classifier, no filters) instead of import.
    pub insert: bool,
    pub label_ids: Vec<String>,
    pub date: DateSource,
    /// import only: keep it out of SPAM whatever the classifier says.
    pub never_mark_spam: bool,
}

/// Percent-encode one path segment (ids, label ids, emails).
pub(crate) fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl Request {
    fn new(call: Method, verb: &'static str, path: String) -> Request {
        Request {
            call,
            verb,
            path,
            query: Vec::new(),
            body: None,
            answer_id: None,
            media: None,
        }
    }

    fn about(mut self, id: &str) -> Request {
        self.answer_id = Some(id.to_string());
        self
    }

    fn param(mut self, k: &str, v: impl Into<String>) -> Request {
        self.query.push((k.to_string(), v.into()));
        self
    }

    pub fn profile() -> Request {
        Request::new(Method::GetProfile, "GET", "profile".into())
    }

    /// One page of messages.list.
    pub(crate) fn list_messages(q: &ListQuery, page_token: Option<&str>) -> Request {
        let mut r = Request::new(Method::MessagesList, "GET", "messages".into())
            .param("maxResults", q.page_size.to_string());
        if let Some(query) = &q.q {
            r = r.param("q", query.clone());
        }
        for l in &q.label_ids {
            r = r.param("labelIds", l.clone());
        }
        if q.include_spam_trash {
            r = r.param("includeSpamTrash", "true");
        }
        if let Some(t) = page_token {
            r = r.param("pageToken", t);
        }
        r
    }

    pub fn get_message(id: &str, format: Format, headers: &[String]) -> Request {
        let mut r = Request::new(
            Method::MessagesGet,
            "GET",
            format!("messages/{}", segment(id)),
        )
        .about(id)
        .param("format", format.as_str());
        if format == Format::Metadata {
            for h in headers {
                r = r.param("metadataHeaders", h.clone());
            }
        }
        r
    }

    pub(crate) fn list_labels() -> Request {
        Request::new(Method::LabelsList, "GET", "labels".into())
    }

    pub(crate) fn list_history(start_history_id: &str, page_token: Option<&str>) -> Request {
        let mut r = Request::new(Method::HistoryList, "GET", "history".into())
            .param("startHistoryId", start_history_id)
            .param("maxResults", "500");
        if let Some(t) = page_token {
            r = r.param("pageToken", t);
        }
        r
    }

    /// At most [`BATCH_MODIFY_MAX`] ids; see [`Request::batch_modify_chunks`].
    fn batch_modify(ids: &[String], add: &[String], remove: &[String]) -> Request {
        let mut r = Request::new(
            Method::MessagesBatchModify,
            "POST",
            "messages/batchModify".into(),
        );
        r.body = Some(json!({"ids": ids, "addLabelIds": add, "removeLabelIds": remove}));
        r
    }

    /// batchModify calls for any number of ids, 1,000 a call.
    pub fn batch_modify_chunks(ids: &[String], add: &[String], remove: &[String]) -> Vec<Request> {
        ids.chunks(BATCH_MODIFY_MAX)
            .map(|c| Request::batch_modify(c, add, remove))
            .collect()
    }

    pub(crate) fn trash(id: &str) -> Request {
        Request::new(
            Method::MessagesTrash,
            "POST",
            format!("messages/{}/trash", segment(id)),
        )
        .about(id)
    }

    /// messages.import (or insert) of `raw`, the message's bytes, sent as
    /// they are in a media upload.
    pub fn import(raw: bytes::Bytes, o: &ImportOptions) -> Request {
        let (call, path) = if o.insert {
            (Method::MessagesInsert, "messages")
        } else {
            (Method::MessagesImport, "messages/import")
        };
        let mut r = Request::new(call, "POST", path.into()).param(
            "internalDateSource",
            match o.date {
                DateSource::Header => "dateHeader",
                DateSource::Received => "receivedTime",
            },
        );
        if !o.insert && o.never_mark_spam {
            r = r.param("neverMarkSpam", "true");
        }
        r.body = Some(json!({ "labelIds": o.label_ids }));
        r.media = Some(raw);
        r
    }

    /// `/upload/gmail/v1/users/{user}/{path}?uploadType=multipart&...`: where
    /// a media upload goes (the discovery document's `mediaUpload` path).
    pub(crate) fn upload_path_and_query(&self, user: &str) -> String {
        format!("/upload{}&uploadType=multipart", self.path_and_query(user))
    }

    /// Any other call under users/{user}/: `path` as given (the caller
    /// encodes it), method one of GET, POST, PUT, PATCH, DELETE.
    pub(crate) fn raw(
        verb: &'static str,
        path: &str,
        query: Vec<(String, String)>,
        body: Option<Value>,
    ) -> Request {
        Request {
            call: Method::Other,
            verb,
            path: path.trim_start_matches('/').to_string(),
            query,
            body,
            answer_id: None,
            media: None,
        }
    }

    /// `/gmail/v1/users/{user}/{path}?{query}` with `prettyPrint=false`
    /// (smaller answers; Google pretty-prints by default).
    pub(crate) fn path_and_query(&self, user: &str) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.query {
            q.append_pair(k, v);
        }
        q.append_pair("prettyPrint", "false");
        format!(
            "/gmail/v1/users/{}/{}?{}",
            segment(user),
            self.path,
            q.finish()
        )
    }
}

/// Most ids one batchModify call takes.
pub(crate) const BATCH_MODIFY_MAX: usize = 1000;

/// What messages.list is asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub q: Option<String>,
    pub label_ids: Vec<String>,
    pub include_spam_trash: bool,
    /// maxResults per page, 1..=500.
    pub page_size: u32,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            q: None,
            label_ids: Vec::new(),
            include_spam_trash: false,
            page_size: 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded() {
        let r = Request::get_message("abc", Format::Metadata, &["From".into(), "Subject".into()]);
        assert_eq!(
            r.path_and_query("me"),
            "/gmail/v1/users/me/messages/abc?format=metadata&metadataHeaders=From&metadataHeaders=Subject&prettyPrint=false"
        );
        let l = Request::list_messages(
            &ListQuery {
                q: Some("from:a b".into()),
                label_ids: vec!["INBOX".into()],
                ..ListQuery::default()
            },
            Some("123"),
        );
        assert_eq!(
            l.path_and_query("a@x.com"),
            "/gmail/v1/users/a%40x.com/messages?maxResults=500&q=from%3Aa+b&labelIds=INBOX&pageToken=123&prettyPrint=false"
        );
    }

    #[test]
    fn batch_modify_splits_at_1000() {
        let ids: Vec<String> = (0..2500).map(|i| format!("{i:x}")).collect();
        let calls = Request::batch_modify_chunks(&ids, &["STARRED".into()], &[]);
        let sizes: Vec<usize> = calls
            .iter()
            .map(|c| c.body.as_ref().unwrap()["ids"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);
    }
}
