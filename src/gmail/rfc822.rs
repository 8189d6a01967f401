//! The header block of an RFC 822 message or a MIME/HTTP part, read once for
//! the batch decoder and for headers taken from a raw message; header values
//! decoded (RFC 2047 encoded words, 8-bit bytes, charsets).

use std::borrow::Cow;

use base64::Engine as _;
use mail_parser::decoders::charsets::map::charset_decoder;
use memchr::memchr;

use super::message::B64_STD;

/// One header field: its name, and its value's lines without line ends: the
/// text after the colon (trimmed), then each continuation line as it came.
#[derive(Debug, PartialEq)]
pub(crate) struct Field<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) lines: Vec<&'a [u8]>,
}

/// The fields up to the first blank line, and the offset just past that
/// line (`None` when the block ended without one). Lines that are no field
/// (no colon; a name with spaces, like an mbox `From ` line; Google's own
/// batch example has "Content-Type application/json") are skipped, and so
/// are continuation lines before the first field.
pub(crate) fn fields(block: &[u8]) -> (Vec<Field<'_>>, Option<usize>) {
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    while pos < block.len() {
        let (line, next) = match memchr(b'\n', &block[pos..]) {
            Some(i) => (&block[pos..pos + i], pos + i + 1),
            None => (&block[pos..], block.len()),
        };
        pos = next;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return (out, Some(pos));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(field) = out.last_mut() {
                field.lines.push(line);
            }
            continue;
        }
        if let Some(colon) = memchr(b':', line) {
            let name = line[..colon].trim_ascii_end();
            if !name.is_empty() && name.iter().all(u8::is_ascii_graphic) {
                out.push(Field {
                    name,
                    lines: vec![line[colon + 1..].trim_ascii()],
                });
            }
        }
    }
    (out, None)
}

/// The header fields of an RFC 822 message, values still folded and
/// encoded: the same shape as Gmail's payload headers.
pub(crate) fn header_pairs(msg: &[u8]) -> Vec<(String, String)> {
    fields(msg)
        .0
        .into_iter()
        .map(|f| {
            let value: Vec<String> = f.lines.iter().map(|l| bytes_to_string(l)).collect();
            (bytes_to_string(f.name), value.join("\r\n"))
        })
        .collect()
}

/// 8-bit header bytes that are not UTF-8 are nearly always Windows-1252.
fn bytes_to_string(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => decode_charset("windows-1252", bytes),
    }
}

/// Unfolds a header value and decodes its RFC 2047 encoded words; plain text
/// comes back unchanged.
///
/// Not mail-parser's `parse_unstructured`: in 0.11 it decodes each encoded
/// word alone, so a character split across two words (`=?UTF-8?B?4oI=?=
/// =?UTF-8?B?rCA1?=`, "€ 5", as mailers write them) comes out as two U+FFFD,
/// and it adds a space after a word followed by punctuation ("Re: a !").
pub(crate) fn decode(value: &str) -> String {
    if !value.contains("=?") && !value.contains(['\r', '\n']) {
        return value.to_owned();
    }
    let unfolded: Cow<str> = if value.contains(['\r', '\n']) {
        value.replace(['\r', '\n'], "").into()
    } else {
        value.into()
    };
    let mut out = String::with_capacity(unfolded.len());
    // Bytes of adjacent encoded words in one charset are decoded together:
    // mailers split multi-byte characters across words.
    let mut pending: Option<(&str, Vec<u8>)> = None;
    let flush = |out: &mut String, pending: Option<(&str, Vec<u8>)>| {
        if let Some((charset, bytes)) = pending {
            out.push_str(&decode_charset(charset, &bytes));
        }
    };
    let mut rest = unfolded.as_ref();
    while let Some(start) = rest.find("=?") {
        let (before, word) = rest.split_at(start);
        let Some((charset, bytes, len)) = encoded_word(word) else {
            flush(&mut out, pending.take());
            out.push_str(before);
            out.push_str("=?");
            rest = &word[2..];
            continue;
        };
        // RFC 2047: white space between adjacent encoded words is dropped.
        let adjacent = pending.is_some() && before.bytes().all(|b| b == b' ' || b == b'\t');
        match &mut pending {
            Some((cs, buf)) if adjacent && cs.eq_ignore_ascii_case(charset) => {
                buf.extend_from_slice(&bytes);
            }
            _ => {
                flush(&mut out, pending.take());
                if !adjacent {
                    out.push_str(before);
                }
                pending = Some((charset, bytes));
            }
        }
        rest = &word[len..];
    }
    flush(&mut out, pending);
    out.push_str(rest);
    out
}

/// Parses `=?charset?B|Q?text?=` at the start of `s`: the charset (RFC 2231
/// language suffix dropped), the decoded bytes and the length consumed.
fn encoded_word(s: &str) -> Option<(&str, Vec<u8>, usize)> {
    // RFC 2047 caps a word at 75 bytes; mailers overshoot, but a bound keeps
    // a long value full of "=?" from taking quadratic time.
    let s = &s[..s.floor_char_boundary(1024)];
    let body = s.strip_prefix("=?")?;
    let (charset, rest) = body.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let text = &rest[..rest.find("?=")?];
    if charset.is_empty() || charset.contains([' ', '\t']) || text.contains([' ', '\t', '?']) {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => B64_STD.decode(text.trim_end_matches('=')).ok()?,
        "Q" | "q" => q_decode(text.as_bytes()),
        _ => return None,
    };
    let charset = charset.split_once('*').map_or(charset, |(c, _)| c);
    Some((charset, bytes, s.len() - rest.len() + text.len() + 2))
}

/// RFC 2047 "Q": quoted-printable with '_' for space.
fn q_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match text[i] {
            b'_' => out.push(b' '),
            b'=' => match (
                text.get(i + 1).and_then(|&b| hex(b)),
                text.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'='),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Bytes in a MIME charset to UTF-8; unknown charsets are read as UTF-8.
pub(crate) fn decode_charset(charset: &str, bytes: &[u8]) -> String {
    let charset = charset.trim().trim_matches('"');
    let utf8 = charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8");
    match charset_decoder(charset.as_bytes()).filter(|_| !utf8) {
        Some(decode) => decode(bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_end() {
        let block = b"From x Mon 00:00\r\n cont-before\r\nA : 1\r\n  more\r\n\
            no field\r\nB:two\n\r\nBody: no\r\n";
        let (got, end) = fields(block);
        assert_eq!(
            got,
            vec![
                Field {
                    name: b"A",
                    lines: vec![b"1".as_slice(), b"  more"]
                },
                Field {
                    name: b"B",
                    lines: vec![b"two".as_slice()]
                },
            ]
        );
        assert_eq!(&block[end.unwrap()..], b"Body: no\r\n");
        assert_eq!(fields(b"A: 1\r\n").1, None);
    }

    #[test]
    fn header_decoding() {
        for (value, want) in [
            ("plain  text, spaces kept ", "plain  text, spaces kept "),
            ("=?UTF-8?B?Sm9zw6kgR2FyY8OtYQ==?=", "José García"),
            ("=?utf-8?b?Sm9zw6kgR2FyY8OtYQ?=", "José García"),
            (
                "=?UTF-8?Q?Jos=C3=A9_Garc=C3=ADa?= <j@x>",
                "José García <j@x>",
            ),
            ("=?iso-8859-1?Q?Caf=E9?=", "Café"),
            ("=?ISO-8859-1?B?Q2Fm6Q==?=", "Café"),
            ("=?utf-8?q?a?= =?utf-8?q?b?=\t =?utf-8?q?c?=", "abc"),
            ("=?utf-8?q?a?= and =?utf-8?q?b?=", "a and b"),
            ("Re: =?utf-8?q?a?=!", "Re: a!"),
            ("=?UTF-8?B?4oI=?= =?UTF-8?B?rCA1?=", "€ 5"),
            ("=?iso-8859-1?q?=E9?= =?utf-8?q?=C3=A9?=", "éé"),
            ("=?UTF-8*en?Q?Hi?=", "Hi"),
            ("a\r\n b\r\n\tc", "a b\tc"),
            ("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
            ("=?x-unknown?q?ok?=", "ok"),
            (
                "=?utf-8?x?a?= =? =?utf-8?q?a",
                "=?utf-8?x?a?= =? =?utf-8?q?a",
            ),
            ("=?utf-8?q?a b?=", "=?utf-8?q?a b?="),
            ("=?utf-8?q?a?b?=", "=?utf-8?q?a?b?="),
            ("=?utf-8?b?!!!?=", "=?utf-8?b?!!!?="),
            ("=?utf-8?q?=ZZ=4?=", "=ZZ=4"),
            ("2+2=?4", "2+2=?4"),
        ] {
            assert_eq!(decode(value), want, "{value:?}");
        }
    }

    #[test]
    fn raw_header_block() {
        let block = b"From nobody Mon Jan 1 00:00:00 2024\r\nA: 1\r\n  continued\r\n\
            not a field\r\nB:two\nC: caf\xe9\r\n\r\nBody: no\r\n";
        let got = header_pairs(block);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], ("A".into(), "1\r\n  continued".into()));
        assert_eq!(got[1], ("B".into(), "two".into()));
        assert_eq!(got[2], ("C".into(), "café".into()));
        assert_eq!(decode(&got[0].1), "1  continued");
    }

    #[test]
    fn pathological_inputs_stay_linear() {
        let value = "=?utf-8?q?".repeat(100_000);
        assert!(decode(&value) == value);
    }
}
