//! Gmail batch wire format, client side: encode inner requests into one
//! `multipart/mixed` body, and decode the `multipart/mixed` answer while it
//! streams in. Written independently of the simulator's parser (`src/sim`) on
//! purpose, so a bug on one side cannot hide a bug on the other.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::{Buf, Bytes, BytesMut};
use memchr::{memchr, memmem};

/// Parts larger than this are refused rather than buffered: a `format=raw`
/// message is at most ~50 MB, ~67 MB once base64url-encoded, so anything far
/// beyond that is a broken or hostile stream, not mail.
const DEFAULT_MAX_PART_LEN: usize = 256 << 20;

/// Longest run of spaces/tabs accepted after a boundary on a delimiter line;
/// bounds the work spent re-checking a candidate delimiter on every push.
const MAX_PADDING: usize = 256;

/// RFC 2046 allows 70 characters; some servers go longer, none this long.
const MAX_BOUNDARY_LEN: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch response is not multipart (Content-Type {0:?})")]
    NotMultipart(String),
    #[error("batch response Content-Type has no usable boundary ({0:?})")]
    NoBoundary(String),
    #[error("batch request {index} cannot be encoded: {reason}")]
    InvalidRequest { index: usize, reason: &'static str },
    #[error("batch response part {index} is malformed: {reason}")]
    Malformed { index: usize, reason: &'static str },
    #[error("batch response part {index} is larger than {limit} bytes")]
    PartTooLarge { index: usize, limit: usize },
    #[error("batch response ended after {parts} complete parts, before its closing boundary")]
    Truncated { parts: usize },
}

/// One call inside a batch. `path_and_query` is a path only, e.g.
/// `/gmail/v1/users/me/messages/abc?format=metadata`, already percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InnerRequest {
    pub(crate) content_id: String,
    pub(crate) verb: &'static str,
    pub(crate) path_and_query: String,
    pub(crate) json_body: Option<Vec<u8>>,
}

/// Encode a batch body. Returns `(Content-Type header value, body)`. The
/// boundary is random and checked against every request, so it cannot occur
/// inside the body. Fails if a request would corrupt the framing (line breaks
/// or spaces in the path, line breaks or `<>` in the Content-ID, ...).
pub(crate) fn encode(requests: &[InnerRequest]) -> Result<(String, Vec<u8>), BatchError> {
    for (index, r) in requests.iter().enumerate() {
        check_request(r).map_err(|reason| BatchError::InvalidRequest { index, reason })?;
    }
    let boundary = loop {
        let candidate = random_boundary();
        let finder = memmem::Finder::new(candidate.as_bytes());
        let clashes = requests.iter().any(|r| {
            finder.find(r.content_id.as_bytes()).is_some()
                || finder.find(r.path_and_query.as_bytes()).is_some()
                || r.json_body
                    .as_deref()
                    .is_some_and(|b| finder.find(b).is_some())
        });
        if !clashes {
            break candidate;
        }
    };

    let size: usize = requests
        .iter()
        .map(|r| {
            160 + boundary.len()
                + r.content_id.len()
                + r.path_and_query.len()
                + r.json_body.as_ref().map_or(0, Vec::len)
        })
        .sum();
    let mut body = Vec::with_capacity(size + boundary.len() + 8);
    for r in requests {
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"\r\nContent-Type: application/http\r\nContent-ID: <");
        body.extend_from_slice(r.content_id.as_bytes());
        body.extend_from_slice(b">\r\n\r\n");
        body.extend_from_slice(r.verb.as_bytes());
        body.push(b' ');
        body.extend_from_slice(r.path_and_query.as_bytes());
        body.extend_from_slice(b" HTTP/1.1\r\n");
        if let Some(json) = &r.json_body {
            body.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
            body.extend_from_slice(json.len().to_string().as_bytes());
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(json);
        } else {
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\n");
    Ok((format!("multipart/mixed; boundary={boundary}"), body))
}

fn check_request(r: &InnerRequest) -> Result<(), &'static str> {
    if r.verb.is_empty() || !r.verb.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("method must be an upper-case HTTP method");
    }
    if !r.path_and_query.starts_with('/') {
        return Err("path must start with '/'");
    }
    if r.path_and_query.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("path contains a space or control character (percent-encode it)");
    }
    if r.content_id.is_empty()
        || r.content_id
            .bytes()
            .any(|b| !b.is_ascii_graphic() || b == b'<' || b == b'>')
    {
        return Err("Content-ID must be printable ASCII without spaces or '<' '>'");
    }
    Ok(())
}

/// Unpredictable enough to never match message content by accident; the
/// caller still checks, so this needs no cryptographic strength.
fn random_boundary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = RandomState::new();
    let a = state.hash_one((n, SystemTime::now()));
    let b = state.hash_one((a, n));
    format!("batch_{a:016x}{b:016x}")
}

/// One decoded part: the inner HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerResponse {
    /// The request's Content-ID with `<>` and `response-` removed; `None` if
    /// the part had none (match by order then).
    pub(crate) content_id: Option<String>,
    pub(crate) status: u16,
    /// Inner response headers, names as sent; folded values are joined.
    headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl InnerResponse {
    /// First header with this name, compared case-insensitively.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `<response-abc>` -> `abc`; also accepts the ID without brackets or prefix.
pub(crate) fn response_id(content_id: &str) -> &str {
    let id = content_id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id).trim();
    match id.get(..9) {
        Some(prefix) if prefix.eq_ignore_ascii_case("response-") => &id[9..],
        _ => id,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    Part,
    Done,
    Failed,
}

/// Streaming decoder for a batch response body.
///
/// Feed network chunks with [`push`](Self::push) and drain
/// [`next_part`](Self::next_part) after each; call [`finish`](Self::finish)
/// at end of stream. Only the current, incomplete part is buffered: bytes are
/// dropped as soon as their part is handed out, and each body is a slice of
/// the buffer (copied once, from the chunk into the buffer).
#[derive(Debug)]
pub struct Decoder {
    /// In state `Part` this starts with the `\n` that ended the previous
    /// delimiter line, so every delimiter, including the first, is found with
    /// the one needle `\n--boundary`. It starts as a lone virtual `\n` so a
    /// delimiter on the very first line of the stream matches too.
    buf: BytesMut,
    needle: memmem::Finder<'static>,
    /// Where the next delimiter search starts; earlier bytes were ruled out.
    scan_from: usize,
    state: State,
    /// Parts completed so far, well-formed or not: the index of the next one.
    parts: usize,
    max_part_len: usize,
}

impl Decoder {
    /// `content_type` is the outer response's Content-Type header value.
    pub fn new(content_type: &str) -> Result<Decoder, BatchError> {
        let boundary = boundary_of(content_type)?;
        let mut needle = Vec::with_capacity(boundary.len() + 3);
        needle.extend_from_slice(b"\n--");
        needle.extend_from_slice(boundary.as_bytes());
        Ok(Decoder {
            buf: BytesMut::from(&b"\n"[..]),
            needle: memmem::Finder::new(&needle).into_owned(),
            scan_from: 0,
            state: State::Preamble,
            parts: 0,
            max_part_len: DEFAULT_MAX_PART_LEN,
        })
    }

    /// Refuse parts longer than `limit` bytes (default [`DEFAULT_MAX_PART_LEN`]).
    pub(crate) fn with_max_part_len(mut self, limit: usize) -> Decoder {
        self.max_part_len = limit;
        self
    }

    /// Append bytes received from the network. Bytes after the closing
    /// delimiter (the epilogue) are dropped.
    pub fn push(&mut self, chunk: &[u8]) {
        if matches!(self.state, State::Preamble | State::Part) {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The next complete part, if one is complete. A malformed part is
    /// reported once as `Err(Malformed { index, .. })` and skipped, so the
    /// caller may keep calling to get the parts after it.
    pub fn next_part(&mut self) -> Result<Option<InnerResponse>, BatchError> {
        while matches!(self.state, State::Preamble | State::Part) {
            match scan(&self.buf, &self.needle, self.scan_from) {
                Scan::NeedMore { resume } => {
                    if self.state == State::Preamble {
                        // Nothing before `resume` can begin a delimiter.
                        self.buf.advance(resume);
                        self.scan_from = 0;
                    } else if self.buf.len() > self.max_part_len.saturating_add(1) {
                        self.state = State::Failed;
                        self.buf = BytesMut::new();
                        return Err(BatchError::PartTooLarge {
                            index: self.parts,
                            limit: self.max_part_len,
                        });
                    } else {
                        self.scan_from = resume;
                    }
                    return Ok(None);
                }
                Scan::Found {
                    at,
                    line_end,
                    close,
                } => {
                    let segment = if close {
                        let s = self.buf.split_to(at);
                        self.buf = BytesMut::new();
                        s
                    } else {
                        // Keep the delimiter line's final `\n` (see `buf`).
                        self.buf.split_to(line_end)
                    };
                    self.scan_from = 0;
                    let was_preamble = self.state == State::Preamble;
                    self.state = if close { State::Done } else { State::Part };
                    if was_preamble {
                        continue;
                    }
                    let index = self.parts;
                    self.parts += 1;
                    // The line break before a delimiter belongs to the delimiter.
                    let end = if at >= 2 && segment[at - 1] == b'\r' {
                        at - 1
                    } else {
                        at.max(1)
                    };
                    // A close delimiter right after a delimiter line: an
                    // empty part (no leading line break to skip).
                    let content = if at == 0 {
                        Bytes::new()
                    } else {
                        segment.freeze().slice(1..end)
                    };
                    return parse_part(content)
                        .map(Some)
                        .map_err(|reason| BatchError::Malformed { index, reason });
                }
            }
        }
        Ok(None)
    }

    /// The closing delimiter has been read: no part follows.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Call at end of stream. `Err(Truncated)` unless the closing delimiter
    /// has been received; parts already complete stay available from
    /// [`next_part`](Self::next_part) either way.
    pub fn finish(&mut self) -> Result<(), BatchError> {
        let truncated = Err(BatchError::Truncated { parts: self.parts });
        match self.state {
            State::Done => Ok(()),
            State::Failed => truncated,
            State::Preamble | State::Part => {
                // The close may sit behind parts the caller has not taken yet.
                let mut from = self.scan_from;
                loop {
                    match scan(&self.buf, &self.needle, from) {
                        Scan::Found { close: true, .. } => return Ok(()),
                        Scan::Found { line_end, .. } => from = line_end,
                        Scan::NeedMore { .. } => return truncated,
                    }
                }
            }
        }
    }
}

fn boundary_of(content_type: &str) -> Result<String, BatchError> {
    let (media, mut params) = content_type.split_once(';').unwrap_or((content_type, ""));
    let is_multipart = media
        .trim()
        .get(..10)
        .is_some_and(|m| m.eq_ignore_ascii_case("multipart/"));
    if !is_multipart {
        return Err(BatchError::NotMultipart(content_type.to_string()));
    }
    let no_boundary = || BatchError::NoBoundary(content_type.to_string());
    loop {
        params = params.trim_start_matches([';', ' ', '\t']);
        let Some(eq) = params.find(['=', ';']) else {
            return Err(no_boundary());
        };
        if params.as_bytes()[eq] == b';' {
            params = &params[eq..]; // a parameter without a value
            continue;
        }
        let name = params[..eq].trim();
        let after = params[eq + 1..].trim_start();
        let (value, rest) = match after.strip_prefix('"') {
            Some(quoted) => unquote(quoted),
            None => {
                let end = after.find(';').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            }
        };
        if name.eq_ignore_ascii_case("boundary") {
            let usable = !value.is_empty()
                && value.len() <= MAX_BOUNDARY_LEN
                && !value.bytes().any(|b| b.is_ascii_control());
            return if usable {
                Ok(value)
            } else {
                Err(no_boundary())
            };
        }
        params = rest;
    }
}

/// Body of a quoted-string (after its opening quote) -> (value, rest after the closing quote).
fn unquote(s: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (value, &s[i + 1..]),
            '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
            c => value.push(c),
        }
    }
    (value, "")
}

enum Scan {
    /// A delimiter whose `\n` is at `at`; for an open delimiter `line_end` is
    /// the index of the `\n` ending its line.
    Found {
        at: usize,
        line_end: usize,
        close: bool,
    },
    /// No complete delimiter yet; search again from `resume` once more arrives.
    NeedMore { resume: usize },
}

fn scan(buf: &[u8], needle: &memmem::Finder<'_>, from: usize) -> Scan {
    let len = needle.needle().len();
    let mut pos = from;
    while let Some(i) = needle.find(&buf[pos..]) {
        let at = pos + i;
        let tail = &buf[at + len..];
        match tail {
            [b'-', b'-', ..] => {
                return Scan::Found {
                    at,
                    line_end: at + len + 2,
                    close: true,
                }
            }
            [b'-'] => return Scan::NeedMore { resume: at },
            _ => {}
        }
        let pad = tail
            .iter()
            .take(MAX_PADDING + 1)
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if pad <= MAX_PADDING {
            match &tail[pad..] {
                [] | [b'\r'] => return Scan::NeedMore { resume: at },
                [b'\n', ..] | [b'\r', b'\n', ..] => {
                    let nl = pad + usize::from(tail[pad] == b'\r');
                    return Scan::Found {
                        at,
                        line_end: at + len + nl,
                        close: false,
                    };
                }
                _ => {}
            }
        }
        // `--boundary` followed by something else is body text, not a delimiter.
        pos = at + 1;
    }
    Scan::NeedMore {
        resume: pos.max((buf.len() + 1).saturating_sub(len)),
    }
}

fn parse_part(part: Bytes) -> Result<InnerResponse, &'static str> {
    let mut pos = 0;
    let mut content_id = None;
    // Some servers omit the part headers and start with the status line.
    if !starts_with_ignore_case(&part, b"HTTP/") {
        let (headers, end) = parse_headers(&part);
        pos = end.ok_or("no blank line after the part headers")?;
        content_id = find_header(&headers, "content-id")
            .map(response_id)
            .filter(|id| !id.is_empty())
            .map(str::to_string);
    }
    while let Some(rest) = part[pos..]
        .strip_prefix(b"\r\n")
        .or_else(|| part[pos..].strip_prefix(b"\n"))
    {
        pos = part.len() - rest.len();
    }
    let line_len = memchr(b'\n', &part[pos..]).unwrap_or(part.len() - pos);
    let status = parse_status(&part[pos..pos + line_len]).ok_or("no valid HTTP status line")?;
    pos = (pos + line_len + 1).min(part.len());
    let (headers, end) = parse_headers(&part[pos..]);
    // A response that ends right after its headers simply has no body.
    let mut body = part.slice(end.map_or(part.len(), |e| pos + e)..);
    // Trust Content-Length only to trim a stray line break some servers add.
    if let Some(n) = find_header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        if n <= body.len() && body[n..].iter().all(|&b| b == b'\r' || b == b'\n') {
            body.truncate(n);
        }
    }
    Ok(InnerResponse {
        content_id,
        status,
        headers,
        body,
    })
}

/// Header lines up to the first blank line, continuation lines joined with a
/// space. Returns the headers and the offset just past the blank line, or
/// `None` if the block ended without one.
fn parse_headers(block: &[u8]) -> (Vec<(String, String)>, Option<usize>) {
    let (fields, end) = super::rfc822::fields(block);
    let headers = fields
        .into_iter()
        .map(|f| {
            let mut value = String::new();
            for line in f
                .lines
                .iter()
                .map(|l| l.trim_ascii())
                .filter(|l| !l.is_empty())
            {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(&String::from_utf8_lossy(line));
            }
            (String::from_utf8_lossy(f.name).into_owned(), value)
        })
        .collect();
    (headers, end)
}

/// `HTTP/1.1 200 OK` or `HTTP/1.1 200` -> 200.
fn parse_status(line: &[u8]) -> Option<u16> {
    if !starts_with_ignore_case(line, b"HTTP/") {
        return None;
    }
    let version_end = line.iter().position(|&b| b == b' ' || b == b'\t')?;
    let rest = line[version_end..].trim_ascii();
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ' && b != b'\t')
    {
        return None;
    }
    let code = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    (100..=599).contains(&code).then_some(code)
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything a decode produced, in order: parts, per-part errors, and
    /// the result of `finish`.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        items: Vec<Result<InnerResponse, BatchError>>,
        finish: Result<(), BatchError>,
    }

    fn drain(dec: &mut Decoder, items: &mut Vec<Result<InnerResponse, BatchError>>) {
        loop {
            match dec.next_part() {
                Ok(Some(part)) => items.push(Ok(part)),
                Ok(None) => return,
                Err(e) => items.push(Err(e)),
            }
        }
    }

    fn decode_chunks<'a>(ct: &str, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
        let mut dec = Decoder::new(ct).unwrap();
        let mut items = Vec::new();
        for chunk in chunks {
            dec.push(chunk);
            drain(&mut dec, &mut items);
        }
        let finish = dec.finish();
        drain(&mut dec, &mut items);
        Outcome { items, finish }
    }

    fn decode_all(ct: &str, data: &[u8]) -> Outcome {
        decode_chunks(ct, [data])
    }

    fn ok_parts(outcome: &Outcome) -> Vec<&InnerResponse> {
        outcome.items.iter().map(|r| r.as_ref().unwrap()).collect()
    }

    fn part(id: &str, status_line: &str, body: &str) -> String {
        format!(
            "--B\r\nContent-Type: application/http\r\nContent-ID: <response-{id}>\r\n\r\n\
             {status_line}\r\nContent-Type: application/json; charset=UTF-8\r\n\
             Vary: Origin\r\n\r\n{body}\r\n"
        )
    }

    /// Three parts (200, 404, 429) in Google's shape, boundary `B`.
    fn sample() -> String {
        let mut s = String::new();
        s += &part(
            "1",
            "HTTP/1.1 200 OK",
            r#"{"id":"a1","labelIds":["INBOX"]}"#,
        );
        s += &part(
            "2",
            "HTTP/1.1 404 Not Found",
            r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}"#,
        );
        s += &part(
            "3",
            "HTTP/1.1 429 Too Many Requests",
            r#"{"error":{"code":429,"message":"Too many concurrent requests for user","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        s += "--B--\r\n";
        s
    }

    #[test]
    fn encode_exact_shape() {
        let reqs = [
            InnerRequest {
                content_id: "0".into(),
                verb: "GET",
                path_and_query: "/gmail/v1/users/me/messages/abc?format=metadata".into(),
                json_body: None,
            },
            InnerRequest {
                content_id: "1".into(),
                verb: "POST",
                path_and_query: "/gmail/v1/users/me/messages/abc/modify".into(),
                json_body: Some(br#"{"addLabelIds":["X"]}"#.to_vec()),
            },
        ];
        let (ct, body) = encode(&reqs).unwrap();
        let b = ct.strip_prefix("multipart/mixed; boundary=").unwrap();
        assert!(b.starts_with("batch_") && b.len() == 38, "{b}");
        let expected = format!(
            "--{b}\r\nContent-Type: application/http\r\nContent-ID: <0>\r\n\r\n\
             GET /gmail/v1/users/me/messages/abc?format=metadata HTTP/1.1\r\n\r\n\r\n\
             --{b}\r\nContent-Type: application/http\r\nContent-ID: <1>\r\n\r\n\
             POST /gmail/v1/users/me/messages/abc/modify HTTP/1.1\r\n\
             Content-Type: application/json\r\nContent-Length: 21\r\n\r\n\
             {{\"addLabelIds\":[\"X\"]}}\r\n--{b}--\r\n"
        );
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        // Two encodes pick different boundaries.
        assert_ne!(encode(&reqs).unwrap().0, ct);
    }

    #[test]
    fn encode_rejects_framing_breakers() {
        let ok = InnerRequest {
            content_id: "7".into(),
            verb: "GET",
            path_and_query: "/gmail/v1/users/me/labels".into(),
            json_body: None,
        };
        let bad = [
            InnerRequest {
                path_and_query: "/a b".into(),
                ..ok.clone()
            },
            InnerRequest {
                path_and_query: "/a\r\nX: y".into(),
                ..ok.clone()
            },
            InnerRequest {
                path_and_query: "labels".into(),
                ..ok.clone()
            },
            InnerRequest {
                content_id: "a>b".into(),
                ..ok.clone()
            },
            InnerRequest {
                content_id: "a\nb".into(),
                ..ok.clone()
            },
            InnerRequest {
                content_id: String::new(),
                ..ok.clone()
            },
            InnerRequest {
                verb: "get",
                ..ok.clone()
            },
        ];
        for r in bad {
            let err = encode(&[ok.clone(), r.clone()]).unwrap_err();
            assert!(
                matches!(err, BatchError::InvalidRequest { index: 1, .. }),
                "{r:?}: {err}"
            );
        }
    }

    /// A deliberately naive server written for this test only: splits on the
    /// boundary with plain string operations and echoes each request.
    fn fake_server(content_type: &str, body: &[u8]) -> (String, Vec<u8>) {
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let text = std::str::from_utf8(body).unwrap();
        let delimiter = format!("--{boundary}");
        let mut out = String::from("preamble the client must skip\r\n");
        for chunk in text.split(delimiter.as_str()).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let (headers, request) = chunk.split_once("\r\n\r\n").unwrap();
            let id = headers
                .lines()
                .find_map(|l| l.strip_prefix("Content-ID: "))
                .unwrap()
                .trim_matches(['<', '>']);
            let (head, req_body) = request.split_once("\r\n\r\n").unwrap();
            let request_line = head.lines().next().unwrap();
            let (method, rest) = request_line.split_once(' ').unwrap();
            let path = rest.strip_suffix(" HTTP/1.1").unwrap();
            let req_body = req_body.strip_suffix("\r\n").unwrap();
            let status = if path.ends_with("/missing") {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let json = serde_json::json!({ "method": method, "path": path, "body": req_body });
            out += &format!(
                "--zz_Out\nContent-Type: application/http\nContent-ID: <response-{id}>\n\n\
                 HTTP/1.1 {status}\nContent-Type: application/json; charset=UTF-8\n\n{json}\n"
            );
        }
        out += "--zz_Out--\nepilogue\n";
        (
            "multipart/mixed; boundary=\"zz_Out\"".into(),
            out.into_bytes(),
        )
    }

    #[test]
    fn round_trip_through_fake_server() {
        let reqs: Vec<InnerRequest> = (0..30)
            .map(|i| InnerRequest {
                content_id: format!("item{i}"),
                verb: if i % 3 == 0 { "POST" } else { "GET" },
                path_and_query: if i == 7 {
                    "/gmail/v1/users/me/messages/missing".into()
                } else {
                    format!(
                        "/gmail/v1/users/me/messages/m{i:x}?format=metadata&metadataHeaders=From"
                    )
                },
                json_body: (i % 3 == 0)
                    .then(|| format!(r#"{{"n":{i},"s":"--x\r\n"}}"#).into_bytes()),
            })
            .collect();
        let (ct, body) = encode(&reqs).unwrap();
        let (resp_ct, resp) = fake_server(&ct, &body);
        let out = decode_all(&resp_ct, &resp);
        assert_eq!(out.finish, Ok(()));
        let parts = ok_parts(&out);
        assert_eq!(parts.len(), reqs.len());
        for (req, got) in reqs.iter().zip(parts) {
            assert_eq!(got.content_id.as_deref(), Some(req.content_id.as_str()));
            assert_eq!(
                got.status,
                if req.path_and_query.ends_with("missing") {
                    404
                } else {
                    200
                }
            );
            let echo: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
            assert_eq!(echo["method"], req.verb);
            assert_eq!(echo["path"], req.path_and_query.as_str());
            let sent = req
                .json_body
                .as_deref()
                .map_or("", |b| std::str::from_utf8(b).unwrap());
            assert_eq!(echo["body"], sent);
        }
    }

    #[test]
    fn google_documented_example() {
        // The response example of Google's batch guide, including its header
        // line with no colon ("Content-Type application/json").
        let resp = "--batch_foobarbaz\r\n\
Content-Type: application/http\r\n\
Content-ID: <response-item1:12930812@barnyard.example.com>\r\n\
\r\n\
HTTP/1.1 200 OK\r\n\
Content-Type application/json\r\n\
Content-Length: response_part_1_content_length\r\n\
ETag: \"<etag>\"\r\n\
\r\n\
{\r\n  \"kind\": \"farm#animal\",\r\n  \"animalName\": \"pony\"\r\n}\r\n\
--batch_foobarbaz\r\n\
Content-Type: application/http\r\n\
Content-ID: <response-item2:12930812@barnyard.example.com>\r\n\
\r\n\
HTTP/1.1 200 OK\r\n\
Content-Type: application/json\r\n\
Content-Length: response_part_2_content_length\r\n\
ETag: \"<etag>\"\r\n\
\r\n\
{\r\n  \"kind\": \"farm#animal\",\r\n  \"animalName\": \"sheep\"\r\n}\r\n\
--batch_foobarbaz\r\n\
Content-Type: application/http\r\n\
Content-ID: <response-item3:12930812@barnyard.example.com>\r\n\
\r\n\
HTTP/1.1 304 Not Modified\r\n\
ETag: \"<etag>\"\r\n\
\r\n\
--batch_foobarbaz--\r\n";
        let out = decode_all("multipart/mixed; boundary=batch_foobarbaz", resp.as_bytes());
        assert_eq!(out.finish, Ok(()));
        let parts = ok_parts(&out);
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[0].content_id.as_deref(),
            Some("item1:12930812@barnyard.example.com")
        );
        assert_eq!(parts[0].status, 200);
        assert_eq!(parts[0].header("etag"), Some("\"<etag>\""));
        assert_eq!(parts[0].header("Content-Type"), None);
        let pony: serde_json::Value = serde_json::from_slice(&parts[0].body).unwrap();
        assert_eq!(pony["animalName"], "pony");
        assert_eq!(parts[1].header("content-type"), Some("application/json"));
        assert_eq!((parts[2].status, &parts[2].body[..]), (304, &b""[..]));
    }

    #[test]
    fn sample_decodes() {
        let out = decode_all("multipart/mixed; boundary=B", sample().as_bytes());
        assert_eq!(out.finish, Ok(()));
        let parts = ok_parts(&out);
        let summary: Vec<_> = parts
            .iter()
            .map(|p| (p.content_id.as_deref(), p.status))
            .collect();
        assert_eq!(
            summary,
            [(Some("1"), 200), (Some("2"), 404), (Some("3"), 429)]
        );
        assert_eq!(&parts[0].body[..], br#"{"id":"a1","labelIds":["INBOX"]}"#);
        assert_eq!(parts[0].header("VARY"), Some("Origin"));
    }

    #[test]
    fn lf_only_preamble_epilogue_padding_and_quirks() {
        let resp = "This is a preamble --B not a delimiter\n\
--B  \t\n\
content-type: application/http\n\
CONTENT-ID:\n <response-x1>\n\
X-Unknown: whatever\n\
\n\
HTTP/1.1 200\n\
Content-Type: application/json\n\
X-Folded: one\n\ttwo\n  three\n\
\n\
{\"a\":\"--Bx is body text\"}\n\
--B\n\
Content-Type: application/http\n\
\n\
HTTP/1.1 204 No Content\n\
--B\n\
HTTP/1.0 500 Internal Server Error\n\
\n\
oops\n\
--B--   \n\
epilogue with --B\n--B\nmore";
        let out = decode_all(
            "Multipart/Mixed ; charset=utf-8; BOUNDARY=\"B\"",
            resp.as_bytes(),
        );
        assert_eq!(out.finish, Ok(()));
        let parts = ok_parts(&out);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].content_id.as_deref(), Some("x1"));
        assert_eq!(parts[0].status, 200);
        assert_eq!(parts[0].header("x-folded"), Some("one two three"));
        assert_eq!(&parts[0].body[..], br#"{"a":"--Bx is body text"}"#);
        assert_eq!(
            (parts[1].content_id.as_deref(), parts[1].status),
            (None, 204)
        );
        assert!(parts[1].body.is_empty());
        assert_eq!(
            (parts[2].content_id.as_deref(), parts[2].status),
            (None, 500)
        );
        assert_eq!(&parts[2].body[..], b"oops");
    }

    #[test]
    fn content_length_trims_only_trailing_line_breaks() {
        let resp = "--B\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}\r\n\r\n--B\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}xx\r\n--B\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{}\r\n--B--";
        let out = decode_all("multipart/mixed; boundary=B", resp.as_bytes());
        let bodies: Vec<&[u8]> = ok_parts(&out).iter().map(|p| &p.body[..]).collect();
        assert_eq!(bodies, [&b"{}"[..], b"{}xx", b"{}"]);
        assert_eq!(out.finish, Ok(()));
    }

    #[test]
    fn response_id_strips_wrapping() {
        assert_eq!(response_id("<response-abc>"), "abc");
        assert_eq!(response_id(" <Response-item1:1@x> "), "item1:1@x");
        assert_eq!(response_id("response-7"), "7");
        assert_eq!(response_id("<7>"), "7");
        assert_eq!(response_id("plain"), "plain");
        assert_eq!(response_id("<>"), "");
        assert_eq!(response_id("résponse-é"), "résponse-é");
    }

    #[test]
    fn content_type_parsing() {
        for (ct, b) in [
            ("multipart/mixed; boundary=batch_abc", "batch_abc"),
            ("multipart/mixed;boundary=\"a b;c\"; charset=x", "a b;c"),
            ("multipart/mixed; flag; boundary = x_1 ", "x_1"),
            ("multipart/mixed; boundary=\"q\\\"x\"", "q\"x"),
        ] {
            let dec = Decoder::new(ct).unwrap();
            assert_eq!(dec.needle.needle(), format!("\n--{b}").as_bytes(), "{ct}");
        }
        assert!(matches!(
            Decoder::new("application/json"),
            Err(BatchError::NotMultipart(_))
        ));
        assert!(matches!(Decoder::new(""), Err(BatchError::NotMultipart(_))));
        for ct in [
            "multipart/mixed",
            "multipart/mixed; boundary=",
            "multipart/mixed; boundary=\"\"",
            "multipart/mixed; charset=utf-8",
            "multipart/mixed; boundary=\"a\rb\"",
        ] {
            assert!(
                matches!(Decoder::new(ct), Err(BatchError::NoBoundary(_))),
                "{ct}"
            );
        }
        let long = format!(
            "multipart/mixed; boundary={}",
            "x".repeat(MAX_BOUNDARY_LEN + 1)
        );
        assert!(Decoder::new(&long).is_err());
    }

    #[test]
    fn every_split_point_gives_identical_results() {
        for data in [sample(), sample().replace("\r\n", "\n")] {
            let data = data.as_bytes();
            let whole = decode_all("multipart/mixed; boundary=B", data);
            assert_eq!(ok_parts(&whole).len(), 3);
            let bytewise = decode_chunks("multipart/mixed; boundary=B", data.chunks(1));
            assert_eq!(bytewise, whole);
            for i in 0..=data.len() {
                let split = decode_chunks("multipart/mixed; boundary=B", [&data[..i], &data[i..]]);
                assert_eq!(split, whole, "split at {i}");
            }
        }
    }

    /// Offsets just past each delimiter line: a part is complete exactly
    /// when the input reaches the end of the delimiter line that follows it.
    fn completion_offsets(data: &str) -> Vec<usize> {
        let mut ends = Vec::new();
        let mut from = 0;
        while let Some(i) = data[from..].find("\n--B") {
            let at = from + i + 4;
            ends.push(if data[at..].starts_with("--") {
                at + 2
            } else {
                at + data[at..].find('\n').unwrap() + 1
            });
            from = at;
        }
        ends
    }

    #[test]
    fn truncated_at_every_offset() {
        for data in [sample(), sample().replace("\r\n", "\n")] {
            let full = ok_parts(&decode_all("multipart/mixed; boundary=B", data.as_bytes()))
                .into_iter()
                .cloned()
                .collect::<Vec<_>>();
            // Part k completes at the delimiter after it; the first offset is
            // the opening delimiter (data starts with it), handled by the `\n`
            // the decoder puts in front.
            let ends = completion_offsets(&data);
            assert_eq!(ends.len(), full.len());
            for cut in 0..=data.len() {
                for chunked in [false, true] {
                    let bytes = &data.as_bytes()[..cut];
                    let out = if chunked {
                        decode_chunks("multipart/mixed; boundary=B", bytes.chunks(7))
                    } else {
                        decode_all("multipart/mixed; boundary=B", bytes)
                    };
                    let expected = ends.iter().filter(|&&e| e <= cut).count();
                    let got = ok_parts(&out);
                    assert_eq!(got.len(), expected, "cut {cut}");
                    assert!(got.iter().zip(&full).all(|(g, f)| *g == f), "cut {cut}");
                    if expected == full.len() {
                        assert_eq!(out.finish, Ok(()), "cut {cut}");
                    } else {
                        assert_eq!(
                            out.finish,
                            Err(BatchError::Truncated { parts: expected }),
                            "cut {cut}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn finish_sees_close_behind_undrained_parts() {
        let mut dec = Decoder::new("multipart/mixed; boundary=B").unwrap();
        dec.push(sample().as_bytes());
        assert_eq!(dec.finish(), Ok(()));
        let mut items = Vec::new();
        drain(&mut dec, &mut items);
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn malformed_part_is_reported_once_and_skipped() {
        let resp = format!(
            "--B\r\nContent-Type: application/http\r\n\r\nNOT HTTP\r\n\r\n{{}}\r\n\
             --B\r\n--B\r\nContent-ID: <no-blank-line>\r\n{}",
            &part("9", "HTTP/1.1 200 OK", "{}")[..]
        ) + "--B--";
        let out = decode_all("multipart/mixed; boundary=B", resp.as_bytes());
        let summary: Vec<_> = out
            .items
            .iter()
            .map(|r| {
                r.as_ref()
                    .map(|p| p.content_id.clone())
                    .map_err(|e| e.clone())
            })
            .collect();
        assert!(matches!(
            summary[0],
            Err(BatchError::Malformed {
                index: 0,
                reason: "no valid HTTP status line"
            })
        ));
        assert!(matches!(
            summary[1],
            Err(BatchError::Malformed { index: 1, .. })
        ));
        assert!(matches!(
            summary[2],
            Err(BatchError::Malformed { index: 2, .. })
        ));
        assert_eq!(summary[3], Ok(Some("9".to_string())));
        assert_eq!(summary.len(), 4);
        assert_eq!(out.finish, Ok(()));
    }

    #[test]
    fn empty_and_preamble_only_streams() {
        let out = decode_all("multipart/mixed; boundary=B", b"--B--\r\n");
        assert_eq!(
            out,
            Outcome {
                items: vec![],
                finish: Ok(())
            }
        );
        let out = decode_all("multipart/mixed; boundary=B", b"");
        assert_eq!(out.finish, Err(BatchError::Truncated { parts: 0 }));
        let out = decode_chunks("multipart/mixed; boundary=B", [&b"junk --B\r\n"[..]; 1000]);
        assert_eq!(
            out,
            Outcome {
                items: vec![],
                finish: Err(BatchError::Truncated { parts: 0 })
            }
        );
    }

    #[test]
    fn oversized_part_fails_without_buffering_forever() {
        let mut dec = Decoder::new("multipart/mixed; boundary=B")
            .unwrap()
            .with_max_part_len(1000);
        dec.push(b"--B\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(dec.next_part(), Ok(None));
        for _ in 0..100 {
            dec.push(&[b'x'; 100]);
            match dec.next_part() {
                Ok(None) => {}
                Err(e) => {
                    assert_eq!(
                        e,
                        BatchError::PartTooLarge {
                            index: 0,
                            limit: 1000
                        }
                    );
                    break;
                }
                Ok(Some(p)) => panic!("unexpected part {p:?}"),
            }
        }
        dec.push(b"\r\n--B--\r\n");
        assert_eq!(dec.next_part(), Ok(None));
        assert!(dec.buf.is_empty());
        assert_eq!(dec.finish(), Err(BatchError::Truncated { parts: 0 }));
    }

    /// A `format=raw` answer: ~20 KB of base64url per part.
    fn raw_batch(parts: usize, boundary: &str) -> Vec<u8> {
        let raw: String = (0..20_000)
            .map(|i| (b'A' + (i % 26) as u8) as char)
            .collect();
        let mut out = Vec::new();
        for i in 0..parts {
            out.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-{i}>\r\n\r\n\
                     HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n\
                     {{\"id\":\"m{i}\",\"raw\":\"{raw}\"}}\r\n"
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        out
    }

    #[test]
    fn raw_batch_streams_in_bounded_memory() {
        let data = raw_batch(100, "b_1");
        let mut dec = Decoder::new("multipart/mixed; boundary=b_1").unwrap();
        let mut count = 0;
        let mut peak = 0;
        for chunk in data.chunks(16 * 1024) {
            dec.push(chunk);
            peak = peak.max(dec.buf.len());
            while let Some(p) = dec.next_part().unwrap() {
                assert_eq!(p.content_id, Some(count.to_string()));
                assert!(p.body.ends_with(b"\"}"));
                count += 1;
            }
        }
        dec.finish().unwrap();
        assert_eq!(count, 100);
        // At most one part plus one chunk is ever held.
        assert!(peak < 20_300 + 16 * 1024, "peak buffer {peak}");
    }

    /// Deterministic garbage: ChaCha8's stream is fixed for a seed.
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        move || r.gen()
    }

    #[test]
    fn garbage_never_panics() {
        let mut next = rng(0x5eed);
        let valid = sample().into_bytes();
        let alphabet = b"-B\r\n :HTP/1.2045{}<>\t";
        for round in 0..4000 {
            let len = (next() % 400) as usize;
            let data: Vec<u8> = match round % 3 {
                // Random bytes over a hostile alphabet.
                0 => (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect(),
                // Fully random bytes.
                1 => (0..len).map(|_| next() as u8).collect(),
                // A valid response with random bytes overwritten.
                _ => {
                    let mut v = valid.clone();
                    for _ in 0..1 + next() % 8 {
                        let i = (next() % v.len() as u64) as usize;
                        v[i] = alphabet[(next() % alphabet.len() as u64) as usize];
                    }
                    v
                }
            };
            let chunk = 1 + (next() % 50) as usize;
            let out = decode_chunks("multipart/mixed; boundary=B", data.chunks(chunk));
            if out.finish.is_ok() {
                assert!(out.items.len() <= data.len());
            }
        }
        let ct_pieces = [
            "multipart/",
            "mixed",
            ";",
            " ",
            "boundary",
            "=",
            "\"",
            "\\",
            "B",
            "é",
        ];
        for _ in 0..5000 {
            let ct: String = (0..next() % 12)
                .map(|_| ct_pieces[(next() % ct_pieces.len() as u64) as usize])
                .collect();
            if let Ok(mut dec) = Decoder::new(&ct) {
                dec.push(&valid);
                while let Ok(Some(_)) = dec.next_part() {}
            }
        }
        let huge = vec![b'-'; 1 << 20];
        let out = decode_chunks("multipart/mixed; boundary=B", huge.chunks(4096));
        assert_eq!(out.items.len(), 0);
        let spaces = [&b"--B"[..], &[b' '; 10_000], b"\r\n"].concat();
        let out = decode_chunks("multipart/mixed; boundary=B", spaces.chunks(100));
        assert_eq!(out.finish, Err(BatchError::Truncated { parts: 0 }));
    }

    #[test]
    fn an_empty_part_before_the_close_is_malformed_not_a_panic() {
        // Found by cargo fuzz (batch_decoder).
        for body in [&b"--b\r\n--b--\r\n"[..], b"--b\n--b--", b"x\n--b\n--b--\n"] {
            let mut d = Decoder::new("multipart/mixed; boundary=b").unwrap();
            d.push(body);
            assert!(matches!(
                d.next_part(),
                Err(BatchError::Malformed { index: 0, .. })
            ));
            assert_eq!(d.next_part(), Ok(None));
            assert_eq!(d.finish(), Ok(()));
        }
    }
}
