//! Messages as Gmail API JSON (the users.messages resource), attachment
//! bodies, and the text used for search and snippets.
//!
//! Header values are returned as Gmail returns them in `payload.headers`:
//! unfolded but not RFC 2047-decoded.

use std::borrow::Cow;

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use serde_json::{json, Map, Value};

use crate::sim::mailbox::{Body, SimMessage};

/// Prefix that makes attachment ids look like Gmail's opaque ones.
const ATTACHMENT_PREFIX: &str = "ANGjdJ";
/// Nesting deeper than this is not shown (Gmail too has limits); it also
/// bounds recursion on hostile input.
const MAX_DEPTH: usize = 32;
/// Characters of text in a snippet, before HTML escaping.
const SNIPPET_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Minimal,
    Metadata,
    Full,
    Raw,
}

impl Format {
    /// Parses the `format` query parameter (ASCII case-insensitive).
    pub(crate) fn parse(s: &str) -> Option<Format> {
        [
            ("minimal", Format::Minimal),
            ("metadata", Format::Metadata),
            ("full", Format::Full),
            ("raw", Format::Raw),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, f)| f)
    }
}

/// The users.messages resource for `m` in `format`. `metadata_headers`
/// filters payload headers (case-insensitive) in metadata format; empty
/// means all.
pub(crate) fn message_json(m: &SimMessage, format: Format, metadata_headers: &[String]) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), m.id.clone().into());
    o.insert("threadId".into(), m.thread_id.clone().into());
    if !m.label_ids.is_empty() {
        o.insert("labelIds".into(), m.label_ids.clone().into());
    }
    o.insert("snippet".into(), m.snippet.clone().into());
    o.insert("sizeEstimate".into(), m.size.into());
    o.insert("historyId".into(), m.history_id.to_string().into());
    o.insert("internalDate".into(), m.internal_date_ms.to_string().into());
    match format {
        Format::Minimal => {}
        Format::Metadata => {
            o.insert("payload".into(), metadata_payload(m, metadata_headers));
        }
        Format::Full => {
            o.insert("payload".into(), full_payload(m));
        }
        Format::Raw => {
            o.insert("raw".into(), URL_SAFE.encode(m.raw()).into());
        }
    }
    Value::Object(o)
}

fn metadata_payload(m: &SimMessage, wanted: &[String]) -> Value {
    // Generated messages render only their header block: no bodies needed.
    let block: Cow<'_, [u8]> = match &m.body {
        Body::Stored(b) => Cow::Borrowed(&b[..]),
        Body::Generated(r) => Cow::Owned(r.render_headers()),
    };
    let headers = split_headers(&block);
    let mime = mime_type(&headers);
    let shown: Vec<Value> = headers
        .iter()
        .filter(|(name, _)| {
            wanted.is_empty() || wanted.iter().any(|w| w.eq_ignore_ascii_case(name))
        })
        .map(header_json)
        .collect();
    json!({"partId": "", "mimeType": mime, "filename": "", "headers": shown})
}

fn header_json((name, value): &(String, String)) -> Value {
    json!({"name": name, "value": value})
}

fn full_payload(m: &SimMessage) -> Value {
    let raw = m.raw();
    match MessageParser::default().parse(&raw[..]) {
        Some(msg) if !msg.parts.is_empty() => part_json(&msg, &raw, 0, String::new(), &m.id, 0),
        _ => fallback_part(&raw),
    }
}

/// A message the parser cannot make sense of: one text/plain part.
fn fallback_part(raw: &[u8]) -> Value {
    let headers = split_headers(raw);
    let body = raw.get(header_end(raw)..).unwrap_or_default();
    json!({
        "partId": "",
        "mimeType": "text/plain",
        "filename": "",
        "headers": headers.iter().map(header_json).collect::<Vec<_>>(),
        "body": body_json(body),
    })
}

fn body_json(data: &[u8]) -> Value {
    if data.is_empty() {
        json!({"size": 0})
    } else {
        json!({"size": data.len(), "data": URL_SAFE.encode(data)})
    }
}

/// Gmail numbers children "0", "1", ... under the root and "0.1" below.
fn child_id(parent: &str, i: usize) -> String {
    if parent.is_empty() {
        i.to_string()
    } else {
        format!("{parent}.{i}")
    }
}

fn part_json(
    msg: &Message<'_>,
    raw: &[u8],
    idx: usize,
    part_id: String,
    msg_id: &str,
    depth: usize,
) -> Value {
    let Some(part) = msg.parts.get(idx) else {
        return json!({
            "partId": part_id,
            "mimeType": "text/plain",
            "filename": "",
            "headers": [],
            "body": {"size": 0},
        });
    };
    let headers = raw
        .get(part.offset_header as usize..part.offset_body as usize)
        .map(split_headers)
        .unwrap_or_default();
    let filename = part.attachment_name().unwrap_or("").to_string();
    let mut o = Map::new();
    o.insert("partId".into(), part_id.clone().into());
    o.insert("mimeType".into(), mime_type(&headers).into());
    o.insert("filename".into(), filename.clone().into());
    o.insert(
        "headers".into(),
        headers.iter().map(header_json).collect::<Vec<_>>().into(),
    );
    if let PartType::Multipart(children) = &part.body {
        o.insert("body".into(), json!({"size": 0}));
        if depth < MAX_DEPTH {
            let parts: Vec<Value> = children
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    part_json(
                        msg,
                        raw,
                        c as usize,
                        child_id(&part_id, i),
                        msg_id,
                        depth + 1,
                    )
                })
                .collect();
            o.insert("parts".into(), parts.into());
        }
    } else {
        let data = decoded(part, raw);
        let body = if filename.is_empty() {
            body_json(&data)
        } else {
            json!({"attachmentId": attachment_id(msg_id, &part_id), "size": data.len()})
        };
        o.insert("body".into(), body);
    }
    Value::Object(o)
}

/// Transfer-decoded content. Text in a charset other than UTF-8 is given in
/// that charset (as Gmail does), not converted.
fn decoded<'a>(part: &'a MessagePart<'a>, raw: &[u8]) -> Cow<'a, [u8]> {
    let converted = matches!(part.body, PartType::Text(_) | PartType::Html(_))
        && part
            .content_type()
            .and_then(|ct| ct.attribute("charset"))
            .is_some_and(|cs| {
                !cs.eq_ignore_ascii_case("utf-8") && !cs.eq_ignore_ascii_case("us-ascii")
            });
    if converted && !part.is_encoding_problem {
        if let Some(src) = raw.get(part.offset_body as usize..part.offset_end as usize) {
            let bytes = match part.encoding {
                Encoding::Base64 => base64_decode(src),
                Encoding::QuotedPrintable => quoted_printable_decode(src),
                Encoding::None => Some(src.to_vec()),
            };
            if let Some(b) = bytes {
                return Cow::Owned(b);
            }
        }
    }
    Cow::Borrowed(part.contents())
}

/// Opaque, deterministic id naming a part of one message.
fn attachment_id(msg_id: &str, part_id: &str) -> String {
    format!(
        "{ATTACHMENT_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(format!("{msg_id}:{part_id}"))
    )
}

/// Decoded bytes of the part `attachment_id` names; None for an id that is
/// malformed, names another message, or names no leaf part.
pub(crate) fn attachment(m: &SimMessage, attachment_id: &str) -> Option<Vec<u8>> {
    let encoded = attachment_id.strip_prefix(ATTACHMENT_PREFIX)?;
    let plain = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    let (msg_id, part_id) = plain.split_once(':')?;
    if msg_id != m.id {
        return None;
    }
    if let Body::Generated(r) = &m.body {
        return r.attachment_content(part_id);
    }
    let raw = m.raw();
    let msg = MessageParser::default().parse(&raw[..])?;
    let mut idx = 0usize;
    for step in part_id.split('.').filter(|s| !s.is_empty()) {
        let n: usize = step.parse().ok()?;
        match &msg.parts.get(idx)?.body {
            PartType::Multipart(children) => idx = *children.get(n)? as usize,
            _ => return None,
        }
    }
    let part = msg.parts.get(idx)?;
    if part.is_multipart() {
        return None;
    }
    Some(decoded(part, &raw).into_owned())
}

/// The best text of a message: text/plain if any, else HTML without tags.
/// Unparseable input is taken as plain text.
pub(crate) fn text_of(raw: &[u8]) -> String {
    match MessageParser::default().parse(raw) {
        Some(msg) => msg.body_text(0).map(Cow::into_owned).unwrap_or_default(),
        None => String::from_utf8_lossy(raw).into_owned(),
    }
}

/// Gmail's snippet: the first ~200 characters of text, whitespace folded,
/// HTML-escaped.
pub(crate) fn snippet(text: &str) -> String {
    let mut out = String::with_capacity(SNIPPET_CHARS + 32);
    let mut n = 0;
    let mut gap = false;
    for c in text.chars() {
        if c.is_whitespace() {
            gap = n > 0;
            continue;
        }
        if n + usize::from(gap) >= SNIPPET_CHARS {
            break;
        }
        if gap {
            out.push(' ');
            n += 1;
            gap = false;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
        n += 1;
    }
    out
}

/// Offset just past the header section (after its empty line), or the
/// length when there is none.
fn header_end(raw: &[u8]) -> usize {
    let mut pos = 0;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        pos += line.len();
        if line == b"\n" || line == b"\r\n" {
            return pos;
        }
    }
    raw.len()
}

/// Header fields of the header section at the start of `raw`, in order,
/// unfolded, values trimmed. Lines that are not fields are skipped.
pub(crate) fn split_headers(raw: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.first() {
            None => break,
            Some(b' ' | b'\t') => {
                if let Some((_, v)) = out.last_mut() {
                    v.extend_from_slice(line);
                }
            }
            Some(_) => {
                if let Some(colon) = line.iter().position(|&b| b == b':') {
                    let name = line[..colon].trim_ascii();
                    if !name.is_empty() {
                        out.push((
                            String::from_utf8_lossy(name).into_owned(),
                            line[colon + 1..].trim_ascii_start().to_vec(),
                        ));
                    }
                }
            }
        }
    }
    out.into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(v.trim_ascii_end()).into_owned()))
        .collect()
}

/// Lowercased type/subtype from Content-Type, text/plain by default.
fn mime_type(headers: &[(String, String)]) -> String {
    content_type(headers)
        .filter(|t| t.contains('/') && !t.contains(char::is_whitespace))
        .unwrap_or_else(|| "text/plain".to_string())
}

/// Content-Type without its parameters, lowercased, as written.
pub(super) fn content_type(headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::generate::generate;
    use std::sync::Arc;

    const NOW: i64 = 1_767_225_600_000;

    fn stored(id: &str, raw: &[u8]) -> SimMessage {
        SimMessage {
            id: id.into(),
            thread_id: id.into(),
            label_ids: vec![],
            internal_date_ms: 1_700_000_000_000,
            history_id: 42,
            size: raw.len(),
            from: String::new(),
            to: String::new(),
            subject: String::new(),
            attachment_names: vec![],
            snippet: String::new(),
            body: Body::Stored(Arc::from(raw)),
        }
    }

    const MIXED: &[u8] = b"\
        From: =?UTF-8?Q?Jos=C3=A9?= <jose@example.com>\r\n\
        Subject: =?UTF-8?B?5bGx55Sw?=\r\n\
        \x20long\r\n\
        Content-Type: multipart/mixed; boundary=\"b0\"\r\n\
        \r\n\
        --b0\r\n\
        Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
        \r\n\
        --b1\r\n\
        Content-Type: text/plain; charset=\"UTF-8\"\r\n\
        \r\n\
        Hello <world> & 'you'\r\n\
        \r\n\
        --b1\r\n\
        Content-Type: text/html; charset=\"UTF-8\"\r\n\
        \r\n\
        <p>Hello</p>\r\n\
        \r\n\
        --b1--\r\n\
        \r\n\
        --b0\r\n\
        Content-Type: application/pdf; name=\"a.pdf\"\r\n\
        Content-Disposition: attachment; filename=\"a.pdf\"\r\n\
        Content-Transfer-Encoding: base64\r\n\
        \r\n\
        JVBERi0xLjQK\r\n\
        --b0\r\n\
        Content-Type: text/plain; charset=\"ISO-8859-1\"\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n\
        caf=E9\r\n\
        --b0--\r\n";

    #[test]
    fn format_parse() {
        assert_eq!(Format::parse("metadata"), Some(Format::Metadata));
        assert_eq!(Format::parse("RAW"), Some(Format::Raw));
        assert_eq!(Format::parse("minimal"), Some(Format::Minimal));
        assert_eq!(Format::parse("full"), Some(Format::Full));
        assert_eq!(Format::parse("fullest"), None);
    }

    #[test]
    fn minimal_shape() {
        let mut m = stored("00000000000000aa", MIXED);
        let v = message_json(&m, Format::Minimal, &[]);
        assert!(v.get("labelIds").is_none(), "no labels, no key");
        assert_eq!(v["historyId"], "42");
        assert_eq!(v["internalDate"], "1700000000000");
        assert_eq!(v["sizeEstimate"], MIXED.len());
        assert!(v.get("payload").is_none() && v.get("raw").is_none());
        m.label_ids = vec!["INBOX".into()];
        let v = message_json(&m, Format::Minimal, &[]);
        assert_eq!(v["labelIds"], json!(["INBOX"]));
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 7);
    }

    #[test]
    fn metadata_filters_headers_in_message_order() {
        let m = stored("00000000000000aa", MIXED);
        let v = message_json(&m, Format::Metadata, &["subject".into(), "FROM".into()]);
        let p = &v["payload"];
        assert_eq!(p["mimeType"], "multipart/mixed");
        assert_eq!(p["partId"], "");
        assert!(p.get("body").is_none() && p.get("parts").is_none());
        assert_eq!(
            p["headers"],
            json!([
                {"name": "From", "value": "=?UTF-8?Q?Jos=C3=A9?= <jose@example.com>"},
                {"name": "Subject", "value": "=?UTF-8?B?5bGx55Sw?= long"},
            ])
        );
        let all = message_json(&m, Format::Metadata, &[]);
        assert_eq!(all["payload"]["headers"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn full_tree_numbering_and_bodies() {
        let m = stored("00000000000000aa", MIXED);
        let v = message_json(&m, Format::Full, &[]);
        let p = &v["payload"];
        assert_eq!(p["partId"], "");
        assert_eq!(p["body"], json!({"size": 0}));
        let alt = &p["parts"][0];
        assert_eq!(alt["partId"], "0");
        assert_eq!(alt["mimeType"], "multipart/alternative");
        let text = &alt["parts"][0];
        assert_eq!(text["partId"], "0.0");
        assert_eq!(text["mimeType"], "text/plain");
        let data = URL_SAFE
            .decode(text["body"]["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(data, b"Hello <world> & 'you'\r\n");
        assert_eq!(text["body"]["size"], data.len());
        assert_eq!(alt["parts"][1]["partId"], "0.1");
        let pdf = &p["parts"][1];
        assert_eq!(pdf["partId"], "1");
        assert_eq!(pdf["filename"], "a.pdf");
        assert!(pdf["body"].get("data").is_none());
        assert_eq!(pdf["body"]["size"], 9);
        let id = pdf["body"]["attachmentId"].as_str().unwrap();
        assert_eq!(attachment(&m, id).unwrap(), b"%PDF-1.4\n");
        // The Latin-1 part keeps its charset's bytes.
        let latin = &p["parts"][2];
        let data = URL_SAFE
            .decode(latin["body"]["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(data, b"caf\xe9");
        // Ids of other messages, and garbage, are refused.
        let other = stored("00000000000000bb", MIXED);
        assert!(attachment(&other, id).is_none());
        assert!(attachment(&m, "ANGjdJ!!").is_none());
        assert!(attachment(&m, &attachment_id(&m.id, "9")).is_none());
        assert!(
            attachment(&m, &attachment_id(&m.id, "0")).is_none(),
            "multipart is no attachment"
        );
    }

    #[test]
    fn raw_round_trip() {
        let m = stored("00000000000000aa", MIXED);
        let v = message_json(&m, Format::Raw, &[]);
        assert!(v.get("payload").is_none());
        let s = v["raw"].as_str().unwrap();
        assert!(!s.contains('+') && !s.contains('/'));
        assert_eq!(URL_SAFE.decode(s).unwrap(), MIXED);
    }

    #[test]
    fn text_and_snippet() {
        assert_eq!(text_of(MIXED), "Hello <world> & 'you'\r\n");
        assert_eq!(
            snippet(&text_of(MIXED)),
            "Hello &lt;world&gt; &amp; &#39;you&#39;"
        );
        let html =
            b"Content-Type: text/html\r\n\r\n<html><body><p>Hi <b>there</b></p></body></html>\r\n";
        assert!(text_of(html).contains("Hi there"));
        assert_eq!(snippet("  a\r\n\r\n  b\t\"c\"  "), "a b &quot;c&quot;");
        let long: String = "word ".repeat(100);
        let s = snippet(&long);
        assert!(s.chars().count() <= 200 && s.len() > 190, "{}", s.len());
        assert!(!s.ends_with(' '));
    }

    #[test]
    fn malformed_input_never_panics() {
        let mut seed = 1u64;
        let mut samples: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"no headers at all, just text".to_vec(),
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n".to_vec(),
            b"Content-Type: multipart/mixed\r\n\r\nbody".to_vec(),
            b"Content-Transfer-Encoding: base64\r\n\r\n!!!!====".to_vec(),
            b"Subject: \xff\xfe\r\n\r\n\xff".to_vec(),
            b":\r\n \r\n\t\r\n".to_vec(),
        ];
        let mut deep = Vec::new();
        for i in 0..200 {
            deep.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        samples.push(deep);
        for _ in 0..300 {
            let len = (seed % 400) as usize;
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v.push(
                    b"ab:\r\n -=?\"<>;boundary=Content-Type: multipart/\xff"
                        [(seed >> 33) as usize % 44],
                );
            }
            samples.push(v);
        }
        for raw in samples {
            let m = stored("00000000000000aa", &raw);
            for f in [Format::Minimal, Format::Metadata, Format::Full, Format::Raw] {
                let v = message_json(&m, f, &[]);
                assert_eq!(v["id"], "00000000000000aa");
            }
            let _ = text_of(&raw);
            assert!(attachment(&m, &attachment_id(&m.id, "0.0")).is_none() || !raw.is_empty());
        }
        let bare = stored("00000000000000aa", b"just text\n");
        let v = message_json(&bare, Format::Full, &[]);
        assert_eq!(v["payload"]["mimeType"], "text/plain");
        assert_eq!(v["payload"]["partId"], "");
    }

    #[test]
    fn generated_messages_render_consistently() {
        let mb = generate(4, 600, "me@example.com", NOW);
        let mut attachments = 0;
        for m in mb.messages.values() {
            let meta = message_json(m, Format::Metadata, &[]);
            let full = message_json(m, Format::Full, &[]);
            // Metadata from the header block equals full's root headers.
            assert_eq!(meta["payload"]["headers"], full["payload"]["headers"]);
            assert_eq!(meta["payload"]["mimeType"], full["payload"]["mimeType"]);
            let raw = message_json(m, Format::Raw, &[]);
            assert_eq!(
                URL_SAFE.decode(raw["raw"].as_str().unwrap()).unwrap(),
                &m.raw()[..]
            );
            assert_eq!(m.snippet, snippet(&text_of(&m.raw())));
            // Every attachment id in full resolves to its part's bytes.
            let mut stack = vec![&full["payload"]];
            while let Some(p) = stack.pop() {
                if let Some(parts) = p["parts"].as_array() {
                    stack.extend(parts);
                }
                if let Some(id) = p["body"]["attachmentId"].as_str() {
                    let bytes = attachment(m, id).expect("attachment");
                    assert_eq!(bytes.len(), p["body"]["size"].as_u64().unwrap() as usize);
                    assert!(!p["filename"].as_str().unwrap().is_empty());
                    attachments += 1;
                    let Body::Generated(r) = &m.body else {
                        unreachable!()
                    };
                    let parsed = stored(&m.id, &r.render());
                    assert_eq!(attachment(&parsed, id), Some(bytes));
                }
            }
        }
        assert!(attachments > 10);
    }
}
