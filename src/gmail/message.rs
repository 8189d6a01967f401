//! A Gmail message: the users.messages resource as messages.get returns it
//! in any format, with helpers for headers, body text, raw bytes and
//! attachments. Knows nothing of Lua.
//!
//! Parsing is one pass of serde_json; the costly parts wait until asked:
//! header values stay undecoded, `raw` and body data stay base64 inside the
//! kept JSON text, and the decoded raw message is cached on first use.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde::{de, Deserialize, Deserializer};

use super::{html, rfc822};

/// The format a message was fetched in, inferred from the fields present.
use super::request::Format;

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message JSON is not UTF-8")]
    NotUtf8,
    #[error("invalid message JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("message JSON has no id")]
    MissingId,
    #[error("message raw field is not base64")]
    BadRaw,
}

/// A part that carries a file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Gmail's part id: "" for the root, "0", "1", "0.1", ...
    part_id: String,
    filename: String,
    mime_type: String,
    /// Decoded size in bytes.
    size: u64,
    /// For fetching the body with messages.attachments.get (full format).
    attachment_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub(crate) id: String,
    pub(crate) thread_id: String,
    /// Label ids (`labelIds`); empty when Gmail leaves the field out.
    pub(crate) labels: Vec<String>,
    pub(crate) snippet: String,
    /// `sizeEstimate` in bytes.
    pub(crate) size: u64,
    /// `internalDate`: when Gmail received the message, ms since the epoch.
    pub(crate) internal_date_ms: i64,
    pub(crate) history_id: String,
    pub(crate) format: Format,
    /// Shared: clones do not copy the JSON text, which can be megabytes.
    json: Arc<str>,
    payload: Option<Part>,
    raw: Option<Text>,
    raw_bytes: OnceLock<Vec<u8>>,
    raw_headers: OnceLock<Vec<(String, String)>>,
}

/// One node of the payload tree; header values as Gmail sent them.
#[derive(Debug, Clone)]
struct Part {
    part_id: String,
    mime_type: String,
    filename: String,
    headers: Vec<(String, String)>,
    data: Option<Text>,
    size: u64,
    attachment_id: Option<String>,
    parts: Vec<Part>,
}

/// A JSON string value: a span of the kept JSON text when it had no escapes
/// (always, for base64), else its unescaped copy.
#[derive(Debug, Clone)]
enum Text {
    Span(usize, usize),
    Owned(Box<str>),
}

impl Text {
    fn new(json: &str, value: Cow<'_, str>) -> Text {
        if let Cow::Borrowed(s) = value {
            let start = (s.as_ptr() as usize).wrapping_sub(json.as_ptr() as usize);
            let end = start.saturating_add(s.len());
            if json.get(start..end) == Some(s) {
                return Text::Span(start, end);
            }
        }
        Text::Owned(value.into_owned().into())
    }

    fn get<'a>(&'a self, json: &'a str) -> &'a str {
        match self {
            Text::Span(start, end) => json.get(*start..*end).unwrap_or(""),
            Text::Owned(s) => s,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage<'a> {
    id: Option<String>,
    thread_id: Option<String>,
    label_ids: Option<Vec<String>>,
    snippet: Option<String>,
    #[serde(default, deserialize_with = "int")]
    size_estimate: i64,
    history_id: Option<String>,
    #[serde(default, deserialize_with = "int")]
    internal_date: i64,
    #[serde(borrow)]
    payload: Option<WirePart<'a>>,
    #[serde(borrow)]
    raw: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart<'a> {
    part_id: Option<String>,
    mime_type: Option<String>,
    filename: Option<String>,
    headers: Option<Vec<WireHeader>>,
    #[serde(borrow)]
    body: Option<WireBody<'a>>,
    #[serde(borrow)]
    parts: Option<Vec<WirePart<'a>>>,
}

#[derive(Deserialize)]
struct WireHeader {
    name: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBody<'a> {
    attachment_id: Option<String>,
    #[serde(default, deserialize_with = "int")]
    size: i64,
    #[serde(borrow)]
    data: Option<Cow<'a, str>>,
}

/// Google sends int64 as a JSON string ("1700000000000"); accept numbers and
/// null too, saturating huge values rather than failing on them.
fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct Int;
    impl de::Visitor<'_> for Int {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an integer or a string holding one")
        }
        fn visit_i64<E>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E>(self, v: u64) -> Result<i64, E> {
            Ok(i64::try_from(v).unwrap_or(i64::MAX))
        }
        fn visit_f64<E>(self, v: f64) -> Result<i64, E> {
            Ok(v as i64) // saturating; NaN gives 0
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            let v = v.trim();
            v.parse::<i64>()
                .or_else(|_| v.parse::<f64>().map(|f| f as i64))
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
        fn visit_unit<E>(self) -> Result<i64, E> {
            Ok(0)
        }
    }
    d.deserialize_any(Int)
}

impl Message {
    /// Parses a users.messages resource. Surrounding whitespace is dropped
    /// from the kept JSON text so that it can be written as one jsonl line.
    pub fn from_json(bytes: &[u8]) -> Result<Message, MessageError> {
        let text = std::str::from_utf8(bytes).map_err(|_| MessageError::NotUtf8)?;
        let json: Arc<str> = Arc::from(text.trim());
        let wire: WireMessage = serde_json::from_str(&json)?;
        let id = wire
            .id
            .filter(|id| !id.is_empty())
            .ok_or(MessageError::MissingId)?;
        let raw = match wire.raw {
            Some(raw) if b64_engine(&raw).is_none() => return Err(MessageError::BadRaw),
            Some(raw) => Some(Text::new(&json, raw)),
            None => None,
        };
        let format = match &wire.payload {
            _ if raw.is_some() => Format::Raw,
            Some(p) if p.body.is_some() || p.parts.is_some() => Format::Full,
            Some(_) => Format::Metadata,
            None => Format::Minimal,
        };
        let payload = wire.payload.map(|p| Part::new(&json, p));
        Ok(Message {
            id,
            thread_id: wire.thread_id.unwrap_or_default(),
            labels: wire.label_ids.unwrap_or_default(),
            snippet: wire.snippet.unwrap_or_default(),
            size: wire.size_estimate.max(0) as u64,
            internal_date_ms: wire.internal_date,
            history_id: wire.history_id.unwrap_or_default(),
            format,
            json,
            payload,
            raw,
            raw_bytes: OnceLock::new(),
            raw_headers: OnceLock::new(),
        })
    }

    /// The first header of that name (any case), unfolded and decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_list()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| rfc822::decode(v))
    }

    /// All headers in order, unfolded and decoded.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.header_list()
            .iter()
            .map(|(n, v)| (n.clone(), rfc822::decode(v)))
            .collect()
    }

    /// The body as text: text/plain preferred, else HTML without tags.
    /// None for minimal and metadata, and when no part holds text.
    pub fn text(&self) -> Option<String> {
        let (plain, html) = match self.format {
            Format::Raw => {
                let parsed = MessageParser::new()
                    .with_mime_headers()
                    .parse(self.raw_bytes())?;
                let plain = parsed.text_bodies().find_map(|p| match &p.body {
                    PartType::Text(t) => Some(t.to_string()),
                    _ => None,
                });
                let html = parsed.html_bodies().find_map(|p| match &p.body {
                    PartType::Html(h) => Some(h.to_string()),
                    _ => None,
                });
                (plain, html)
            }
            Format::Full => {
                let root = self.payload.as_ref()?;
                (
                    self.part_text(root, "text/plain"),
                    self.part_text(root, "text/html"),
                )
            }
            Format::Minimal | Format::Metadata => return None,
        };
        let plain = plain.map(|t| t.replace("\r\n", "\n").trim().to_owned());
        // A blank text/plain beside real HTML is a placeholder, not the body.
        match (plain, html) {
            (Some(p), Some(h)) if p.is_empty() => Some(html::to_text(&h)),
            (Some(p), _) => Some(p),
            (None, h) => h.map(|h| html::to_text(&h)),
        }
    }

    /// The decoded RFC 822 message (raw format only).
    pub fn raw(&self) -> Option<Vec<u8>> {
        (self.format == Format::Raw).then(|| self.raw_bytes().to_vec())
    }

    /// The JSON text the message was parsed from.
    pub(crate) fn json(&self) -> &str {
        &self.json
    }

    pub fn date_seconds(&self) -> f64 {
        self.internal_date_ms as f64 / 1000.0
    }

    /// Parts with a file name, in tree order. Not offered to Lua yet
    /// (`lua/message.rs`); the unit tests and the fuzz target use it.
    pub fn attachments(&self) -> Vec<Attachment> {
        let mut out = Vec::new();
        if let Some(root) = &self.payload {
            root.attachments(&mut out);
        } else if self.format == Format::Raw {
            if let Some(parsed) = MessageParser::new()
                .with_mime_headers()
                .parse(self.raw_bytes())
            {
                mime_attachments(&parsed, 0, String::new(), 0, &mut out);
            }
        }
        out
    }

    fn header_list(&self) -> &[(String, String)] {
        match &self.payload {
            Some(p) => &p.headers,
            None if self.format == Format::Raw => self
                .raw_headers
                .get_or_init(|| rfc822::header_pairs(self.raw_bytes())),
            None => &[],
        }
    }

    /// Empty unless raw format; decoding cannot fail once from_json checked it.
    fn raw_bytes(&self) -> &[u8] {
        self.raw_bytes.get_or_init(|| {
            self.raw
                .as_ref()
                .and_then(|raw| b64_decode(raw.get(&self.json)))
                .unwrap_or_default()
        })
    }

    /// The first part of this MIME type, in depth-first order, that is body
    /// rather than attachment and carries its data inline.
    fn part_text(&self, part: &Part, mime_type: &str) -> Option<String> {
        if part.mime_type.eq_ignore_ascii_case(mime_type) && part.filename.is_empty() {
            let inline = part.header("Content-Disposition").is_none_or(|d| {
                !d.trim_start()
                    .get(..10)
                    .is_some_and(|s| s.eq_ignore_ascii_case("attachment"))
            });
            let data = part
                .data
                .as_ref()
                .and_then(|d| b64_decode(d.get(&self.json)));
            if let (true, Some(data)) = (inline, data) {
                let charset = part
                    .header("Content-Type")
                    .and_then(|ct| content_type_param(ct, "charset"))
                    .unwrap_or("utf-8");
                return Some(rfc822::decode_charset(charset, &data));
            }
        }
        part.parts.iter().find_map(|p| self.part_text(p, mime_type))
    }
}

impl Part {
    fn new(json: &str, wire: WirePart<'_>) -> Part {
        let body = wire.body;
        Part {
            part_id: wire.part_id.unwrap_or_default(),
            mime_type: wire.mime_type.unwrap_or_default(),
            filename: wire.filename.unwrap_or_default(),
            headers: wire
                .headers
                .unwrap_or_default()
                .into_iter()
                .map(|h| (h.name.unwrap_or_default(), h.value.unwrap_or_default()))
                .collect(),
            size: body.as_ref().map_or(0, |b| b.size.max(0) as u64),
            attachment_id: body.as_ref().and_then(|b| b.attachment_id.clone()),
            data: body.and_then(|b| b.data).map(|d| Text::new(json, d)),
            parts: wire
                .parts
                .unwrap_or_default()
                .into_iter()
                .map(|p| Part::new(json, p))
                .collect(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn attachments(&self, out: &mut Vec<Attachment>) {
        if !self.filename.is_empty() {
            out.push(Attachment {
                part_id: self.part_id.clone(),
                filename: self.filename.clone(),
                mime_type: self.mime_type.clone(),
                size: self.size,
                attachment_id: self.attachment_id.clone(),
            });
        }
        for p in &self.parts {
            p.attachments(out);
        }
    }
}

/// Walks mail-parser's part list as a tree, numbering parts the way Gmail
/// numbers them in full format, so both formats give the same part ids.
fn mime_attachments(
    msg: &mail_parser::Message<'_>,
    index: u32,
    part_id: String,
    depth: usize,
    out: &mut Vec<Attachment>,
) {
    // mail-parser builds a tree, but a bound keeps a broken one from looping.
    let Some(part) = msg.parts.get(index as usize).filter(|_| depth < 64) else {
        return;
    };
    if let Some(name) = part.attachment_name() {
        let mime_type = part.content_type().map_or("text/plain".into(), |ct| {
            match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_owned(),
            }
            .to_ascii_lowercase()
        });
        out.push(Attachment {
            part_id: part_id.clone(),
            filename: name.to_owned(),
            mime_type,
            size: part.len() as u64,
            attachment_id: None,
        });
    }
    if let PartType::Multipart(children) = &part.body {
        for (i, &child) in children.iter().enumerate() {
            let id = if part_id.is_empty() {
                i.to_string()
            } else {
                format!("{part_id}.{i}")
            };
            mime_attachments(msg, child, id, depth + 1, out);
        }
    }
}

const B64_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::RequireNone)
    .with_decode_allow_trailing_bits(true);
const B64_URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, B64_CONFIG);
pub(super) const B64_STD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, B64_CONFIG);

/// The engine that will decode `s` (padding stripped first), or None when no
/// engine can: a cheap scan, so from_json can reject bad raw without decoding.
/// Gmail sends base64url; standard base64 is accepted from lenient producers.
/// Which base64 alphabet `s` is in (Gmail sends URL-safe; some tools the
/// standard one), or None when it is neither. Raw messages run to megabytes,
/// so bytes are classified through a table and OR-ed together, with no
/// branch per byte.
fn b64_engine(s: &str) -> Option<&'static GeneralPurpose> {
    const ALNUM: u8 = 0;
    const URL: u8 = 1;
    const STD: u8 = 2;
    const BAD: u8 = 4;
    static CLASS: [u8; 256] = {
        let mut t = [BAD; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = match c {
                b'-' | b'_' => URL,
                b'+' | b'/' => STD,
                _ if c.is_ascii_alphanumeric() => ALNUM,
                _ => BAD,
            };
            b += 1;
        }
        t
    };
    let s = s.trim_end_matches('=');
    let mut seen = 0u8;
    for chunk in s.as_bytes().chunks(4096) {
        seen |= chunk.iter().fold(0, |acc, &b| acc | CLASS[b as usize]);
        if seen & BAD != 0 {
            return None;
        }
    }
    match (seen, s.len() % 4) {
        (_, 1) => None,
        (s, _) if s == URL | STD => None,
        (STD, _) => Some(&B64_STD),
        _ => Some(&B64_URL),
    }
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    b64_engine(s)?.decode(s.trim_end_matches('=')).ok()
}

/// A parameter of a Content-Type value, e.g. charset; quotes removed.
fn content_type_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|param| {
        let (n, v) = param.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    use serde_json::{json, Value};

    const PLAIN: &str = "Hello Ana,\r\n\r\nThe café opens at 8.\r\n";
    const HTML: &str = "<html><head><title>x</title><style>p {color: red}</style></head>\
        <body><p>Hello Ana,</p><p>The caf&#233; opens at&nbsp;8.</p></body></html>";
    const PDF: &[u8] = b"%PDF-1.4\n%\xc3\xa4\xc3\xbc\xc3\xb6\xc3\x9f\n";

    /// A realistic multipart/mixed message: alternative text + HTML, and a
    /// PDF attachment. The full-format fixture below is its Gmail tree.
    fn rfc822() -> String {
        [
            "Delivered-To: ana@example.com",
            "Received: from mail.example.com (mail.example.com [192.0.2.1])",
            "        by mx.google.com with ESMTPS id x1si123;",
            "        Tue, 14 Nov 2023 22:13:20 -0800 (PST)",
            "From: =?UTF-8?B?Sm9zw6kgR2FyY8OtYQ==?= <jose@example.com>",
            "To: Ana <ana@example.com>",
            "Subject: =?ISO-8859-1?Q?Caf=E9?= =?ISO-8859-1?Q?_cr=E8me?=",
            " and more",
            "Date: Tue, 14 Nov 2023 22:13:20 +0000",
            "Message-ID: <abc123@example.com>",
            "MIME-Version: 1.0",
            "Content-Type: multipart/mixed; boundary=\"mixed\"",
            "",
            "--mixed",
            "Content-Type: multipart/alternative; boundary=\"alt\"",
            "",
            "--alt",
            "Content-Type: text/plain; charset=\"UTF-8\"",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "Hello Ana,",
            "",
            "The caf=C3=A9 opens at 8.",
            "--alt",
            "Content-Type: text/html; charset=\"UTF-8\"",
            "",
            HTML,
            "--alt--",
            "",
            "--mixed",
            "Content-Type: application/pdf; name=\"report.pdf\"",
            "Content-Disposition: attachment; filename=\"report.pdf\"",
            "Content-Transfer-Encoding: base64",
            "",
            &STANDARD.encode(PDF),
            "--mixed--",
            "",
        ]
        .join("\r\n")
    }

    fn envelope() -> Value {
        json!({
            "id": "18bd1f2e3c4a5b6d",
            "threadId": "18bd1f2e3c4a0000",
            "labelIds": ["INBOX", "UNREAD", "CATEGORY_PERSONAL"],
            "snippet": "Hello Ana, The café opens at 8.",
            "sizeEstimate": 2048,
            "historyId": "987654",
            "internalDate": "1700000000123"
        })
    }

    fn with(mut v: Value, key: &str, field: Value) -> String {
        v[key] = field;
        v.to_string()
    }

    fn h(name: &str, value: &str) -> Value {
        json!({"name": name, "value": value})
    }

    fn top_headers() -> Value {
        json!([
            h(
                "From",
                "=?UTF-8?B?Sm9zw6kgR2FyY8OtYQ==?= <jose@example.com>"
            ),
            h("To", "Ana <ana@example.com>"),
            h(
                "Subject",
                "=?ISO-8859-1?Q?Caf=E9?= =?ISO-8859-1?Q?_cr=E8me?= and more"
            ),
            h("Date", "Tue, 14 Nov 2023 22:13:20 +0000"),
        ])
    }

    fn text_part(id: &str, mime: &str, charset: &str, data: &[u8]) -> Value {
        json!({
            "partId": id, "mimeType": mime, "filename": "",
            "headers": [h("Content-Type", &format!("{mime}; charset=\"{charset}\""))],
            "body": {"size": data.len(), "data": URL_SAFE.encode(data)}
        })
    }

    fn full_json() -> String {
        let payload = json!({
            "partId": "", "mimeType": "multipart/mixed", "filename": "",
            "headers": top_headers(),
            "body": {"size": 0},
            "parts": [
                {
                    "partId": "0", "mimeType": "multipart/alternative", "filename": "",
                    "headers": [h("Content-Type", "multipart/alternative; boundary=\"alt\"")],
                    "body": {"size": 0},
                    "parts": [
                        text_part("0.0", "text/plain", "UTF-8", PLAIN.as_bytes()),
                        text_part("0.1", "text/html", "UTF-8", HTML.as_bytes()),
                    ]
                },
                {
                    "partId": "1", "mimeType": "application/pdf", "filename": "report.pdf",
                    "headers": [
                        h("Content-Type", "application/pdf; name=\"report.pdf\""),
                        h("Content-Disposition", "attachment; filename=\"report.pdf\""),
                    ],
                    "body": {"attachmentId": "ANGjdJ8_x-1", "size": PDF.len()}
                }
            ]
        });
        with(envelope(), "payload", payload)
    }

    fn raw_json(encoded: &str) -> String {
        with(envelope(), "raw", json!(encoded))
    }

    fn pdf_attachment(attachment_id: Option<&str>) -> Attachment {
        Attachment {
            part_id: "1".into(),
            filename: "report.pdf".into(),
            mime_type: "application/pdf".into(),
            size: PDF.len() as u64,
            attachment_id: attachment_id.map(Into::into),
        }
    }

    #[test]
    fn minimal() {
        let json = envelope().to_string();
        let m = Message::from_json(format!("  {json}\n").as_bytes()).unwrap();
        assert_eq!((m.format, m.format.as_str()), (Format::Minimal, "minimal"));
        assert_eq!(m.id, "18bd1f2e3c4a5b6d");
        assert_eq!(m.thread_id, "18bd1f2e3c4a0000");
        assert_eq!(m.labels, ["INBOX", "UNREAD", "CATEGORY_PERSONAL"]);
        assert_eq!(m.snippet, "Hello Ana, The café opens at 8.");
        assert_eq!((m.size, m.history_id.as_str()), (2048, "987654"));
        assert_eq!(m.internal_date_ms, 1_700_000_000_123);
        assert_eq!(m.date_seconds(), 1_700_000_000.123);
        assert_eq!(m.json(), json);
        assert_eq!(m.header("From"), None);
        assert!(m.headers().is_empty() && m.attachments().is_empty());
        assert_eq!((m.text(), m.raw()), (None, None));
    }

    #[test]
    fn lenient_fields() {
        let m = Message::from_json(
            br#"{"id":"a","sizeEstimate":"12","internalDate":1700000000000,"historyId":null,"x":[1]}"#,
        )
        .unwrap();
        assert!(m.labels.is_empty() && m.thread_id.is_empty() && m.history_id.is_empty());
        assert_eq!((m.size, m.internal_date_ms), (12, 1_700_000_000_000));
        let m =
            Message::from_json(br#"{"id":"a","sizeEstimate":1e300,"internalDate":"-5"}"#).unwrap();
        assert_eq!((m.size, m.internal_date_ms), (i64::MAX as u64, -5));
        let m = Message::from_json(br#"{"id":"a","sizeEstimate":18446744073709551615}"#).unwrap();
        assert_eq!(m.size, i64::MAX as u64);
    }

    #[test]
    fn errors() {
        let err = |b: &[u8]| Message::from_json(b).unwrap_err();
        assert!(matches!(err(b"{\"id\":\"a\""), MessageError::Json(_)));
        assert!(matches!(err(b"[]"), MessageError::Json(_)));
        assert!(matches!(err(b""), MessageError::Json(_)));
        assert!(matches!(err(b"{\"id\":\"\xff\"}"), MessageError::NotUtf8));
        assert!(matches!(
            err(b"{\"threadId\":\"t\"}"),
            MessageError::MissingId
        ));
        assert!(matches!(err(b"{\"id\":\"\"}"), MessageError::MissingId));
        assert!(matches!(err(b"{\"id\":7}"), MessageError::Json(_)));
        assert!(matches!(
            err(b"{\"id\":\"a\",\"labelIds\":\"INBOX\"}"),
            MessageError::Json(_)
        ));
        assert!(matches!(
            err(b"{\"id\":\"a\",\"internalDate\":\"soon\"}"),
            MessageError::Json(_)
        ));
        let late_space = format!("{} {}", "A".repeat(9000), "A".repeat(999));
        let late_mix = format!("{}-{}+", "A".repeat(5000), "A".repeat(4998));
        for raw in [
            "a b",
            "QQ=Q",
            "A",
            "ab-c+d",
            "YW Jj",
            "é",
            &late_space,
            &late_mix,
        ] {
            let json = json!({"id": "a", "raw": raw}).to_string();
            assert!(
                matches!(err(json.as_bytes()), MessageError::BadRaw),
                "{raw}"
            );
        }
    }

    #[test]
    fn metadata() {
        let payload = json!({"mimeType": "multipart/mixed", "headers": top_headers()});
        let m = Message::from_json(with(envelope(), "payload", payload).as_bytes()).unwrap();
        assert_eq!(m.format, Format::Metadata);
        assert_eq!(m.header("from").unwrap(), "José García <jose@example.com>");
        assert_eq!(m.header("SUBJECT").unwrap(), "Café crème and more");
        assert_eq!(m.header("X-Missing"), None);
        let names: Vec<_> = m.headers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["From", "To", "Subject", "Date"]);
        assert_eq!((m.text(), m.raw()), (None, None));
        assert!(m.attachments().is_empty());
    }

    #[test]
    fn full() {
        let m = Message::from_json(full_json().as_bytes()).unwrap();
        assert_eq!(m.format, Format::Full);
        assert_eq!(m.header("To").unwrap(), "Ana <ana@example.com>");
        assert_eq!(m.header("subject").unwrap(), "Café crème and more");
        assert_eq!(m.headers().len(), 4);
        assert_eq!(m.text().unwrap(), "Hello Ana,\n\nThe café opens at 8.");
        assert_eq!(m.attachments(), [pdf_attachment(Some("ANGjdJ8_x-1"))]);
        assert_eq!(m.raw(), None);
    }

    #[test]
    fn raw_round_trip_with_and_without_padding() {
        let raw = rfc822();
        // 3 bytes short of a multiple of 3, so the padded form ends in "=".
        let raw = format!("{raw}{}", "x".repeat(3 - raw.len() % 3 + 1));
        let padded = URL_SAFE.encode(&raw);
        assert!(padded.ends_with('='));
        for encoded in [
            padded.clone(),
            URL_SAFE_NO_PAD.encode(&raw),
            STANDARD.encode(&raw),
        ] {
            let m = Message::from_json(raw_json(&encoded).as_bytes()).unwrap();
            assert_eq!(m.format, Format::Raw);
            assert_eq!(m.raw().unwrap(), raw.as_bytes());
            assert!(m.json().contains(&encoded));
        }
    }

    #[test]
    fn raw_helpers() {
        let m = Message::from_json(raw_json(&URL_SAFE_NO_PAD.encode(rfc822())).as_bytes()).unwrap();
        assert_eq!(m.header("FROM").unwrap(), "José García <jose@example.com>");
        assert_eq!(m.header("Subject").unwrap(), "Café crème and more");
        assert_eq!(
            m.header("received").unwrap(),
            "from mail.example.com (mail.example.com [192.0.2.1])        by mx.google.com \
             with ESMTPS id x1si123;        Tue, 14 Nov 2023 22:13:20 -0800 (PST)"
        );
        let headers = m.headers();
        assert_eq!(headers.len(), 9);
        assert_eq!(
            headers[0],
            ("Delivered-To".into(), "ana@example.com".into())
        );
        assert_eq!(headers[8].0, "Content-Type");
        assert_eq!(m.text().unwrap(), "Hello Ana,\n\nThe café opens at 8.");
        assert_eq!(m.attachments(), [pdf_attachment(None)]);
    }

    #[test]
    fn html_when_no_plain() {
        let payload = json!({
            "partId": "", "mimeType": "multipart/alternative", "filename": "",
            "headers": top_headers(), "body": {"size": 0},
            "parts": [
                text_part("0", "text/plain", "utf-8", b"  \r\n"),
                text_part("1", "text/html", "utf-8", HTML.as_bytes()),
            ]
        });
        let m = Message::from_json(with(envelope(), "payload", payload).as_bytes()).unwrap();
        assert_eq!(m.text().unwrap(), "Hello Ana,\n\nThe café opens at 8.");

        let raw = "Subject: hi\r\nContent-Type: text/html\r\n\r\n<div>a &amp; b</div><div>c</div>";
        let m = Message::from_json(raw_json(&URL_SAFE.encode(raw)).as_bytes()).unwrap();
        assert_eq!(m.text().unwrap(), "a & b\nc");
    }

    #[test]
    fn charset_bodies() {
        for (charset, data, want) in [
            ("ISO-8859-1", &b"Caf\xe9 cr\xe8me"[..], "Café crème"),
            ("windows-1252", b"\x93quoted\x94 \x80", "“quoted” €"),
            ("us-ascii", b"plain", "plain"),
            ("\"utf-8\"", "née".as_bytes(), "née"),
        ] {
            let payload = text_part("", "text/plain", charset, data);
            let m = Message::from_json(with(envelope(), "payload", payload).as_bytes()).unwrap();
            assert_eq!(m.format, Format::Full);
            assert_eq!(m.text().unwrap(), want, "{charset}");
        }
        let raw = b"Subject: =?iso-8859-1?q?na=EFve?=\r\nContent-Type: text/plain; \
            charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9\r\n";
        let m = Message::from_json(raw_json(&URL_SAFE.encode(raw)).as_bytes()).unwrap();
        assert_eq!(m.text().unwrap(), "Café");
        assert_eq!(m.header("subject").unwrap(), "naïve");
    }

    #[test]
    fn attachment_parts_are_not_body() {
        let mut attached = text_part("0", "text/plain", "utf-8", b"attached notes");
        attached["filename"] = json!("notes.txt");
        let mut disposed = text_part("1", "text/plain", "utf-8", b"disposed");
        disposed["headers"] = json!([h("Content-Disposition", " Attachment; x=1")]);
        let payload = json!({
            "partId": "", "mimeType": "multipart/mixed", "body": {"size": 0},
            "parts": [attached, disposed, text_part("2", "text/html", "utf-8", b"<b>body</b>")]
        });
        let m = Message::from_json(with(envelope(), "payload", payload).as_bytes()).unwrap();
        assert_eq!(m.text().unwrap(), "body");
        let names: Vec<_> = m.attachments().into_iter().map(|a| a.filename).collect();
        assert_eq!(names, ["notes.txt"]);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let raw = rfc822();
        let seeds = [
            envelope().to_string(),
            full_json(),
            raw_json(&URL_SAFE.encode(&raw)),
        ];
        let alphabet = b"{}[]\":,0123456789-eE.nulltruefalse \\u=?_<>&;#\xc3\xa9\xff";
        for _ in 0..3000 {
            let seed = seeds[rng.below(seeds.len())].as_bytes();
            let mut b = seed.to_vec();
            match rng.below(4) {
                0 => b.truncate(rng.below(b.len())),
                1 => {
                    for _ in 0..1 + rng.below(8) {
                        let i = rng.below(b.len());
                        b[i] = alphabet[rng.below(alphabet.len())];
                    }
                }
                2 => {
                    let i = rng.below(b.len());
                    b.drain(i..(i + rng.below(64)).min(b.len()));
                }
                _ => b = (0..rng.below(256)).map(|_| rng.next() as u8).collect(),
            }
            exercise(&b);
        }
        // Valid JSON holding broken MIME, headers and HTML.
        let pieces = [
            "--mixed\r\n",
            "Content-Type: multipart/mixed; boundary=\"mixed\"\r\n",
            "Content-Type: text/html; charset=iso-8859-1\r\n",
            "\r\n",
            "<p>",
            "&#99999999;",
            "=?utf-8?B?4oI=?=",
            "=?",
            "?=",
            "\r\n ",
            "Content-Transfer-Encoding: base64\r\n",
            "<script>",
            "<!--",
            "\u{e9}",
            "Subject:",
            ":",
        ];
        for _ in 0..1500 {
            let mut text = raw.clone();
            for _ in 0..1 + rng.below(6) {
                let mut at = rng.below(text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.insert_str(at, pieces[rng.below(pieces.len())]);
            }
            if rng.below(2) == 0 {
                let mut cut = rng.below(text.len());
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            exercise(raw_json(&URL_SAFE.encode(&text)).as_bytes());
            let payload = json!({"mimeType": "text/html", "headers": [h("Subject", &text)],
                "body": {"data": URL_SAFE.encode(&text)}});
            exercise(with(envelope(), "payload", payload).as_bytes());
        }
    }

    /// Deterministic noise: ChaCha8's stream is fixed for a seed.
    struct Rng(rand_chacha::ChaCha8Rng);
    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(rand::SeedableRng::seed_from_u64(seed))
        }
        fn next(&mut self) -> u64 {
            rand::Rng::gen(&mut self.0)
        }
        fn below(&mut self, n: usize) -> usize {
            rand::Rng::gen_range(&mut self.0, 0..n.max(1))
        }
    }

    fn exercise(bytes: &[u8]) {
        if let Ok(m) = Message::from_json(bytes) {
            let _ = (
                m.header("from"),
                m.headers(),
                m.text(),
                m.raw(),
                m.attachments(),
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let deep = format!(
            "{{\"id\":\"a\",\"payload\":{}{}",
            "{\"parts\":[".repeat(200),
            "]}".repeat(200)
        );
        assert!(Message::from_json(format!("{deep}}}").as_bytes()).is_err());
    }
}
