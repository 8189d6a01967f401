use super::*;
use std::time::Duration;

struct Msg {
    id: String,
    thread: String,
    labels: Vec<String>,
    names: Vec<String>,
    ms: i64,
    raw: Option<Vec<u8>>,
    json: String,
}

impl Msg {
    fn new(id: &str, labels: &[&str], raw: &[u8]) -> Msg {
        Msg {
            id: id.into(),
            thread: "18c0a1b2c3d4e5f6".into(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            names: Vec::new(),
            ms: 1_614_816_000_123, // 2021-03-04T00:00:00.123Z
            raw: Some(raw.to_vec()),
            json: format!(r#"{{"id":"{id}"}}"#),
        }
    }
    fn out(&self) -> OutMessage<'_> {
        OutMessage {
            id: &self.id,
            thread_id: &self.thread,
            labels: &self.labels,
            label_names: &self.names,
            internal_date_ms: self.ms,
            raw: self.raw.as_deref(),
            json: &self.json,
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn jsonl_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let mut w = jsonl(&path, None).unwrap();
    assert_eq!((w.kind(), w.path()), ("jsonl", path.as_path()));
    w.write(&Msg::new("a", &[], b"").out()).unwrap();
    let mut pretty = Msg::new("b", &[], b"");
    pretty.json = "{\n  \"id\": \"b\",\r\n  \"s\": \"x\\ny\"\n}\n".into();
    w.write(&pretty.out()).unwrap();
    assert_eq!(w.resume_point(), Some(0), "nothing durable before flush");
    w.flush().unwrap();
    assert_eq!(w.count(), 2);
    assert_eq!(w.resume_point(), Some(fs::metadata(&path).unwrap().len()));
    let v = lines(&path);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["id"], "a");
    assert_eq!(v[1]["s"], "x\ny");
}

#[test]
fn append_resume_cuts_uncommitted_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let mut w = jsonl(&path, None).unwrap();
    for id in ["a", "b"] {
        w.write(&Msg::new(id, &[], b"").out()).unwrap();
    }
    w.flush().unwrap();
    let point = w.resume_point().unwrap();
    // Written after the last commit, then a kill mid-line.
    w.write(&Msg::new("c", &[], b"").out()).unwrap();
    w.flush().unwrap();
    drop(w);
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    io::Write::write_all(&mut f, br#"{"id":"d","half"#).unwrap();
    drop(f);

    let mut w = jsonl(&path, Some(point)).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), point);
    w.write(&Msg::new("c", &[], b"").out()).unwrap();
    w.flush().unwrap();
    let ids: Vec<_> = lines(&path).iter().map(|v| v["id"].clone()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

#[test]
fn append_resume_mismatches_leave_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.mbox");
    fs::write(&path, "From a@gmailscript x\n\nhi\n\n").unwrap();
    let before = fs::read(&path).unwrap();
    let len = before.len() as u64;
    for (resume, want) in [
        (None, "no resume point"),
        (Some(len + 10), "were written to it"),
        (Some(3), "not the end of a record"),
    ] {
        let err = mbox(&path, resume).err().unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains(want) && msg.contains(&*path.to_string_lossy()),
            "{msg}"
        );
        assert_eq!(fs::read(&path).unwrap(), before);
    }
    let missing = dir.path().join("gone.jsonl");
    let err = jsonl(&missing, Some(5)).err().unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!missing.exists());
    // Some(0) starts over on purpose.
    let w = mbox(&path, Some(0)).unwrap();
    assert_eq!(w.resume_point(), Some(0));
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);
}

#[test]
fn append_file_is_locked_while_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let _w = jsonl(&path, None).unwrap();
    let err = jsonl(&path, Some(0)).err().unwrap();
    assert!(matches!(err, OutputError::InUse { .. }), "{err}");
}

/// Splits an mbox on From_ lines and undoes mboxrd quoting.
fn parse_mbox(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(from) = line.strip_prefix("From ") {
            out.push((from.trim_end().into(), Vec::new()));
            continue;
        }
        let quotes = line.bytes().take_while(|&b| b == b'>').count();
        let line = if quotes > 0 && line[quotes..].starts_with("From ") {
            &line[1..]
        } else {
            line
        };
        out.last_mut().unwrap().1.push(line.into());
    }
    out
}

#[test]
fn mbox_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.mbox");
    let bodies: [&[u8]; 3] = [
        b"Subject: one\r\n\r\nFrom the start\r\n>From quoted\r\n>>From twice\r\nFromage\r\n",
        b"Subject: two\n\nno final newline",
        b"Subject: three\r\n\r\nends with a blank line\r\n\r\n",
    ];
    let mut msgs: Vec<Msg> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| Msg::new(&format!("id{i}"), &["INBOX", "UNREAD"], b))
        .collect();
    msgs[1].labels = vec![
        "CATEGORY_PROMOTIONS".into(),
        "Label_7".into(),
        "Label_8".into(),
    ];
    msgs[1].names = vec![
        "CATEGORY_PROMOTIONS".into(),
        "Work/Projects".into(),
        "a,b \"c\"".into(),
    ];
    msgs[2].labels = vec!["Label_9".into()];
    msgs[2].thread = "not-hex".into();
    let mut w = mbox(&path, None).unwrap();
    for m in &msgs {
        w.write(&m.out()).unwrap();
    }
    w.flush().unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains('\r'));
    let records = parse_mbox(&text);
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].0, "id0@gmailscript Thu Mar  4 00:00:00 2021");
    let thrid = format!("X-GM-THRID: {}\n", 0x18c0a1b2c3d4e5f6u64);
    let expect_headers = [
        [thrid.as_str(), "X-Gmail-Labels: Inbox,Unread\n"],
        [
            thrid.as_str(),
            "X-Gmail-Labels: Category Promotions,Work/Projects,\"a,b \\\"c\\\"\"\n",
        ],
        ["X-GM-THRID: not-hex\n", "X-Gmail-Labels: Label_9\n"],
    ];
    for ((rec, raw), headers) in records.iter().zip(bodies).zip(expect_headers) {
        assert_eq!(rec.1[..2], headers);
        let body: String = rec.1[2..].concat();
        let mut want = String::from_utf8(raw.to_vec())
            .unwrap()
            .replace("\r\n", "\n");
        if !want.ends_with('\n') {
            want.push('\n');
        }
        want.push('\n');
        assert_eq!(body, want);
    }
}

#[test]
fn raw_formats_need_raw() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Msg::new("a", &[], b"");
    m.raw = None;
    let writers = [
        mbox(&dir.path().join("m.mbox"), None).unwrap(),
        maildir(&dir.path().join("md")).unwrap(),
        eml(&dir.path().join("eml")).unwrap(),
    ];
    for mut w in writers {
        let err = w.write(&m.out()).err().unwrap();
        assert!(matches!(err, OutputError::NeedsRaw { .. }));
        assert_eq!(
            err.to_string(),
            format!("{} needs messages fetched with format \"raw\"", w.kind())
        );
    }
}

#[test]
fn ids_that_would_escape_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = eml(dir.path()).unwrap();
    for id in ["../x", "a b", "", "a.b"] {
        let err = w.write(&Msg::new(id, &[], b"x").out()).err().unwrap();
        assert!(matches!(err, OutputError::BadId { .. }), "{err}");
    }
}

#[test]
fn maildir_names_flags_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Mail");
    let mut w = maildir(&root).unwrap();
    let cases = [
        ("m1", vec!["INBOX", "UNREAD"], ""),
        ("m2", vec!["INBOX"], "S"),
        ("m3", vec!["STARRED", "UNREAD"], "F"),
        ("m4", vec!["STARRED"], "FS"),
    ];
    for (id, labels, _) in &cases {
        w.write(&Msg::new(id, labels, b"Subject: x\r\n\r\nbody\r\n").out())
            .unwrap();
    }
    w.flush().unwrap();
    let want: Vec<String> = cases
        .iter()
        .map(|(id, _, flags)| format!("1614816000.{id}.gmailscript:2,{flags}"))
        .collect();
    assert_eq!(names(&root.join("cur")), want);
    assert_eq!(
        fs::read(root.join("cur").join(&want[0])).unwrap(),
        b"Subject: x\n\nbody\n"
    );
    assert!(names(&root.join("tmp")).is_empty());

    // Read now: same id, new flags, the old file goes.
    w.write(&Msg::new("m1", &["INBOX"], b"v2").out()).unwrap();
    drop(w);
    // A mail client moved m2 to new/ and renamed it; a new run still finds it.
    fs::rename(
        root.join("cur").join(&want[1]),
        root.join("new").join("1614816000.m2.gmailscript"),
    )
    .unwrap();
    let mut w = maildir(&root).unwrap();
    w.write(&Msg::new("m2", &["INBOX"], b"v2").out()).unwrap();
    w.flush().unwrap();
    assert!(names(&root.join("new")).is_empty());
    let cur = names(&root.join("cur"));
    assert_eq!(cur.len(), 4, "{cur:?}");
    assert!(cur.contains(&"1614816000.m1.gmailscript:2,S".to_string()));
    assert_eq!(
        fs::read(root.join("cur").join("1614816000.m1.gmailscript:2,S")).unwrap(),
        b"v2"
    );
}

/// `relabel` renames the file to the new flags without touching its bytes,
/// also after a reopen (a later run's incremental label sync), and says
/// false for an id it never wrote or flags that did not change.
#[test]
fn maildir_relabel_renames_and_keeps_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Mail");
    let mut w = maildir(&root).unwrap();
    w.write(&Msg::new("m1", &["INBOX", "UNREAD"], b"Subject: x\r\n\r\nbody\r\n").out())
        .unwrap();
    w.flush().unwrap();
    assert_eq!(names(&root.join("cur")), ["1614816000.m1.gmailscript:2,"]);

    assert!(w
        .relabel("m1", &["INBOX".into(), "STARRED".into()])
        .unwrap());
    assert!(!w.relabel("m1", &["STARRED".into()]).unwrap(), "same flags");
    assert!(
        !w.relabel("nope", &["STARRED".into()]).unwrap(),
        "never written"
    );
    w.flush().unwrap();
    drop(w);
    let cur = root.join("cur");
    assert_eq!(names(&cur), ["1614816000.m1.gmailscript:2,FS"]);

    let mut w = maildir(&root).unwrap();
    assert!(w.relabel("m1", &["UNREAD".into()]).unwrap());
    w.flush().unwrap();
    assert_eq!(names(&cur), ["1614816000.m1.gmailscript:2,"]);
    assert_eq!(
        fs::read(cur.join("1614816000.m1.gmailscript:2,")).unwrap(),
        b"Subject: x\n\nbody\n"
    );
    assert!(names(&root.join("new")).is_empty() && names(&root.join("tmp")).is_empty());
}

#[test]
fn maildir_open_clears_tmp_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    drop(maildir(root).unwrap());
    // What a killed run can leave: a half-written file in tmp/, and two
    // files for one id (killed between rename and removal).
    fs::write(root.join("tmp/1614816000.k.gmailscript.999"), b"Subj").unwrap();
    fs::write(root.join("tmp/1614816000.M1P2.host"), b"other MDA").unwrap();
    fs::write(root.join("cur/1614816000.d.gmailscript:2,"), b"old").unwrap();
    fs::write(root.join("cur/1614816000.d.gmailscript:2,S"), b"new").unwrap();
    // Which is newer is set, not waited for: some file systems keep mtimes
    // to the second.
    let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_614_816_000);
    fs::File::options()
        .write(true)
        .open(root.join("cur/1614816000.d.gmailscript:2,"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    fs::write(root.join("cur/1614816000.M1P2.host:2,S"), b"not ours").unwrap();
    let mut w = maildir(root).unwrap();
    w.flush().unwrap();
    assert_eq!(names(&root.join("tmp")), ["1614816000.M1P2.host"]);
    assert_eq!(
        names(&root.join("cur")),
        ["1614816000.M1P2.host:2,S", "1614816000.d.gmailscript:2,S"]
    );
}

#[test]
fn eml_tree_replaces_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("eml");
    let mut w = eml(&root).unwrap();
    let mut early = Msg::new("e1", &[], b"x");
    early.ms = -1_000; // before the epoch: still a valid date
    w.write(&Msg::new("e1", &[], b"Subject: 1\r\n\r\nv1\r\n").out())
        .unwrap();
    w.write(&Msg::new("e1", &[], b"Subject: 1\r\n\r\nv2\r\n").out())
        .unwrap();
    w.write(&early.out()).unwrap();
    w.flush().unwrap();
    assert_eq!(w.count(), 3);
    assert_eq!(names(&root.join("2021/03")), ["e1.eml"]);
    assert_eq!(
        fs::read(root.join("2021/03/e1.eml")).unwrap(),
        b"Subject: 1\r\n\r\nv2\r\n"
    );
    assert_eq!(names(&root.join("1969/12")), ["e1.eml"]);
    // A killed run's temporary file is cleared at open; the folder goes at drop.
    fs::write(root.join(TMP_EML).join("x.eml"), b"half").unwrap();
    drop(w);
    let w = eml(&root).unwrap();
    assert!(names(&root.join(TMP_EML)).is_empty());
    drop(w);
    assert_eq!(names(&root), ["1969", "2021"]);
}

const TMP_EML: &str = ".gmailscript-tmp";

#[test]
fn folder_outputs_are_locked_while_written() {
    type Open = fn(&Path) -> Result<Box<dyn Writer>, OutputError>;
    let opens: [(&str, Open); 2] = [("maildir", maildir), ("eml", eml)];
    for (kind, open) in opens {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(kind);
        let first = open(&root).unwrap();
        let e = open(&root).err().unwrap();
        let msg = e.to_string();
        assert!(
            matches!(e, OutputError::FolderInUse { pid: Some(p), .. } if p == std::process::id()),
            "{kind}: {msg}"
        );
        assert!(
            msg.contains(&*root.to_string_lossy())
                && msg.contains("in use by another gmailscript run")
                && msg.contains(&format!("pid {}?", std::process::id())),
            "{msg}"
        );
        drop(first);
        assert!(
            !root.join(lock::LOCK_FILE).exists(),
            "{kind}: removed on close"
        );
        drop(open(&root).unwrap());
    }
}

#[cfg(unix)]
#[test]
fn symlinks_are_never_followed_to_clear_or_lock() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Someone else's folder, with files named as ours would be.
    let victim = d.join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("a.eml"), b"keep").unwrap();
    fs::write(victim.join("1.x.gmailscript.1"), b"keep").unwrap();
    let before = names(&victim);

    let eml_root = d.join("eml");
    fs::create_dir(&eml_root).unwrap();
    symlink(&victim, eml_root.join(TMP_EML)).unwrap();
    let e = eml(&eml_root).err().unwrap();
    assert!(matches!(e, OutputError::Symlink { .. }), "{e}");
    assert!(e.to_string().contains(TMP_EML) && e.to_string().contains("symbolic link"));

    let md = d.join("md");
    fs::create_dir(&md).unwrap();
    symlink(&victim, md.join("tmp")).unwrap();
    let e = maildir(&md).err().unwrap();
    assert!(matches!(e, OutputError::Symlink { .. }), "{e}");
    assert_eq!(names(&victim), before, "nothing removed through the link");

    // A link where the lock file goes: its target is not overwritten.
    let target = d.join("precious.txt");
    fs::write(&target, b"my notes").unwrap();
    let md2 = d.join("md2");
    fs::create_dir(&md2).unwrap();
    symlink(&target, md2.join(lock::LOCK_FILE)).unwrap();
    let e = maildir(&md2).err().unwrap();
    assert!(matches!(e, OutputError::Symlink { .. }), "{e}");
    assert_eq!(fs::read(&target).unwrap(), b"my notes");

    // A link inside the temporary folder is not ours: left, not followed.
    let eml2 = d.join("eml2");
    fs::create_dir_all(eml2.join(TMP_EML)).unwrap();
    symlink(victim.join("a.eml"), eml2.join(TMP_EML).join("b.eml")).unwrap();
    drop(eml(&eml2).unwrap());
    assert_eq!(fs::read(victim.join("a.eml")).unwrap(), b"keep");
}

#[test]
fn unwritable_places_fail_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("file");
    fs::write(&file, b"x").unwrap();
    type Open = fn(&Path) -> Result<Box<dyn Writer>, OutputError>;
    let opens: [(&str, Open); 4] = [
        ("jsonl", |p| jsonl(p, None)),
        ("mbox", |p| mbox(p, None)),
        ("maildir", maildir),
        ("eml", eml),
    ];
    for (kind, open) in opens {
        let err = |p: &Path| {
            let e = open(p)
                .err()
                .unwrap_or_else(|| panic!("{kind} opened {p:?}"));
            (e.to_string(), e)
        };
        // Two levels missing: not created.
        let (msg, e) = err(&d.join("no/such/x"));
        assert!(matches!(e, OutputError::NoFolder { .. }), "{kind}: {msg}");
        assert!(
            msg.contains("no/such") && msg.contains("does not exist"),
            "{msg}"
        );
        // The parent is a file.
        let (msg, e) = err(&file.join("x"));
        assert!(matches!(e, OutputError::NotAFolder { .. }), "{kind}: {msg}");
        assert!(msg.contains(&*file.to_string_lossy()), "{msg}");
        // One missing folder is created: the file's folder, or the root.
        let p = match kind {
            "jsonl" | "mbox" => d.join(format!("new-{kind}/x")),
            _ => d.join(format!("new-{kind}")),
        };
        open(&p).unwrap();
        assert!(d.join(format!("new-{kind}")).is_dir());
    }
    // A folder where a file is expected, and the reverse.
    let e = jsonl(d, None).err().unwrap();
    assert!(matches!(e, OutputError::NotAFile { .. }), "{e}");
    let e = eml(&file).err().unwrap();
    assert!(matches!(e, OutputError::NotAFolder { .. }), "{e}");
    let md = d.join("md");
    fs::create_dir(&md).unwrap();
    fs::write(md.join("cur"), b"").unwrap();
    let e = maildir(&md).err().unwrap();
    assert!(e.to_string().contains("cur"), "{e}");
}
