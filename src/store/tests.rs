use super::*;
use std::time::Instant;

fn failure(id: &str, status: u16, attempts: u32) -> FailureRecord {
    FailureRecord {
        id: id.into(),
        status,
        reason: "backendError".into(),
        message: "Backend Error".into(),
        class: "server".into(),
        attempts,
    }
}

#[test]
fn round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.state");
    {
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.path(), path);
        s.mark_done("a").unwrap();
        s.mark_done("b").unwrap();
        s.mark_done("a").unwrap();
        s.set("history_id", Some("123")).unwrap();
        s.record_failure(&failure("c", 500, 3)).unwrap();
        assert!(s.is_done("a").unwrap());
        assert_eq!(s.count_done().unwrap(), 2);
        s.commit().unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert!(s.is_done("a").unwrap() && s.is_done("b").unwrap());
    assert!(!s.is_done("c").unwrap());
    assert_eq!(s.count_done().unwrap(), 2);
    assert_eq!(s.get("history_id").unwrap().as_deref(), Some("123"));
    assert_eq!(s.failures().unwrap(), vec![failure("c", 500, 3)]);
}

#[test]
fn drop_rolls_back_close_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    {
        let mut s = Store::open(&path).unwrap();
        s.mark_done("kept").unwrap();
        s.commit().unwrap();
        s.mark_done("dropped").unwrap();
        s.set("k", Some("v")).unwrap();
    }
    let mut s = Store::open(&path).unwrap();
    assert!(s.is_done("kept").unwrap());
    assert!(!s.is_done("dropped").unwrap());
    assert_eq!(s.get("k").unwrap(), None);
    s.mark_done("closed").unwrap();
    s.close().unwrap();
    assert!(Store::open(&path).unwrap().is_done("closed").unwrap());
}

/// What a killed process leaves: committed marks are in the file, the open
/// transaction is not.
#[test]
fn durable_at_commit_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut s = Store::open(&path).unwrap();
    s.mark_done("committed").unwrap();
    s.commit().unwrap();
    s.mark_done("pending").unwrap();
    // A copy of the files as they are on disk now, as after a kill.
    let copy = dir.path().join("copy");
    fs::copy(&path, &copy).unwrap();
    fs::copy(dir.path().join("s-wal"), dir.path().join("copy-wal")).unwrap();
    let c = Store::open(&copy).unwrap();
    assert!(c.is_done("committed").unwrap());
    assert!(!c.is_done("pending").unwrap());
    drop(s);
}

#[test]
fn second_open_is_refused_while_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    for fresh in [true, false] {
        let first = Store::open(&path).unwrap();
        let t = Instant::now();
        let err = Store::open(&path).err().expect("second open must fail");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(
            matches!(err, StoreError::InUse { .. }),
            "{err} (fresh: {fresh})"
        );
        let msg = err.to_string();
        assert!(msg.contains("in use by another run") && msg.contains(&*path.to_string_lossy()));
        drop(first);
        Store::open(&path).unwrap();
    }
}

#[test]
fn failures_upsert_and_clear_on_done() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("s")).unwrap();
    s.record_failure(&failure("x", 500, 1)).unwrap();
    s.record_failure(&failure("y", 404, 1)).unwrap();
    s.record_failure(&failure("x", 429, 4)).unwrap();
    assert_eq!(
        s.failures().unwrap(),
        vec![failure("x", 429, 4), failure("y", 404, 1)]
    );
    s.mark_done("x").unwrap();
    assert_eq!(s.failures().unwrap(), vec![failure("y", 404, 1)]);
}

#[test]
fn kv_set_get_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("s")).unwrap();
    assert_eq!(s.get("k").unwrap(), None);
    s.set("k", Some("1")).unwrap();
    s.set("k", Some("2")).unwrap();
    assert_eq!(s.get("k").unwrap().as_deref(), Some("2"));
    s.set("k", None).unwrap();
    assert_eq!(s.get("k").unwrap(), None);
    s.set("missing", None).unwrap();
}

fn assert_refused(path: &Path, expect: &str) {
    let before = fs::read(path).unwrap();
    let err = Store::open(path).err().expect("must refuse");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::NotOurs { .. }), "{msg}");
    assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
    assert!(
        msg.contains(expect) && msg.contains("move it away"),
        "{msg}"
    );
    assert_eq!(fs::read(path).unwrap(), before, "file was modified");
    let names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "left files behind: {names:?}");
}

#[test]
fn foreign_files_are_refused_untouched() {
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "random",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("text", b"id,subject\n1,hello\n".to_vec()),
        // Starts like SQLite, then garbage: damaged.
        ("damaged", {
            let mut v = SQLITE_MAGIC.to_vec();
            v.extend((0..8192u32).map(|i| (i % 253) as u8));
            v
        }),
    ];
    for (name, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        assert_refused(&path, "not a gmailscript state file");
    }
}

#[test]
fn foreign_sqlite_is_refused_untouched() {
    for journal in ["DELETE", "WAL"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        {
            let c = Connection::open(&path).unwrap();
            c.query_row(&format!("PRAGMA journal_mode = {journal}"), [], |_| Ok(()))
                .unwrap();
            c.execute_batch("CREATE TABLE meta (key TEXT, value TEXT); INSERT INTO meta VALUES ('app', 'other');")
                .unwrap();
        }
        assert_refused(&path, "another program");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hot.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    fs::write(dir.path().join("hot.db-journal"), b"journal").unwrap();
    let before = fs::read(&path).unwrap();
    let err = Store::open(&path).err().unwrap();
    assert!(err.to_string().contains("rollback journal"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), before);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nometa.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    assert_refused(&path, "another program");
}

#[test]
fn newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    Store::open(&path).unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch("UPDATE meta SET value = '2' WHERE key = 'schema'")
        .unwrap();
    let before = fs::read(&path).unwrap();
    let err = Store::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::Newer { found: 2, .. }), "{err}");
    assert!(err.to_string().contains("newer gmailscript"));
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn empty_file_is_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    fs::write(&path, b"").unwrap();
    let mut s = Store::open(&path).unwrap();
    s.mark_done("a").unwrap();
    s.close().unwrap();
    assert!(Store::open(&path).unwrap().is_done("a").unwrap());
}

#[test]
fn bad_locations_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(&dir.path().join("nope/s")).err().unwrap();
    assert!(matches!(err, StoreError::NoFolder { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    let err = Store::open(dir.path()).err().unwrap();
    assert!(matches!(err, StoreError::IsFolder { .. }), "{err}");
    let file = dir.path().join("f");
    fs::write(&file, b"x").unwrap();
    let err = Store::open(&file.join("s")).err().unwrap();
    assert!(matches!(err, StoreError::NoFolder { .. }), "{err}");
}
