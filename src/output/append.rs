//! jsonl and mbox: records appended to one file. The resume point is the
//! file's length at the last flush, always the end of a whole record.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::DateTime;

use super::{ensure_dir, io_err, parent_of, OutMessage, OutputError, Writer};

struct AppendFile {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    durable: u64,
    count: u64,
}

impl AppendFile {
    fn open(path: &Path, resume_at: Option<u64>, kind: &'static str) -> Result<Self, OutputError> {
        if path.is_dir() {
            return Err(OutputError::NotAFile {
                path: path.into(),
                kind,
            });
        }
        ensure_dir(parent_of(path))?;
        let mismatch = |detail: String| OutputError::ResumeMismatch {
            path: path.into(),
            detail,
        };
        // With a resume point past 0 the file must already exist.
        let create = resume_at.unwrap_or(0) == 0;
        let mut f = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .open(path)
        {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => {
                return Err(mismatch(format!(
                    "it does not exist, but {} bytes were written to it",
                    resume_at.unwrap_or(0)
                )))
            }
            r => r.map_err(io_err("open", path))?,
        };
        if !super::lock::try_lock(&f) {
            return Err(OutputError::InUse { path: path.into() });
        }
        let len = f.metadata().map_err(io_err("read", path))?.len();
        let start = match resume_at {
            None if len > 0 => {
                return Err(OutputError::Exists {
                    path: path.into(),
                    len,
                })
            }
            None => 0,
            Some(n) if n > len => {
                return Err(mismatch(format!(
                    "it is {len} bytes, but {n} bytes were written to it"
                )))
            }
            Some(n) => {
                // Every flush ends a record with '\n'; anything else means
                // the point belongs to another file. Checked before cutting.
                if n > 0 {
                    let mut last = [0u8];
                    f.seek(SeekFrom::Start(n - 1))
                        .and_then(|_| f.read_exact(&mut last))
                        .map_err(io_err("read", path))?;
                    if last[0] != b'\n' {
                        return Err(mismatch(format!("byte {n} is not the end of a record")));
                    }
                }
                if n < len {
                    f.set_len(n).map_err(io_err("truncate", path))?;
                }
                n
            }
        };
        f.seek(SeekFrom::Start(start))
            .map_err(io_err("seek in", path))?;
        Ok(AppendFile {
            path: path.into(),
            out: BufWriter::with_capacity(256 * 1024, f),
            written: start,
            durable: start,
            count: 0,
        })
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), OutputError> {
        self.out
            .write_all(bytes)
            .map_err(io_err("write", &self.path))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.out.flush().map_err(io_err("write", &self.path))?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(io_err("sync", &self.path))?;
        self.durable = self.written;
        Ok(())
    }
}

pub(super) struct Jsonl(AppendFile);

impl Jsonl {
    pub(super) fn open(path: &Path, resume_at: Option<u64>) -> Result<Self, OutputError> {
        AppendFile::open(path, resume_at, "jsonl").map(Jsonl)
    }
}

impl Writer for Jsonl {
    fn write(&mut self, m: &OutMessage) -> Result<(), OutputError> {
        let json = m.json.trim_end();
        // JSON forbids raw line breaks inside strings, so one here is
        // whitespace between tokens (pretty-printed) and a space does as well.
        if json.contains(['\n', '\r']) {
            self.0.append(json.replace(['\n', '\r'], " ").as_bytes())?;
        } else {
            self.0.append(json.as_bytes())?;
        }
        self.0.append(b"\n")?;
        self.0.count += 1;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), OutputError> {
        self.0.flush()
    }
    fn count(&self) -> u64 {
        self.0.count
    }
    fn kind(&self) -> &'static str {
        "jsonl"
    }
    fn path(&self) -> &Path {
        &self.0.path
    }
    fn resume_point(&self) -> Option<u64> {
        Some(self.0.durable)
    }
}

pub(super) struct Mbox {
    file: AppendFile,
    buf: Vec<u8>,
}

impl Mbox {
    pub(super) fn open(path: &Path, resume_at: Option<u64>) -> Result<Self, OutputError> {
        Ok(Mbox {
            file: AppendFile::open(path, resume_at, "mbox")?,
            buf: Vec::new(),
        })
    }
}

impl Writer for Mbox {
    fn write(&mut self, m: &OutMessage) -> Result<(), OutputError> {
        let raw = super::raw(m, "mbox")?;
        super::check_id(m.id, "mbox")?;
        let buf = &mut self.buf;
        buf.clear();
        let date = DateTime::from_timestamp_millis(m.internal_date_ms).unwrap_or_default();
        // Writing to a Vec cannot fail.
        let _ = writeln!(
            buf,
            "From {}@gmailscript {}",
            m.id,
            date.format("%a %b %e %H:%M:%S %Y")
        );
        if !m.thread_id.is_empty() {
            // Takeout writes the thread id in decimal; the API's hex id is
            // the same number.
            let _ = match u64::from_str_radix(m.thread_id, 16) {
                Ok(n) => writeln!(buf, "X-GM-THRID: {n}"),
                Err(_) => writeln!(buf, "X-GM-THRID: {}", header_safe(m.thread_id)),
            };
        }
        if !m.labels.is_empty() {
            buf.extend_from_slice(b"X-Gmail-Labels: ");
            for (i, id) in m.labels.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                let name = takeout_label(id)
                    .or(m.label_names.get(i).map(String::as_str))
                    .unwrap_or(id);
                push_label(buf, name);
            }
            buf.push(b'\n');
        }
        push_mboxrd(&without_takeout_headers(raw), buf);
        self.file.append(&self.buf)?;
        self.file.count += 1;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), OutputError> {
        self.file.flush()
    }
    fn count(&self) -> u64 {
        self.file.count
    }
    fn kind(&self) -> &'static str {
        "mbox"
    }
    fn path(&self) -> &Path {
        &self.file.path
    }
    fn resume_point(&self) -> Option<u64> {
        Some(self.file.durable)
    }
}

/// The names Takeout gives system labels.
fn takeout_label(id: &str) -> Option<&'static str> {
    Some(match id {
        "INBOX" => "Inbox",
        "UNREAD" => "Unread",
        "STARRED" => "Starred",
        "SENT" => "Sent",
        "SPAM" => "Spam",
        "TRASH" => "Trash",
        "IMPORTANT" => "Important",
        "DRAFT" => "Drafts",
        "CHAT" => "Chat",
        "CATEGORY_PROMOTIONS" => "Category Promotions",
        "CATEGORY_SOCIAL" => "Category Social",
        "CATEGORY_UPDATES" => "Category Updates",
        "CATEGORY_FORUMS" => "Category Forums",
        "CATEGORY_PERSONAL" => "Category Personal",
        _ => return None,
    })
}

/// Line breaks would end the header early.
fn header_safe(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// A name holding the separator is quoted, as Takeout does.
fn push_label(buf: &mut Vec<u8>, name: &str) {
    let name = header_safe(name);
    if name.contains([',', '"']) {
        buf.push(b'"');
        buf.extend_from_slice(name.replace('"', "\\\"").as_bytes());
        buf.push(b'"');
    } else {
        buf.extend_from_slice(name.as_bytes());
    }
}

/// `raw` without the `X-GM-THRID` and `X-Gmail-Labels` headers (and their
/// continuation lines) of its header section: a message imported from an
/// earlier Takeout still carries them, and the record's own, written above
/// from the message's current thread and labels, must be the only ones.
fn without_takeout_headers(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let is_takeout = |line: &[u8]| {
        let name = line.split(|&b| b == b':').next().unwrap_or(b"");
        name.eq_ignore_ascii_case(b"X-GM-THRID") || name.eq_ignore_ascii_case(b"X-Gmail-Labels")
    };
    let mut out = Vec::with_capacity(raw.len());
    let (mut in_header, mut dropping, mut dropped) = (true, false, false);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if in_header && matches!(line, b"\n" | b"\r\n") {
            in_header = false;
        } else if in_header {
            // A folded header goes on on lines that start with a blank.
            if !line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                dropping = is_takeout(line);
            }
            if dropping {
                dropped = true;
                continue;
            }
        }
        out.extend_from_slice(line);
    }
    match dropped {
        true => std::borrow::Cow::Owned(out),
        false => std::borrow::Cow::Borrowed(raw),
    }
}

/// The message with LF line ends and mboxrd quoting (a line that is `From `
/// behind any number of `>` gets one more), then the blank line that ends
/// an mbox record.
fn push_mboxrd(raw: &[u8], buf: &mut Vec<u8>) {
    buf.reserve(raw.len() + 2);
    let body = raw.strip_suffix(b"\n").unwrap_or(raw);
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let unquoted = &line[line.iter().take_while(|&&b| b == b'>').count()..];
        if unquoted.starts_with(b"From ") {
            buf.push(b'>');
        }
        buf.extend_from_slice(line);
        buf.push(b'\n');
    }
    buf.push(b'\n');
}
