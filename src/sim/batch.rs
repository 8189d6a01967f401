//! The simulator's own reading of a batch request and writing of its answer
//! (multipart/mixed of application/http parts). Written apart from the
//! client's codec on purpose.

use std::fmt::Write as _;

/// One inner request of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The Content-ID without angle brackets, if the part had one.
    pub(crate) content_id: Option<String>,
    /// Request line and headers of the inner HTTP request.
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// A problem with the whole batch body: Google answers 400 for all of it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BatchError(pub String);

/// The boundary from a `multipart/mixed; boundary=...` content type.
pub fn boundary(content_type: &str) -> Result<String, BatchError> {
    let mut parts = content_type.split(';');
    let mime = parts.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/mixed") {
        return Err(BatchError(format!(
            "Content-Type must be multipart/mixed for a batch request, got {mime:?}"
        )));
    }
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("boundary") {
                let v = v.trim().trim_matches('"');
                if v.is_empty() || v.len() > 200 {
                    break;
                }
                return Ok(v.to_string());
            }
        }
    }
    Err(BatchError(
        "Failed to parse batch request: no boundary in Content-Type".into(),
    ))
}

/// Split `body` into lines, keeping offsets; accepts CRLF and LF.
fn lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= body.len() {
            return None;
        }
        let start = pos;
        let end = body[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i)
            .unwrap_or(body.len());
        pos = end + 1;
        let mut line = &body[start..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        Some((start, line))
    })
}

/// Parse a batch body into its parts, enforcing `max_parts`.
pub fn parse(body: &[u8], boundary: &str, max_parts: usize) -> Result<Vec<Part>, BatchError> {
    let delim = format!("--{boundary}");
    let close = format!("--{boundary}--");
    // Byte ranges of each part's content, between delimiter lines.
    let mut ranges = Vec::new();
    let mut open: Option<usize> = None;
    let mut closed = false;
    for (start, line) in lines(body) {
        let line_str = trim_end_ws(line);
        if line_str == close.as_bytes() {
            if let Some(s) = open.take() {
                ranges.push((s, start));
            }
            closed = true;
            break;
        }
        if line_str == delim.as_bytes() {
            if let Some(s) = open.take() {
                ranges.push((s, start));
            }
            let next = start + line.len() + 1;
            let next = if body.get(start + line.len()) == Some(&b'\r') {
                next + 1
            } else {
                next
            };
            open = Some(next.min(body.len()));
        }
    }
    if !closed {
        return Err(BatchError(format!(
            "Failed to parse batch request: missing close delimiter --{boundary}--"
        )));
    }
    if ranges.is_empty() {
        return Err(BatchError(
            "Failed to parse batch request, error: 0 items.".into(),
        ));
    }
    if ranges.len() > max_parts {
        return Err(BatchError(format!(
            "Inner request count exceeds the limit. Received: {}, Limit: {}",
            ranges.len(),
            max_parts
        )));
    }
    ranges
        .into_iter()
        .enumerate()
        .map(|(i, (s, e))| parse_part(strip_final_newline(&body[s..e]), i + 1))
        .collect()
}

fn trim_end_ws(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b" \t".contains(b))
        .map(|i| i + 1)
        .unwrap_or(0);
    &line[..end]
}

/// The line break before a delimiter belongs to the delimiter.
fn strip_final_newline(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Headers up to the first empty line, and the rest.
fn split_head(b: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let mut headers: Vec<(String, String)> = Vec::new();
    for (start, line) in lines(b) {
        if line.is_empty() {
            let rest = start + 1 + (b.get(start) == Some(&b'\r')) as usize;
            return (headers, &b[rest.min(b.len())..]);
        }
        let text = String::from_utf8_lossy(line);
        if text.starts_with([' ', '\t']) {
            // A folded continuation of the previous header.
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(text.trim());
            }
            continue;
        }
        if let Some((k, v)) = text.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (headers, &[])
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn parse_part(raw: &[u8], n: usize) -> Result<Part, BatchError> {
    let (mime_headers, inner) = split_head(raw);
    let ctype = header(&mime_headers, "Content-Type").unwrap_or("");
    if !ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/http")
    {
        return Err(BatchError(format!(
            "Failed to parse batch request: part {n} has Content-Type {ctype:?}; each part must be application/http"
        )));
    }
    let content_id = header(&mime_headers, "Content-ID").map(|v| {
        v.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string()
    });
    // The inner request: request line, headers, blank line, body. Leading
    // blank lines are tolerated.
    let start = inner
        .iter()
        .position(|b| !b"\r\n".contains(b))
        .unwrap_or(inner.len());
    let inner = &inner[start..];
    let line_end = inner
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(inner.len());
    let request_line = String::from_utf8_lossy(&inner[..line_end])
        .trim()
        .to_string();
    let mut words = request_line.split_whitespace();
    let (method, target) = match (words.next(), words.next()) {
        (Some(m), Some(t)) => (m.to_string(), t.to_string()),
        _ => {
            return Err(BatchError(format!(
                "Failed to parse batch request: part {n} has no request line (got {request_line:?})"
            )))
        }
    };
    let rest = inner.get(line_end + 1..).unwrap_or(&[]);
    let (headers, body) = split_head(rest);
    Ok(Part {
        content_id,
        method,
        target,
        headers,
        body: body.to_vec(),
    })
}

/// One answer to put in the batch response.
pub(crate) struct PartReply<'a> {
    pub(crate) content_id: Option<&'a str>,
    pub(crate) status: u16,
    /// Of the body, when there is one.
    pub(crate) content_type: &'a str,
    pub(crate) headers: &'a [(&'static str, String)],
    pub(crate) body: &'a [u8],
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Append one part of the batch answer to `out`.
pub(crate) fn write_part(out: &mut Vec<u8>, boundary: &str, r: &PartReply<'_>) {
    let mut head = String::with_capacity(256);
    let _ = write!(head, "--{boundary}\r\nContent-Type: application/http\r\n");
    if let Some(id) = r.content_id {
        let _ = write!(head, "Content-ID: <response-{id}>\r\n");
    }
    let _ = write!(
        head,
        "\r\nHTTP/1.1 {} {}\r\n",
        r.status,
        reason_phrase(r.status)
    );
    if !r.body.is_empty() {
        let _ = write!(head, "Content-Type: {}\r\n", r.content_type);
    }
    head.push_str("Vary: Origin\r\nVary: X-Origin\r\nVary: Referer\r\n");
    for (k, v) in r.headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(r.body);
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn write_close(out: &mut Vec<u8>, boundary: &str) {
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOGLE_DOC_EXAMPLE: &str = "--batch_foobarbaz\r\nContent-Type: application/http\r\nContent-ID: <item1:12930812@barnyard.example.com>\r\n\r\nGET /gmail/v1/users/me/messages/abc?format=minimal\r\n\r\n--batch_foobarbaz\r\nContent-Type: application/http\r\nContent-ID: <item2:12930812@barnyard.example.com>\r\n\r\nPOST /gmail/v1/users/me/messages/abc/modify HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"addLabelIds\":[\"STARRED\"]}\r\n--batch_foobarbaz--\r\n";

    #[test]
    fn reads_the_documented_example() {
        let parts = parse(GOOGLE_DOC_EXAMPLE.as_bytes(), "batch_foobarbaz", 100).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].content_id.as_deref(),
            Some("item1:12930812@barnyard.example.com")
        );
        assert_eq!(parts[0].method, "GET");
        assert_eq!(
            parts[0].target,
            "/gmail/v1/users/me/messages/abc?format=minimal"
        );
        assert_eq!(parts[1].method, "POST");
        assert_eq!(parts[1].body, b"{\"addLabelIds\":[\"STARRED\"]}");
        assert_eq!(
            parts[1].headers,
            vec![("Content-Type".to_string(), "application/json".to_string())]
        );
    }

    #[test]
    fn reads_lf_only_bodies_with_preamble_as_pythons_email_package_writes() {
        let body = GOOGLE_DOC_EXAMPLE.replace("\r\n", "\n");
        let body = format!("This is a preamble.\n{body}epilogue\n");
        let parts = parse(body.as_bytes(), "batch_foobarbaz", 100).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].body, b"{\"addLabelIds\":[\"STARRED\"]}");
    }

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(
            boundary("multipart/mixed; boundary=\"===============123==\"").unwrap(),
            "===============123=="
        );
        assert_eq!(boundary("multipart/mixed;boundary=abc").unwrap(), "abc");
        assert!(boundary("multipart/mixed").is_err());
        assert!(boundary("application/json").is_err());
    }

    #[test]
    fn structural_errors_are_reported_not_panicked() {
        let no_close = GOOGLE_DOC_EXAMPLE.replace("--batch_foobarbaz--", "");
        assert!(parse(no_close.as_bytes(), "batch_foobarbaz", 100)
            .unwrap_err()
            .0
            .contains("close delimiter"));
        let wrong_type = GOOGLE_DOC_EXAMPLE.replacen("application/http", "text/plain", 1);
        assert!(parse(wrong_type.as_bytes(), "batch_foobarbaz", 100)
            .unwrap_err()
            .0
            .contains("part 1"));
        let e = parse(GOOGLE_DOC_EXAMPLE.as_bytes(), "batch_foobarbaz", 1).unwrap_err();
        assert_eq!(
            e.0,
            "Inner request count exceeds the limit. Received: 2, Limit: 1"
        );
        assert!(parse(b"--x--\r\n", "x", 100).is_err());
        for junk in [
            &b""[..],
            b"--",
            b"\r\n\r\n",
            b"--x\r\n",
            b"--x\r\n\r\n--x--",
        ] {
            assert!(parse(junk, "x", 100).is_err());
        }
    }

    #[test]
    fn writes_parts_with_response_content_ids() {
        let mut out = Vec::new();
        write_part(
            &mut out,
            "b",
            &PartReply {
                content_id: Some("x+1"),
                status: 404,
                content_type: "application/json; charset=UTF-8",
                headers: &[],
                body: b"{}",
            },
        );
        write_close(&mut out, "b");
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("--b\r\nContent-Type: application/http\r\nContent-ID: <response-x+1>\r\n\r\nHTTP/1.1 404 Not Found\r\n"));
        assert!(s.ends_with("{}\r\n--b--\r\n"));
    }
}
