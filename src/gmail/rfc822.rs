//! The header block of an RFC 822 message or a MIME/HTTP part, read once for
//! the batch decoder and for headers taken from a raw message.

use memchr::memchr;

/// One header field: its name, and its value's lines without line ends: the
/// text after the colon (trimmed), then each continuation line as it came.
#[derive(Debug, PartialEq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub lines: Vec<&'a [u8]>,
}

/// The fields up to the first blank line, and the offset just past that
/// line (`None` when the block ended without one). Lines that are no field
/// (no colon; a name with spaces, like an mbox `From ` line; Google's own
/// batch example has "Content-Type application/json") are skipped, and so
/// are continuation lines before the first field.
pub fn fields(block: &[u8]) -> (Vec<Field<'_>>, Option<usize>) {
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
}
