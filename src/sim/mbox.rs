//! Loading a Google Takeout mbox file into a mailbox.
//!
//! Takeout writes one message per `From ` line, an `X-GM-THRID` header with
//! Gmail's thread id and an `X-Gmail-Labels` header with label names. The
//! file is streamed line by line; each message is parsed once and kept as
//! its bytes (less the `From ` line, the mboxrd `>From ` quoting and the
//! blank line that separates messages).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders};

use crate::sim::generate::{mailbox_str, message_id_for, standard_labels};
use crate::sim::mailbox::{Body, Label, LabelType, Mailbox, SimMessage};
use crate::sim::render::{snippet, split_headers};

#[derive(Debug, thiserror::Error)]
pub enum MboxError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {} at line {line}: {source}", path.display())]
    Read {
        path: PathBuf,
        line: usize,
        source: std::io::Error,
    },
    #[error("{} has no messages: it is empty", path.display())]
    Empty { path: PathBuf },
    #[error("{}:{line}: not an mbox file: expected a line starting with \"From \", found {found:?}", path.display())]
    NotMbox {
        path: PathBuf,
        line: usize,
        found: String,
    },
}

/// One message as read from the file, before ids and threads are known.
struct Entry {
    raw: Arc<[u8]>,
    date_ms: Option<i64>,
    thrid: Option<u64>,
    message_id: Option<String>,
    /// References then In-Reply-To.
    parents: Vec<String>,
    labels: Vec<String>,
    from: String,
    to: String,
    subject: String,
    attachment_names: Vec<String>,
    snippet: String,
}

/// Reads the mbox at `path` for the mailbox of `user_email`. Messages
/// without `X-Gmail-Labels` (mbox files not from Takeout) are labelled
/// SENT when from `user_email`, else INBOX.
pub(crate) fn load_mbox(path: &Path, user_email: &str) -> Result<Mailbox, MboxError> {
    let file = File::open(path).map_err(|source| MboxError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut labels = LabelMap::default();
    let mut entries = Vec::new();
    let mut current: Option<(Vec<u8>, Option<i64>)> = None;
    let mut line = Vec::new();
    let mut line_no = 0usize;
    let mut prev_blank = false;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| MboxError::Read {
                path: path.to_path_buf(),
                line: line_no + 1,
                source,
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if let Some(rest) = line.strip_prefix(b"From ") {
            let date = from_line_date(rest);
            // A body line may begin "From " when the writer did not quote
            // it; a real separator carries a date.
            if current.is_none() || date.is_some() {
                if let Some((bytes, from_date)) = current.take() {
                    entries.push(read_entry(
                        bytes,
                        prev_blank,
                        from_date,
                        user_email,
                        &mut labels,
                    ));
                }
                current = Some((Vec::new(), date));
                prev_blank = false;
                continue;
            }
        }
        let is_blank = line == b"\n" || line == b"\r\n";
        match &mut current {
            None if line.trim_ascii().is_empty() => {}
            None => {
                let shown = String::from_utf8_lossy(line.trim_ascii_end());
                return Err(MboxError::NotMbox {
                    path: path.to_path_buf(),
                    line: line_no,
                    found: shown.chars().take(60).collect(),
                });
            }
            Some((bytes, _)) => {
                // mboxrd: ">From ", ">>From ", ... lose one '>'.
                let quoted = line
                    .iter()
                    .position(|&b| b != b'>')
                    .is_some_and(|p| p > 0 && line[p..].starts_with(b"From "));
                bytes.extend_from_slice(if quoted { &line[1..] } else { &line });
            }
        }
        prev_blank = is_blank;
    }
    match current {
        Some((bytes, from_date)) => entries.push(read_entry(
            bytes,
            prev_blank,
            from_date,
            user_email,
            &mut labels,
        )),
        None => {
            return Err(MboxError::Empty {
                path: path.to_path_buf(),
            })
        }
    }
    Ok(build(entries, labels))
}

/// Parses one message's bytes for what the mailbox needs.
fn read_entry(
    mut bytes: Vec<u8>,
    ends_blank: bool,
    from_date: Option<i64>,
    user_email: &str,
    labels: &mut LabelMap,
) -> Entry {
    // The blank line before the next "From " belongs to the mbox format.
    if ends_blank {
        if bytes.ends_with(b"\r\n") {
            bytes.truncate(bytes.len() - 2);
        } else if bytes.ends_with(b"\n") {
            bytes.truncate(bytes.len() - 1);
        }
    }
    let raw: Arc<[u8]> = Arc::from(bytes);
    let mut entry = Entry {
        raw: raw.clone(),
        date_ms: from_date,
        thrid: None,
        message_id: None,
        parents: Vec::new(),
        labels: Vec::new(),
        from: String::new(),
        to: String::new(),
        subject: String::new(),
        attachment_names: Vec::new(),
        snippet: String::new(),
    };
    let mut labelled = false;
    for (name, value) in split_headers(&raw) {
        if name.eq_ignore_ascii_case("X-GM-THRID") {
            entry.thrid = value.trim().parse().ok();
        } else if name.eq_ignore_ascii_case("X-Gmail-Labels") {
            labelled = true;
            entry.labels = split_labels(&decode_text(&value))
                .iter()
                .filter_map(|l| labels.id_for(l))
                .collect();
        }
    }
    let Some(msg) = MessageParser::default().parse(&raw[..]) else {
        entry.snippet = snippet(&String::from_utf8_lossy(&raw));
        if !labelled {
            entry.labels.push("INBOX".to_string());
        }
        return entry;
    };
    if !labelled {
        let from_user = msg
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .is_some_and(|a| a.eq_ignore_ascii_case(user_email));
        entry
            .labels
            .push(if from_user { "SENT" } else { "INBOX" }.to_string());
    }
    entry.labels.sort();
    entry.labels.dedup();
    if let Some(d) = msg.date().filter(|d| d.is_valid()) {
        entry.date_ms = Some(d.to_timestamp() * 1000);
    }
    entry.message_id = msg.message_id().map(str::to_string);
    for v in [msg.references(), msg.in_reply_to()] {
        if let Some(ids) = v.as_text_list() {
            entry.parents.extend(ids.iter().map(|s| s.to_string()));
        }
    }
    entry.from = msg.from().map(addresses).unwrap_or_default();
    entry.to = [msg.to(), msg.cc(), msg.bcc()]
        .into_iter()
        .flatten()
        .map(addresses)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    entry.subject = msg.subject().unwrap_or("").to_string();
    entry.attachment_names = msg
        .attachments()
        .filter_map(|p| p.attachment_name().map(str::to_string))
        .collect();
    entry.snippet = snippet(&msg.body_text(0).unwrap_or_default());
    entry
}

/// Addresses as the simulator keeps them: `Name <addr>`, comma-separated.
pub(super) fn addresses(a: &Address<'_>) -> String {
    a.iter()
        .filter_map(|x| {
            let addr = x.address().unwrap_or("");
            let name = x.name().unwrap_or("");
            (!addr.is_empty() || !name.is_empty()).then(|| mailbox_str(name, addr))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// RFC 2047-decodes an unstructured header value (Takeout encodes
/// non-ASCII label names).
fn decode_text(value: &str) -> String {
    let line = format!("{value}\r\n");
    match MessageStream::new(line.as_bytes()).parse_unstructured() {
        HeaderValue::Text(t) => t.into_owned(),
        _ => value.to_string(),
    }
}

/// Splits a comma-separated label list; a quoted name may hold commas.
fn split_labels(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => cur.extend(chars.next()),
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Takeout label names to label ids; unknown names become user labels.
#[derive(Default)]
struct LabelMap {
    user: Vec<String>,
    by_name: HashMap<String, String>,
}

impl LabelMap {
    fn id_for(&mut self, name: &str) -> Option<String> {
        let system = match name.to_ascii_lowercase().as_str() {
            "inbox" => Some("INBOX"),
            "sent" => Some("SENT"),
            "spam" => Some("SPAM"),
            "trash" => Some("TRASH"),
            "starred" => Some("STARRED"),
            "important" => Some("IMPORTANT"),
            "draft" | "drafts" => Some("DRAFT"),
            "chat" => Some("CHAT"),
            "unread" => Some("UNREAD"),
            "category personal" => Some("CATEGORY_PERSONAL"),
            "category social" => Some("CATEGORY_SOCIAL"),
            "category promotions" => Some("CATEGORY_PROMOTIONS"),
            "category updates" => Some("CATEGORY_UPDATES"),
            "category forums" => Some("CATEGORY_FORUMS"),
            // Read state and archiving are implied by the other labels.
            "opened" | "archived" => return None,
            _ => None,
        };
        if let Some(id) = system {
            return Some(id.to_string());
        }
        if let Some(id) = self.by_name.get(name) {
            return Some(id.clone());
        }
        self.user.push(name.to_string());
        let id = format!("Label_{}", self.user.len());
        self.by_name.insert(name.to_string(), id.clone());
        Some(id)
    }
}

/// Date of a `From ` line ("sender Mon Jan  1 00:00:00 +0000 2024", with
/// or without the zone), in ms.
fn from_line_date(rest: &[u8]) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let text = std::str::from_utf8(rest).ok()?;
    let tokens: Vec<&str> = text.split_ascii_whitespace().skip(1).collect();
    // The date follows the sender at once, weekday first (ctime style).
    let lead = tokens.first()?.get(..3)?.to_ascii_lowercase();
    if !DAYS.contains(&lead.as_str()) && !MONTHS.contains(&lead.as_str()) {
        return None;
    }
    let mi = tokens
        .iter()
        .position(|t| t.len() >= 3 && MONTHS.contains(&t[..3].to_ascii_lowercase().as_str()))?;
    let month = MONTHS
        .iter()
        .position(|m| tokens[mi][..3].eq_ignore_ascii_case(m))? as u32
        + 1;
    let day: u32 = tokens.get(mi + 1)?.trim_end_matches(',').parse().ok()?;
    let time = tokens.iter().find(|t| t.contains(':'))?;
    let mut hms = time.split(':').map(|x| x.parse::<u32>());
    let (h, m) = (hms.next()?.ok()?, hms.next()?.ok()?);
    let s = hms.next().unwrap_or(Ok(0)).ok()?;
    let year: i32 = tokens
        .iter()
        .find(|t| t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()?;
    let offset_min = tokens
        .iter()
        .find(|t| t.len() == 5 && (t.starts_with('+') || t.starts_with('-')))
        .and_then(|t| {
            let v: i64 = t[1..].parse().ok()?;
            let min = v / 100 * 60 + v % 100;
            Some(if t.starts_with('-') { -min } else { min })
        })
        .unwrap_or(0);
    let dt = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(h, m, s)?;
    Some((dt.and_utc().timestamp() - offset_min * 60) * 1000)
}

/// Assigns ids, threads and history ids.
fn build(entries: Vec<Entry>, labels: LabelMap) -> Mailbox {
    // Messages without any date follow the one before them in the file.
    let mut last = 0i64;
    let dates: Vec<i64> = entries
        .iter()
        .map(|e| {
            last = e.date_ms.unwrap_or(last + 1000);
            last
        })
        .collect();
    let mut taken = HashSet::new();
    let ids: Vec<String> = dates
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let mut c = i as u64;
            loop {
                let id = message_id_for(d, c);
                if taken.insert(id.clone()) {
                    return id;
                }
                c += 1;
            }
        })
        .collect();

    // Union-find over messages: same X-GM-THRID, or (without it) a
    // References/In-Reply-To link to a message in the file.
    let mut parent: Vec<usize> = (0..entries.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let union = |p: &mut Vec<usize>, a: usize, b: usize| {
        let (ra, rb) = (find(p, a), find(p, b));
        p[ra.max(rb)] = ra.min(rb);
    };
    let mut by_thrid = HashMap::new();
    let mut by_msgid = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(t) = e.thrid {
            let first = *by_thrid.entry(t).or_insert(i);
            union(&mut parent, i, first);
        }
        if let Some(m) = &e.message_id {
            by_msgid.entry(m.as_str()).or_insert(i);
        }
    }
    for (i, e) in entries.iter().enumerate() {
        if e.thrid.is_none() {
            for r in &e.parents {
                if let Some(&j) = by_msgid.get(r.as_str()) {
                    union(&mut parent, i, j);
                }
            }
        }
    }
    // A thread's id is the id of its oldest message.
    let mut thread_of: HashMap<usize, String> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let root = find(&mut parent, i);
        let t = thread_of.entry(root).or_insert_with(|| id.clone());
        if id < t {
            *t = id.clone();
        }
    }

    let mut messages = BTreeMap::new();
    for (i, (e, id)) in entries.into_iter().zip(ids).enumerate() {
        let root = find(&mut parent, i);
        let msg = SimMessage {
            id: id.clone(),
            thread_id: thread_of[&root].clone(),
            label_ids: e.labels,
            internal_date_ms: dates[i],
            history_id: 0,
            size: e.raw.len(),
            from: e.from,
            to: e.to,
            subject: e.subject,
            attachment_names: e.attachment_names,
            snippet: e.snippet,
            body: Body::Stored(e.raw),
        };
        messages.insert(id, msg);
    }
    let mut next = 1_000u64;
    for m in messages.values_mut() {
        // Gaps, as Gmail's history ids have.
        next += 1 + (m.internal_date_ms.unsigned_abs() % 3);
        m.history_id = next;
    }
    let mut all_labels = standard_labels(&[]);
    all_labels.extend(labels.user.into_iter().enumerate().map(|(i, name)| Label {
        id: format!("Label_{}", i + 1),
        name,
        kind: LabelType::User,
    }));
    Mailbox {
        messages,
        labels: all_labels,
        history_id: next,
        history: Default::default(),
        history_floor: next,
        history_retain: 10_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, content: &[u8]) -> Result<Mailbox, MboxError> {
        let dir = std::env::temp_dir().join(format!("mbox-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mail.mbox");
        std::fs::write(&path, content).unwrap();
        let r = load_mbox(&path, "me@example.com");
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    const TAKEOUT: &str = "From 1785236829153869834@xxx Wed Jan 03 15:27:16 +0000 2024\n\
X-GM-THRID: 1785236829153869834\n\
X-Gmail-Labels: Inbox,Important,Opened,Category Promotions,My Label,\"Work, Old\"\n\
Date: Wed, 3 Jan 2024 16:27:16 +0100\n\
From: =?UTF-8?Q?Jos=C3=A9_M=C3=BCller?= <jose@example.com>\n\
To: Me <me@example.com>\n\
Cc: other@example.com\n\
Subject: =?UTF-8?B?5bGx55Sw5aSq6YOO?=\n\
Message-ID: <a@example.com>\n\
\n\
Hello 'there' & welcome.\n\
>From the archive.\n\
>>From deeper.\n\
\n\
From 1785236829153869999@xxx Thu Jan 04 10:00:00 +0000 2024\n\
X-GM-THRID: 1785236829153869834\n\
X-Gmail-Labels: Sent,Unread,=?UTF-8?Q?Fam=C3=ADlia?=\n\
Date: Thu, 4 Jan 2024 10:00:00 +0000\n\
From: me@example.com\n\
To: jose@example.com\n\
Subject: Re: test\n\
Message-ID: <b@example.com>\n\
\n\
From now on, no quoting.\n\
\n\
From 1785236829153870000@xxx Fri Jan 05 10:00:00 +0000 2024\n\
X-Gmail-Labels: Spam,My Label\n\
From: spam@example.net\n\
Subject: Win\n\
In-Reply-To: <b@example.com>\n\
\n\
no date header, no trailing newline";

    #[test]
    fn takeout_labels_threads_and_bytes() {
        let mb = load("takeout", TAKEOUT.as_bytes()).unwrap();
        assert_eq!(mb.messages.len(), 3);
        let msgs: Vec<&SimMessage> = mb.messages.values().collect();
        let (a, b, c) = (msgs[0], msgs[1], msgs[2]);
        assert_eq!(
            a.label_ids,
            [
                "CATEGORY_PROMOTIONS",
                "IMPORTANT",
                "INBOX",
                "Label_1",
                "Label_2"
            ]
        );
        assert_eq!(b.label_ids, ["Label_3", "SENT", "UNREAD"]);
        assert_eq!(c.label_ids, ["Label_1", "SPAM"]);
        let user: Vec<(&str, &str)> = mb
            .labels
            .iter()
            .filter(|l| l.kind == LabelType::User)
            .map(|l| (l.id.as_str(), l.name.as_str()))
            .collect();
        assert_eq!(
            user,
            [
                ("Label_1", "My Label"),
                ("Label_2", "Work, Old"),
                ("Label_3", "Família")
            ]
        );
        assert!(mb
            .labels
            .iter()
            .any(|l| l.id == "INBOX" && l.kind == LabelType::System));
        // Same X-GM-THRID: one thread, named by its oldest message.
        assert_eq!(a.thread_id, a.id);
        assert_eq!(b.thread_id, a.id);
        // In-Reply-To links the thread-less message to b's thread.
        assert_eq!(c.thread_id, a.id);
        assert_eq!(a.internal_date_ms, 1_704_295_636_000);
        assert_eq!(b.internal_date_ms, 1_704_362_400_000);
        // No Date header: the From_ line's date.
        assert_eq!(c.internal_date_ms, 1_704_448_800_000);
        assert!(a.id < b.id && b.id < c.id);
        assert_eq!(a.from, "José Müller <jose@example.com>");
        assert_eq!(a.to, "Me <me@example.com>, other@example.com");
        assert_eq!(a.subject, "山田太郎");
        assert_eq!(
            a.snippet,
            "Hello &#39;there&#39; &amp; welcome. From the archive. &gt;From deeper."
        );
        let raw = a.raw();
        assert!(raw.starts_with(b"X-GM-THRID: 1785236829153869834\n"));
        assert!(raw.ends_with(b"welcome.\nFrom the archive.\n>From deeper.\n"));
        assert_eq!(a.size, raw.len());
        assert!(c.raw().ends_with(b"no trailing newline"));
        // An unquoted body line starting "From " without a date stays in.
        assert!(b.raw().ends_with(b"From now on, no quoting.\n"));
        assert_eq!(
            mb.history_id,
            msgs.iter().map(|m| m.history_id).max().unwrap()
        );
        assert_eq!(mb.history_floor, mb.history_id);
    }

    #[test]
    fn crlf_and_non_utf8() {
        let data = b"From x@y Mon Jan  1 00:00:00 2024\r\nSubject: caf\xe9\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nna\xefve body\r\n\r\nFrom x@y Mon Jan  1 00:00:01 2024\r\nSubject: two\r\n\r\nsecond\r\n\r\nFrom x@y Mon Jan  1 00:00:02 2024\r\nFrom: Me <ME@example.com>\r\n\r\nmine\r\n";
        let mb = load("crlf", data).unwrap();
        let msgs: Vec<&SimMessage> = mb.messages.values().collect();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[2].label_ids, ["SENT"]);
        assert!(msgs[0].raw().ends_with(b"na\xefve body\r\n"));
        assert_eq!(msgs[0].snippet, "naïve body");
        assert_eq!(msgs[0].internal_date_ms, 1_704_067_200_000);
        assert_eq!(msgs[1].raw().as_ref(), b"Subject: two\r\n\r\nsecond\r\n");
        // No labels header: INBOX; no thread links: own thread.
        assert_eq!(msgs[1].label_ids, ["INBOX"]);
        assert_eq!(msgs[1].thread_id, msgs[1].id);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = load("empty", b"").unwrap_err();
        assert!(matches!(e, MboxError::Empty { .. }));
        assert!(e.to_string().contains("mail.mbox"), "{e}");
        let e = load("blank", b"\n\n").unwrap_err();
        assert!(matches!(e, MboxError::Empty { .. }));
        let e = load("notmbox", b"\nSubject: hi\n\nbody\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("mail.mbox:2") && text.contains("Subject: hi"),
            "{text}"
        );
        let e = load_mbox(Path::new("/nonexistent/x.mbox"), "me@example.com").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.mbox"));
    }

    #[test]
    fn garbage_messages_load() {
        let mut data =
            b"From garbage\n\xff\xfe\x00binary\n\nFrom a@b Sat Feb 29 12:00:00 2020\n".to_vec();
        data.extend_from_slice(b"Content-Type: multipart/mixed; boundary=zz\n\n--zz\nno end\n");
        let mb = load("garbage", &data).unwrap();
        assert_eq!(mb.messages.len(), 2);
        for m in mb.messages.values() {
            for f in [
                crate::sim::render::Format::Full,
                crate::sim::render::Format::Metadata,
            ] {
                crate::sim::render::message_json(m, f, &[]);
            }
        }
    }

    #[test]
    fn from_line_dates() {
        assert_eq!(
            from_line_date(b"123@xxx Wed Jan 03 15:27:16 +0000 2024"),
            Some(1_704_295_636_000)
        );
        assert_eq!(
            from_line_date(b"MAILER-DAEMON Fri Jul  8 12:08:34 2011"),
            Some(1_310_126_914_000)
        );
        assert_eq!(
            from_line_date(b"x Wed Jan 03 15:27:16 +0100 2024"),
            Some(1_704_295_636_000 - 3_600_000)
        );
        assert_eq!(from_line_date(b"what I hear, it works"), None);
        assert_eq!(from_line_date(b"Jan 5 at 10:00 until 2024 or so"), None);
    }

    #[test]
    fn round_trip_generated_mailbox_through_mbox() {
        let mb = crate::sim::generate::generate(2, 300, "me@example.com", 1_767_225_600_000);
        let mut data = Vec::new();
        for m in mb.messages.values() {
            data.extend_from_slice(b"From 1@xxx Mon Jan 01 00:00:00 +0000 2024\r\n");
            data.extend_from_slice(&m.raw());
            data.extend_from_slice(b"\r\n");
        }
        let back = load("roundtrip", &data).unwrap();
        assert_eq!(back.messages.len(), mb.messages.len());
        let mut threads = HashMap::new();
        for (a, b) in mb.messages.values().zip(back.messages.values()) {
            assert_eq!(a.raw(), b.raw());
            assert_eq!(a.internal_date_ms, b.internal_date_ms);
            // Threads are rebuilt from References alone.
            assert_eq!(
                threads.entry(&a.thread_id).or_insert(&b.thread_id),
                &&b.thread_id
            );
            assert_eq!((&a.from, &a.to, &a.subject), (&b.from, &b.to, &b.subject));
            assert_eq!(a.snippet, b.snippet);
            assert_eq!(a.attachment_names, b.attachment_names);
            assert_eq!(a.size, b.size);
        }
        // ... and no two threads merged.
        let distinct: HashSet<_> = threads.values().collect();
        assert_eq!(distinct.len(), threads.len());
    }
}
