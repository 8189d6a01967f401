//! messages.import and messages.insert: a message put into the mailbox as
//! its RFC 822 bytes, as Gmail takes it.
//!
//! Three forms reach here (discovery document gmail.v1, `mediaUpload` of
//! both methods): the media upload `POST /upload/gmail/v1/users/{u}/messages[/import]`
//! with `uploadType=media` (the body is the message) or `uploadType=multipart`
//! (`multipart/related`: a JSON part with the Message metadata such as
//! `labelIds`, then the message part), and the plain JSON form on the
//! `/gmail/v1/` path with `{"raw": base64url, "labelIds": [...]}`, which
//! may also go in a batch (batches carry no media). [`from_upload`] turns an
//! upload into the JSON form; [`execute`] carries it out.
//!
//! Gmail merges a second import of a message whose Message-ID is already in
//! the mailbox into that message (a Google maintainer in
//! google/import-mailbox-to-gmail#56): the answer names the existing
//! message and the new labels are added to it. Without a Message-ID every
//! import is a new message.

use base64::Engine as _;
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{json, Value};
use std::sync::Arc;

use super::errors::{self, ApiReply};
use super::generate::message_id_for;
use super::mailbox::{Body, Mailbox, SimMessage};
use super::render::{snippet, split_headers};

/// `mediaUpload.maxSize` of messages.import and messages.insert: 150 MiB.
pub const MAX_SIZE: usize = 157_286_400;

/// The most an upload request's body may be: the message at its largest,
/// plus a multipart envelope and metadata.
pub(crate) const MAX_UPLOAD_BODY: usize = MAX_SIZE + 1024 * 1024;

/// Which of the two methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Import,
    Insert,
}

/// The query parameters of the call, already checked for names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// `internalDateSource`: true for dateHeader.
    pub(crate) date_header: bool,
    pub(crate) never_mark_spam: bool,
    pub(crate) deleted: bool,
}

/// The `uploadType` of an upload; `resumable` is served before this
/// (src/sim/resumable.rs), so here it can only be a mistake.
fn upload_type(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "uploadType")
        .map(|(_, v)| v.into_owned())
}

/// An upload to `/upload/gmail/v1/users/{u}/messages[/import]`: the target
/// to serve on the `/gmail/v1/` path (uploadType dropped) and the JSON body
/// of the plain form. Err: the upload's own 400 or 413.
pub(crate) fn from_upload(
    target: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(String, Vec<u8>), ApiReply> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let rest = path.strip_prefix("/upload").unwrap_or(path);
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "uploadType")
        .collect();
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &kept {
        q.append_pair(k, v);
    }
    let q = q.finish();
    let new_target = if q.is_empty() {
        rest.to_string()
    } else {
        format!("{rest}?{q}")
    };
    let (mut meta, raw) = match upload_type(query).as_deref() {
        Some("media") => (json!({}), body.to_vec()),
        Some("multipart") => multipart_related(content_type, body)?,
        Some("resumable") => {
            return Err(errors::bad_request(
                "Resumable uploads open a session with POST and send the bytes to its Location.",
            ))
        }
        Some(other) => {
            return Err(errors::bad_request(&format!(
                "Invalid value for uploadType: {other:?}. Use media or multipart."
            )))
        }
        None => {
            return Err(errors::bad_request(
                "Upload requests must include an uploadType URL parameter and a URL path beginning with /upload/",
            ))
        }
    };
    too_large(raw.len())?;
    meta["raw"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw));
    Ok((new_target, meta.to_string().into_bytes()))
}

fn too_large(len: usize) -> Result<(), ApiReply> {
    if len > MAX_SIZE {
        return Err(errors::google_error(
            413,
            "INVALID_ARGUMENT",
            "global",
            "uploadTooLarge",
            &format!("Media larger than the maximum size of {MAX_SIZE} bytes ({len} bytes sent)."),
        ));
    }
    Ok(())
}

/// `multipart/related; boundary=X`: the first part JSON metadata, the
/// second the media (any `message/*` type).
fn multipart_related(content_type: &str, body: &[u8]) -> Result<(Value, Vec<u8>), ApiReply> {
    let bad = |m: &str| errors::bad_request(&format!("Bad multipart upload: {m}"));
    let mut params = content_type.split(';');
    let mime = params.next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "multipart/related" {
        return Err(bad(&format!(
            "Content-Type must be multipart/related, not {mime:?}"
        )));
    }
    let boundary = params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or_else(|| bad("no boundary in the Content-Type"))?;
    let delim = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delim.as_bytes());
    let starts: Vec<usize> = finder.find_iter(body).collect();
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut closed = false;
    for (i, &at) in starts.iter().enumerate() {
        let after = &body[at + delim.len()..];
        if after.starts_with(b"--") {
            closed = true;
            break;
        }
        let Some(&next) = starts.get(i + 1) else {
            break;
        };
        let part = &body[at + delim.len()..next];
        let part = part
            .strip_prefix(b"\r\n")
            .or_else(|| part.strip_prefix(b"\n"))
            .ok_or_else(|| bad("a boundary line does not end the line"))?;
        // The line break before the next delimiter belongs to it.
        let part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))
            .unwrap_or(part);
        parts.push(part);
    }
    if starts.is_empty() || !closed {
        return Err(bad("the body does not end with the closing boundary"));
    }
    if parts.len() != 2 {
        return Err(bad(&format!(
            "expected 2 parts (metadata, then the message), found {}",
            parts.len()
        )));
    }
    let (meta_head, meta_body) = split_part(parts[0]);
    let (media_head, media) = split_part(parts[1]);
    let ct = |h: &[(String, String)]| super::render::content_type(h).unwrap_or_default();
    if !ct(&meta_head).starts_with("application/json") {
        return Err(bad("the first part must be application/json metadata"));
    }
    let media_type = ct(&media_head);
    if !media_type.starts_with("message/") {
        return Err(bad(&format!(
            "Media type '{media_type}' is not supported. Valid media types: [message/*]"
        )));
    }
    let meta: Value = if meta_body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(meta_body)
            .map_err(|e| errors::bad_request(&format!("Invalid JSON payload received. {e}")))?
    };
    if !meta.is_object() {
        return Err(bad("the metadata part must be a JSON object"));
    }
    Ok((meta, media.to_vec()))
}

/// A MIME part's header fields and its body.
fn split_part(part: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    // The first blank line, CRLF or LF (Python's email package writes LF
    // part heads around a CRLF message).
    let crlf = memchr::memmem::find(part, b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = memchr::memmem::find(part, b"\n\n").map(|i| (i, i + 2));
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    };
    match end {
        Some((head, body)) => (split_headers(&part[..head]), &part[body..]),
        None => (split_headers(part), &[]),
    }
}

/// What the message says about itself, for the mailbox's summary fields.
struct Parsed {
    date_ms: Option<i64>,
    message_id: Option<String>,
    parents: Vec<String>,
    from: String,
    to: String,
    subject: String,
    attachment_names: Vec<String>,
    snippet: String,
    spam_flag: bool,
}

fn parse(raw: &[u8]) -> Parsed {
    let spam_flag = split_headers(raw)
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("X-Spam-Flag") && v.eq_ignore_ascii_case("yes"));
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Parsed {
            date_ms: None,
            message_id: None,
            parents: Vec::new(),
            from: String::new(),
            to: String::new(),
            subject: String::new(),
            attachment_names: Vec::new(),
            snippet: snippet(&String::from_utf8_lossy(raw)),
            spam_flag,
        };
    };
    let mut parents = Vec::new();
    for v in [msg.references(), msg.in_reply_to()] {
        if let Some(ids) = v.as_text_list() {
            parents.extend(ids.iter().map(|s| s.to_string()));
        }
    }
    Parsed {
        date_ms: msg
            .date()
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp().saturating_mul(1000)),
        message_id: msg
            .message_id()
            .map(str::to_string)
            .filter(|m| !m.is_empty()),
        parents,
        from: msg.from().map(super::mbox::addresses).unwrap_or_default(),
        to: [msg.to(), msg.cc(), msg.bcc()]
            .into_iter()
            .flatten()
            .map(super::mbox::addresses)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        subject: msg.subject().unwrap_or("").to_string(),
        attachment_names: msg
            .attachments()
            .filter_map(|p| p.attachment_name().map(str::to_string))
            .collect(),
        snippet: snippet(&msg.body_text(0).unwrap_or_default()),
        spam_flag,
    }
}

fn decode_raw(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
        .ok()
}

fn label_list(v: &Value) -> Result<Vec<String>, ApiReply> {
    match v.get("labelIds") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(String::from).ok_or_else(|| {
                    errors::bad_request("Invalid value at 'message.label_ids': expected strings")
                })
            })
            .collect(),
        Some(_) => Err(errors::bad_request(
            "Invalid value at 'message.label_ids': expected a list",
        )),
    }
}

/// Carry out an import or insert whose JSON body is `body`, `now_ms` being
/// the simulated time. The answer is the Message (id, threadId, labelIds).
pub(crate) fn execute(
    mb: &mut Mailbox,
    kind: Kind,
    opts: &Options,
    body: &[u8],
    now_ms: i64,
) -> Result<ApiReply, ApiReply> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| errors::bad_request(&format!("Invalid JSON payload received. {e}")))?
    };
    let raw = match v.get("raw").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => {
            decode_raw(s).ok_or_else(|| errors::invalid("Invalid value for ByteString: raw"))?
        }
        _ => return Err(errors::invalid(
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        )),
    };
    too_large(raw.len())?;
    let mut labels = label_list(&v)?;
    if let Some(bad) = labels.iter().find(|l| !mb.has_label_id(l)) {
        return Err(errors::invalid(&format!("Invalid label: {bad}")));
    }
    if labels.iter().any(|l| l == "DRAFT") {
        return Err(errors::invalid(
            "Invalid label: DRAFT (drafts are made with drafts.create)",
        ));
    }
    let p = parse(&raw);
    // The spam classifier of the simulator: a message that says it is spam.
    if kind == Kind::Import && !opts.never_mark_spam && p.spam_flag {
        labels.retain(|l| l != "INBOX");
        labels.push("SPAM".into());
    }
    labels.sort();
    labels.dedup();
    if let Some(mid) = &p.message_id {
        let existing = mb
            .messages
            .values()
            .find(|m| m.message_id_header().as_deref() == Some(mid.as_str()))
            .map(|m| m.id.clone());
        if let Some(id) = existing {
            let m = mb.modify(&id, &labels, &[]).ok_or_else(errors::not_found)?;
            return Ok(ApiReply::ok(
                json!({"id": m.id, "threadId": m.thread_id, "labelIds": m.label_ids}),
            ));
        }
    }
    let internal = if opts.date_header {
        p.date_ms.unwrap_or(now_ms)
    } else {
        now_ms
    };
    let mut counter = mb.messages.len() as u64;
    let id = loop {
        let id = message_id_for(internal, counter);
        if !mb.messages.contains_key(&id) {
            break id;
        }
        counter += 1;
    };
    // Threads: a reply to a message here joins its thread.
    let thread_id = v
        .get("threadId")
        .and_then(Value::as_str)
        .filter(|t| mb.messages.values().any(|m| &m.thread_id == t))
        .map(String::from)
        .or_else(|| {
            p.parents.iter().find_map(|parent| {
                mb.messages
                    .values()
                    .find(|m| m.message_id_header().as_deref() == Some(parent.as_str()))
                    .map(|m| m.thread_id.clone())
            })
        })
        .unwrap_or_else(|| id.clone());
    let answer = json!({"id": id, "threadId": thread_id, "labelIds": labels});
    if opts.deleted {
        // Only Vault sees it; the mailbox does not.
        return Ok(ApiReply::ok(answer));
    }
    mb.insert(SimMessage {
        id: id.clone(),
        thread_id,
        label_ids: labels,
        internal_date_ms: internal,
        history_id: 0,
        size: raw.len(),
        from: p.from,
        to: p.to,
        subject: p.subject,
        attachment_names: p.attachment_names,
        snippet: p.snippet,
        body: Body::Stored(Arc::from(raw)),
    });
    Ok(ApiReply::ok(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_related_gives_metadata_and_message() {
        let body = b"--b1\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{\"labelIds\":[\"INBOX\"]}\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\nbody\r\n--b1--\r\n";
        let (meta, raw) = multipart_related("multipart/related; boundary=\"b1\"", body).unwrap();
        assert_eq!(meta["labelIds"][0], "INBOX");
        assert_eq!(raw, b"Subject: hi\r\n\r\nbody");
        // LF part heads (Python's email package) around a CRLF message.
        let body = b"--b1\nContent-Type: application/json\n\n{}\n--b1\nContent-Type: message/rfc822\nMIME-Version: 1.0\n\nSubject: hi\r\n\r\nbody\r\n\n--b1--";
        let (_, raw) = multipart_related("multipart/related; boundary=b1", body).unwrap();
        assert_eq!(raw, b"Subject: hi\r\n\r\nbody\r\n");
    }

    #[test]
    fn broken_multipart_is_a_400_not_a_panic() {
        for (ct, body) in [
            ("multipart/related; boundary=b", &b""[..]),
            ("multipart/related; boundary=b", b"--b\r\n\r\n{}"),
            ("multipart/related", b"--b--"),
            ("text/plain; boundary=b", b"--b--"),
            ("multipart/related; boundary=b", b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b--"),
            ("multipart/related; boundary=b", b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--"),
            ("multipart/related; boundary=b", b"--b--b--b"),
        ] {
            let e = multipart_related(ct, body).unwrap_err();
            assert_eq!(e.status, 400, "{ct} {:?}", String::from_utf8_lossy(body));
        }
    }
}
