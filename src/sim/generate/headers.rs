//! RFC 5322 header pieces: RFC 2047 encoded words, display-name phrases,
//! folded address lists, dates, Message-IDs, signature blobs and MIME
//! boundaries. Each is a pure function of its input (and of a [`Mix`]
//! seed), so headers render the same bytes every time.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, FixedOffset};

use super::layout::Mix;

/// RFC 2047 encoded words for `s`, folded with CRLF SP between words.
/// Q for mostly-Latin text, B for mostly non-Latin.
pub(super) fn encoded_words(s: &str) -> String {
    let non_ascii = s.chars().filter(|c| !c.is_ascii()).count();
    let q = non_ascii * 3 < s.chars().count();
    let mut out = String::new();
    let mut chunk = String::new();
    let mut cost = 0;
    let flush = |out: &mut String, chunk: &mut String| {
        if chunk.is_empty() {
            return;
        }
        if !out.is_empty() {
            out.push_str("\r\n ");
        }
        if q {
            out.push_str("=?UTF-8?Q?");
            for &b in chunk.as_bytes() {
                match b {
                    b' ' => out.push('_'),
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                        out.push(b as char)
                    }
                    _ => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        out.push('=');
                        out.push(char::from(HEX[usize::from(b >> 4)]));
                        out.push(char::from(HEX[usize::from(b & 15)]));
                    }
                }
            }
        } else {
            out.push_str("=?UTF-8?B?");
            out.push_str(&STANDARD.encode(chunk.as_bytes()));
        }
        out.push_str("?=");
        chunk.clear();
    };
    for c in s.chars() {
        let n = c.len_utf8();
        let c_cost = if q {
            if c.is_ascii_alphanumeric() || c == ' ' {
                1
            } else {
                3 * n
            }
        } else {
            n
        };
        // Q: at most 45 encoded chars; B: at most 36 bytes (48 chars).
        if cost + c_cost > if q { 45 } else { 36 } {
            flush(&mut out, &mut chunk);
            cost = 0;
        }
        chunk.push(c);
        cost += c_cost;
    }
    flush(&mut out, &mut chunk);
    out
}

/// An unstructured header value (Subject): as is when ASCII, else encoded.
pub(super) fn header_text(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        encoded_words(s)
    }
}

/// A display name for an address header.
pub(super) fn phrase(name: &str) -> String {
    if !name.is_ascii() {
        encoded_words(name)
    } else if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" !#$%&'*+-/=?^_`{|}~".contains(&b))
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Appends `Name: item, item, ...`, folding between items near 76 columns.
pub(super) fn folded_list(out: &mut String, name: &str, items: &[String], sep: &str) {
    out.push_str(name);
    out.push(':');
    let mut col = name.len() + 1;
    for (i, item) in items.iter().enumerate() {
        let first_line = item.split("\r\n").next().unwrap_or("");
        if i > 0 {
            out.push_str(sep);
            col += sep.len();
        }
        if i > 0 && col + 1 + first_line.len() > 76 {
            out.push_str("\r\n");
            col = 0;
        }
        out.push(' ');
        out.push_str(item);
        col += 1 + item.rsplit("\r\n").next().unwrap_or("").len();
    }
    out.push_str("\r\n");
}

pub(super) fn rfc5322_date(ms: i64, tz_min: i16) -> String {
    let off = FixedOffset::east_opt(i32::from(tz_min) * 60)
        .unwrap_or(FixedOffset::east_opt(0).expect("zero offset"));
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&off)
        .format("%a, %-d %b %Y %H:%M:%S %z")
        .to_string()
}

pub(super) fn message_id(token: u64) -> String {
    let mut m = Mix::new(token, 3);
    match token % 4 {
        0 | 1 => {
            let mut raw = [0u8; 30];
            for c in raw.chunks_mut(8) {
                let v = m.next().to_le_bytes();
                c.copy_from_slice(&v[..c.len()]);
            }
            format!(
                "<CA{}@mail.gmail.com>",
                STANDARD.encode(raw).replace('/', "_")
            )
        }
        2 => format!(
            "<{:016x}.{:08x}@smtp.relay.example>",
            m.next(),
            m.next() as u32
        ),
        _ => format!(
            "<{:x}.{}@eu-west-1.mailer.example>",
            m.next(),
            token % 100_000
        ),
    }
}

/// `n` random bytes as base64, folded like a signature header value.
pub(super) fn sig(m: &mut Mix, n: usize) -> String {
    let mut out = String::with_capacity(n * 3 / 2);
    // 51 bytes (a multiple of 3) encode to 68 chars with no padding.
    for (i, chunk) in m.bytes(n).chunks(51).enumerate() {
        if i > 0 {
            out.push_str("\r\n         ");
        }
        STANDARD.encode_string(chunk, &mut out);
    }
    out
}

pub(super) fn boundary(seed: u64, level: u64) -> String {
    format!("0000000000{:018x}", Mix::new(seed, 10 + level).next() >> 8)
}

/// Display name from an address: "alex.doe@x" -> "Alex Doe".
pub(super) fn user_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    local
        .split(['.', '_', '-', '+'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// "Name <addr>" or the bare address.
pub(crate) fn mailbox_str(name: &str, addr: &str) -> String {
    if name.is_empty() {
        addr.to_string()
    } else {
        format!("{name} <{addr}>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_roundtrip() {
        for s in [
            "José Müller",
            "山田太郎",
            "Überraschungsparty für Oma und die ganze Familie, ja",
            "来週の予定について、確認をお願いいたします。よろしくお願いします",
        ] {
            let enc = encoded_words(s);
            for w in enc.split("\r\n ") {
                assert!(w.len() <= 75, "{w}");
            }
            let raw = format!("Subject: {enc}\r\n\r\n");
            let parsed = mail_parser::MessageParser::default()
                .parse(raw.as_bytes())
                .expect("parses");
            assert_eq!(parsed.subject(), Some(s));
        }
    }
}
