//! `input.maildir(path)`, `input.mbox(path)`, `input.eml(dir)`: readers of
//! what the outputs write (and Google Takeout), each an iterator of
//! `{raw, labels, key}` tables for `gmail.import`.
//!
//! Keys are stable across runs, so a resume state can skip what is done:
//! the Maildir message's unique name (our files: the Gmail id), the mbox
//! message's byte offset and Message-ID, the eml file's path below `dir`.
//! Line ends: Maildir and mbox store LF; the readers give the message
//! back with CRLF (RFC 5322's, and Gmail's raw form) unless `crlf = false`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use mlua::{Lua, Table, Value};

use super::opts::Opts;

/// Where backup.lua keeps each message's label names beside a Maildir:
/// JSON lines `{"id": "...", "labels": ["INBOX", "Work/2024"]}`, the last
/// line for an id winning.
const LABELS_FILE: &str = ".gmailscript-labels.jsonl";

/// The most a message read from disk may be (Gmail's import limit is
/// 150 MiB; a bigger file is still read so that import names the limit).
const MAX_FILE: u64 = 512 * 1024 * 1024;

fn err(func: &str, path: &Path, what: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::runtime(format!("{func}: {}: {what}", path.display()))
}

/// LF line ends to CRLF; CRLF already there stays as it is.
fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

fn item(lua: &Lua, key: &str, raw: &[u8], labels: &[String], crlf: bool) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("key", key)?;
    if crlf {
        t.set("raw", lua.create_string(to_crlf(raw))?)?;
    } else {
        t.set("raw", lua.create_string(raw)?)?;
    }
    t.set("labels", lua.create_sequence_from(labels.iter().cloned())?)?;
    Ok(t)
}

fn read_file(func: &str, path: &Path) -> mlua::Result<Vec<u8>> {
    let len = fs::metadata(path).map_err(|e| err(func, path, e))?.len();
    if len > MAX_FILE {
        return Err(err(
            func,
            path,
            format!("{len} bytes, more than the {MAX_FILE} this reader takes"),
        ));
    }
    fs::read(path).map_err(|e| err(func, path, e))
}

/// The sidecar's labels by id; a torn last line (a killed backup) is
/// passed over, any other bad line named.
fn read_labels(dir: &Path) -> mlua::Result<HashMap<String, Vec<String>>> {
    let path = dir.join(LABELS_FILE);
    let mut out = HashMap::new();
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(err("input.maildir", &path, e)),
    };
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        #[derive(serde::Deserialize)]
        struct Line {
            id: String,
            // json.encode writes an empty Lua table as {}.
            labels: serde_json::Value,
        }
        let parsed = serde_json::from_slice::<Line>(line).and_then(|l| {
            let labels = match l.labels {
                serde_json::Value::Object(o) if o.is_empty() => Vec::new(),
                v => serde_json::from_value::<Vec<String>>(v)?,
            };
            Ok((l.id, labels))
        });
        match parsed {
            Ok((id, labels)) => {
                out.insert(id, labels);
            }
            Err(_) if i == last => {}
            Err(e) => {
                return Err(mlua::Error::runtime(format!(
                    "input.maildir: {}:{}: not a labels line ({e}); expected {{\"id\": ..., \"labels\": [...]}}",
                    path.display(),
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}

/// The unique part of a Maildir file name (before `:2,`); for the files
/// output.maildir writes (`<secs>.<id>.gmailscript:2,S`), the Gmail id.
fn maildir_key(name: &str) -> String {
    let stem = name.split(":2,").next().unwrap_or(name);
    if let Some(at) = stem.find(".gmailscript") {
        if let Some((_, id)) = stem[..at].split_once('.') {
            if !id.is_empty() {
                return id.to_string();
            }
        }
    }
    stem.to_string()
}

/// Labels from Maildir flags when no sidecar names them.
fn flag_labels(name: &str, in_new: bool) -> Vec<String> {
    let flags = name.split(":2,").nth(1).unwrap_or("");
    let mut l = Vec::new();
    if in_new || !flags.contains('S') {
        l.push("UNREAD".to_string());
    }
    if flags.contains('F') {
        l.push("STARRED".to_string());
    }
    if flags.contains('T') {
        l.push("TRASH".to_string());
    }
    l
}

fn crlf_option(func: &str, opts: Option<Value>) -> mlua::Result<bool> {
    let o = Opts::new(func, opts, &["crlf"])?;
    Ok(o.boolean("crlf")?.unwrap_or(true))
}

fn maildir(lua: &Lua, (path, opts): (String, Option<Value>)) -> mlua::Result<mlua::Function> {
    let crlf = crlf_option("input.maildir", opts)?;
    let root = PathBuf::from(&path);
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        let dir = root.join(sub);
        let entries = fs::read_dir(&dir).map_err(|e| {
            err(
                "input.maildir",
                &dir,
                format!("{e} (a Maildir has cur/ and new/; is {path} one?)"),
            )
        })?;
        for e in entries {
            let e = e.map_err(|e| err("input.maildir", &dir, e))?;
            if e.file_type().is_ok_and(|t| t.is_file()) {
                if let Ok(name) = e.file_name().into_string() {
                    if !name.starts_with('.') {
                        files.push((name, e.path(), sub == "new"));
                    }
                }
            }
        }
    }
    files.sort();
    let labels = read_labels(&root)?;
    let files = RefCell::new(files.into_iter());
    lua.create_function(move |lua, ()| {
        let Some((name, path, in_new)) = files.borrow_mut().next() else {
            return Ok(Value::Nil);
        };
        let raw = read_file("input.maildir", &path)?;
        let key = maildir_key(&name);
        let l = labels
            .get(&key)
            .cloned()
            .unwrap_or_else(|| flag_labels(&name, in_new));
        Ok(Value::Table(item(lua, &key, &raw, &l, crlf)?))
    })
}

/// Takeout's `X-Gmail-Labels`: names split at commas outside quotes.
fn split_labels(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in v.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
            }
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A header's value in `raw`'s head, unfolded (first occurrence).
fn header(raw: &[u8], name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(f) = found.as_mut() {
                f.push(' ');
                f.push_str(text.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((n, v)) = text.split_once(':') {
            if n.trim().eq_ignore_ascii_case(name) {
                found = Some(v.trim().to_string());
            }
        }
    }
    found
}

struct MboxReader {
    path: PathBuf,
    file: BufReader<fs::File>,
    /// Byte offset of the next line.
    offset: u64,
    line_no: usize,
    /// The `From ` line already read for the next message: its offset.
    next_from: Option<u64>,
    done: bool,
}

impl MboxReader {
    /// The next line into `line` and its offset; None at the end. A line
    /// is read at most MAX_FILE + 1 bytes at a time (a file without line
    /// breaks must not be read whole), so the size check below sees it.
    fn read_line(&mut self, line: &mut Vec<u8>) -> mlua::Result<Option<u64>> {
        line.clear();
        let n = (&mut self.file)
            .take(MAX_FILE + 1)
            .read_until(b'\n', line)
            .map_err(|e| err("input.mbox", &self.path, e))?;
        if n == 0 {
            self.done = true;
            return Ok(None);
        }
        let at = self.offset;
        self.offset += n as u64;
        self.line_no += 1;
        Ok(Some(at))
    }

    /// The next message: its offset and bytes (From line removed, mboxrd
    /// `>From ` unquoted, the separating blank line dropped).
    fn next(&mut self) -> mlua::Result<Option<(u64, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        let mut line = Vec::new();
        let start = loop {
            if let Some(at) = self.next_from.take() {
                break at;
            }
            let Some(at) = self.read_line(&mut line)? else {
                return Ok(None);
            };
            if line.starts_with(b"From ") {
                break at;
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Err(mlua::Error::runtime(format!(
                    "input.mbox: {}:{}: not an mbox file: expected a line starting with \"From \"",
                    self.path.display(),
                    self.line_no
                )));
            }
        };
        let mut msg = Vec::new();
        while let Some(at) = self.read_line(&mut line)? {
            if line.starts_with(b"From ") {
                self.next_from = Some(at);
                break;
            }
            if msg.len() as u64 > MAX_FILE {
                return Err(mlua::Error::runtime(format!(
                    "input.mbox: {}:{}: a message larger than {MAX_FILE} bytes",
                    self.path.display(),
                    self.line_no
                )));
            }
            // mboxrd: one '>' of a quoted From line comes off.
            let l = &line[..];
            let quoted = l
                .iter()
                .position(|&b| b != b'>')
                .is_some_and(|i| i > 0 && l[i..].starts_with(b"From "));
            msg.extend_from_slice(if quoted { &l[1..] } else { l });
        }
        // The blank line before the next From line belongs to the format.
        if msg.ends_with(b"\r\n\r\n") {
            msg.truncate(msg.len() - 2);
        } else if msg.ends_with(b"\n\n") {
            msg.truncate(msg.len() - 1);
        }
        Ok(Some((start, msg)))
    }
}

fn mbox(lua: &Lua, (path, opts): (String, Option<Value>)) -> mlua::Result<mlua::Function> {
    let crlf = crlf_option("input.mbox", opts)?;
    let p = PathBuf::from(&path);
    let file = fs::File::open(&p).map_err(|e| err("input.mbox", &p, e))?;
    let reader = RefCell::new(MboxReader {
        path: p,
        file: BufReader::with_capacity(1 << 20, file),
        offset: 0,
        line_no: 0,
        next_from: None,
        done: false,
    });
    lua.create_function(move |lua, ()| {
        let Some((offset, raw)) = reader.borrow_mut().next()? else {
            return Ok(Value::Nil);
        };
        let labels = header(&raw, "X-Gmail-Labels")
            .map(|v| split_labels(&v))
            .unwrap_or_else(|| vec!["INBOX".to_string()]);
        let mid = header(&raw, "Message-ID").unwrap_or_default();
        let key = format!("{offset}:{}", mid.trim_matches(['<', '>']));
        Ok(Value::Table(item(lua, &key, &raw, &labels, crlf)?))
    })
}

fn eml(lua: &Lua, (dir, opts): (String, Option<Value>)) -> mlua::Result<mlua::Function> {
    let crlf = crlf_option("input.eml", opts)?;
    let root = PathBuf::from(&dir);
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).map_err(|e| err("input.eml", &d, e))?;
        for e in entries {
            let e = e.map_err(|e| err("input.eml", &d, e))?;
            let t = e.file_type().map_err(|e| err("input.eml", &d, e))?;
            let path = e.path();
            if t.is_dir() {
                stack.push(path);
            } else if t.is_file()
                && path
                    .extension()
                    .is_some_and(|x| x.eq_ignore_ascii_case("eml"))
            {
                files.push(path);
            }
        }
        if files.len() > 10_000_000 {
            return Err(err("input.eml", &root, "more than 10 million files"));
        }
    }
    files.sort();
    let files = RefCell::new(files.into_iter());
    lua.create_function(move |lua, ()| {
        let Some(path) = files.borrow_mut().next() else {
            return Ok(Value::Nil);
        };
        let raw = read_file("input.eml", &path)?;
        let key = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        Ok(Value::Table(item(lua, &key, &raw, &[], crlf)?))
    })
}

pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
    let t = lua.create_table()?;
    t.set("maildir", lua.create_function(maildir)?)?;
    t.set("mbox", lua.create_function(mbox)?)?;
    t.set("eml", lua.create_function(eml)?)?;
    t.set("LABELS_FILE", LABELS_FILE)?;
    lua.globals().set("input", t)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_keeps_crlf_and_fixes_lf() {
        assert_eq!(to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }

    #[test]
    fn maildir_keys_and_flags() {
        assert_eq!(maildir_key("1700000000.18c0a1.gmailscript:2,S"), "18c0a1");
        assert_eq!(maildir_key("1700.M1P2.host:2,FS"), "1700.M1P2.host");
        assert_eq!(flag_labels("x:2,FS", false), vec!["STARRED"]);
        assert_eq!(flag_labels("x:2,", false), vec!["UNREAD"]);
    }

    #[test]
    fn takeout_labels_split_outside_quotes() {
        assert_eq!(
            split_labels("Inbox,Opened,\"a,b\",Work/2024"),
            vec!["Inbox", "Opened", "a,b", "Work/2024"]
        );
    }

    #[test]
    fn mbox_messages_offsets_and_unquoting() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.mbox");
        let text: &[u8] = b"From a@b Mon Jan  1 00:00:00 2024\nX-Gmail-Labels: Inbox,Muted\nMessage-ID: <m1@x>\n\n>From here\n\nFrom c@d Mon Jan  1 00:00:00 2024\nSubject: two\n\nbody\n";
        fs::write(&p, text).unwrap();
        let second = memchr::memmem::find(text, b"\nFrom c@d").unwrap() + 1;
        let lua = Lua::new();
        let next = mbox(&lua, (p.to_string_lossy().into_owned(), None)).unwrap();
        let a: Table = next.call(()).unwrap();
        assert_eq!(a.get::<String>("key").unwrap(), "0:m1@x");
        assert_eq!(
            a.get::<mlua::String>("raw").unwrap().as_bytes().to_vec(),
            b"X-Gmail-Labels: Inbox,Muted\r\nMessage-ID: <m1@x>\r\n\r\nFrom here\r\n".to_vec()
        );
        let l: Vec<String> = a.get("labels").unwrap();
        assert_eq!(l, vec!["Inbox", "Muted"]);
        let b: Table = next.call(()).unwrap();
        assert_eq!(b.get::<String>("key").unwrap(), format!("{second}:"));
        assert!(next.call::<Value>(()).unwrap().is_nil());
    }
}
