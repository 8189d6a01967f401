//! Restore round trip: scripts/backup.lua writes a Maildir of one mailbox,
//! scripts/restore.lua puts it into another, and the second mailbox then
//! holds every message once, with the same bytes and the same label names,
//! through kills, a second run and a reserved label name.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use common::{service_key, SimProcess, BIN};

fn script(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A GET as `token`'s user.
fn get_as(sim: &SimProcess, token: &str, path: &str) -> Value {
    let url = format!("{}/gmail/v1/users/me/{path}", sim.url);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let r = reqwest::Client::new()
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        r.json().await.unwrap()
    })
}

/// Every message id of the mailbox, spam and trash too.
fn all_ids(sim: &SimProcess, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page = String::new();
    loop {
        let v = get_as(
            sim,
            token,
            &format!("messages?maxResults=500&includeSpamTrash=true{page}"),
        );
        for m in v["messages"].as_array().into_iter().flatten() {
            ids.push(m["id"].as_str().unwrap().to_string());
        }
        match v["nextPageToken"].as_str() {
            Some(t) => page = format!("&pageToken={t}"),
            None => return ids,
        }
    }
}

fn label_names(sim: &SimProcess, token: &str) -> HashMap<String, String> {
    get_as(sim, token, "labels")["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap().to_string(),
                l["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// (raw bytes, label names, Message-ID) of a message.
fn message(
    sim: &SimProcess,
    token: &str,
    names: &HashMap<String, String>,
    id: &str,
) -> (Vec<u8>, BTreeSet<String>, String) {
    let v = get_as(sim, token, &format!("messages/{id}?format=raw"));
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(v["raw"].as_str().unwrap())
        .unwrap();
    let labels = v["labelIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| names[l.as_str().unwrap()].clone())
        .collect();
    let head = String::from_utf8_lossy(&raw);
    let mid = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Message-ID: ")
                .or_else(|| l.strip_prefix("Message-Id: "))
        })
        .unwrap_or("")
        .trim()
        .trim_matches(['<', '>'])
        .to_string();
    (raw, labels, mid)
}

fn restore_cmd(sim: &SimProcess, token: &str, src: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "run",
        &script("restore.lua"),
        "--endpoint",
        &sim.url,
        "--quota",
        "off",
        "--quiet",
    ])
    .args(extra)
    .arg("--")
    .arg(src)
    .env("GMAILSCRIPT_TOKEN", token);
    c
}

fn ok(out: &Output) -> String {
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    o
}

fn wait_until(child: &mut Child, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the restore ended ({status}) before {what}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn backup_then_restore_into_another_mailbox_gives_every_message_once_with_bytes_and_labels() {
    let sim = SimProcess::start(&["--messages", "120", "--latency", "15ms", "--quota", "off"]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("alice");
    let out = Command::new(BIN)
        .args([
            "run",
            &script("backup.lua"),
            "--endpoint",
            &sim.url,
            "--quota",
            "off",
            "--quiet",
            "--",
        ])
        .arg(&dest)
        .env("GMAILSCRIPT_TOKEN", "sim-token")
        .output()
        .unwrap();
    ok(&out);

    // The source: what backup.lua lists (spam and trash left out).
    let src_names = label_names(&sim, "sim-token");
    let mut source: Vec<(Vec<u8>, BTreeSet<String>, String)> = Vec::new();
    let mut page = String::new();
    loop {
        let v = get_as(&sim, "sim-token", &format!("messages?maxResults=500{page}"));
        for m in v["messages"].as_array().into_iter().flatten() {
            source.push(message(
                &sim,
                "sim-token",
                &src_names,
                m["id"].as_str().unwrap(),
            ));
        }
        match v["nextPageToken"].as_str() {
            Some(t) => page = format!("&pageToken={t}"),
            None => break,
        }
    }
    assert!(source.len() > 100);
    // A label Gmail refuses to create ("Muted", reserved) and a nested one,
    // on one message, as a mailbox that had them would be backed up.
    let sidecar = dest.join(".gmailscript-labels.jsonl");
    let lines = std::fs::read_to_string(&sidecar).unwrap();
    assert_eq!(
        lines.lines().count(),
        source.len(),
        "one label line per message"
    );
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    let special_id = first["id"].as_str().unwrap().to_string();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&sidecar)
        .unwrap();
    use std::io::Write as _;
    writeln!(
        f,
        "{}",
        serde_json::json!({"id": special_id, "labels": ["INBOX", "Muted", "Restored/Deep/Nested"]})
    )
    .unwrap();
    drop(f);
    let special_mid = {
        let v = get_as(
            &sim,
            "sim-token",
            &format!("messages/{special_id}?format=raw"),
        );
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(v["raw"].as_str().unwrap())
            .unwrap();
        source.iter().find(|s| s.0 == raw).unwrap().2.clone()
    };
    for s in source.iter_mut().filter(|s| s.2 == special_mid) {
        s.1 = ["INBOX", "Muted (restored)", "Restored/Deep/Nested"]
            .map(String::from)
            .into();
    }

    // Bob is the destination.
    let bob = sim.token_for("bob@example.com");
    let before = all_ids(&sim, &bob);

    // --dry-run: says what it would do, changes nothing, leaves no state.
    let out = restore_cmd(&sim, &bob, &dest, &["--dry-run"])
        .output()
        .unwrap();
    let said = ok(&out);
    assert!(
        said.contains(&format!("would import {}", source.len())),
        "{said}"
    );
    assert!(
        said.contains("labels to create: ")
            && said.contains("Muted")
            && said.contains("Restored/Deep/Nested"),
        "{said}"
    );
    assert_eq!(all_ids(&sim, &bob), before, "a dry run imports nothing");
    assert!(!dest
        .join(".gmailscript-restore-bob@example.com.state")
        .exists());

    // Killed three times mid-restore, then run to the end.
    for _ in 0..3 {
        let have = all_ids(&sim, &bob).len();
        let mut child = restore_cmd(&sim, &bob, &dest, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(&mut child, "more messages imported", || {
            all_ids(&sim, &bob).len() >= have + 10
        });
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let partial = all_ids(&sim, &bob).len() - before.len();
    assert!(
        partial < source.len(),
        "the kills landed mid-restore ({partial} of {})",
        source.len()
    );
    let said = ok(&restore_cmd(&sim, &bob, &dest, &[]).output().unwrap());
    assert!(
        said.contains("labels Gmail refused, renamed: \"Muted\" -> \"Muted (restored)\""),
        "{said}"
    );

    // Every message once, same bytes, same label names.
    let after = all_ids(&sim, &bob);
    assert_eq!(
        after.len(),
        before.len() + source.len(),
        "no duplicates, nothing missing: {said}"
    );
    let bob_names = label_names(&sim, &bob);
    for (raw, labels, mid) in &source {
        let q: String =
            url::form_urlencoded::byte_serialize(format!("rfc822msgid:{mid}").as_bytes()).collect();
        let hits = get_as(&sim, &bob, &format!("messages?q={q}&includeSpamTrash=true"));
        let hits = hits["messages"].as_array().cloned().unwrap_or_default();
        assert_eq!(hits.len(), 1, "{mid} once in the destination");
        let (got_raw, got_labels, _) =
            message(&sim, &bob, &bob_names, hits[0]["id"].as_str().unwrap());
        assert!(got_raw == *raw, "{mid}: the same bytes");
        assert_eq!(&got_labels, labels, "{mid}: the same label names");
    }

    // A second restore adds nothing.
    let said = ok(&restore_cmd(&sim, &bob, &dest, &[]).output().unwrap());
    assert!(
        said.contains(&format!("imported 0, {} already there", source.len())),
        "{said}"
    );
    assert_eq!(all_ids(&sim, &bob).len(), after.len());
}

#[test]
fn a_takeout_mbox_restores_with_its_labels_and_refused_names_renamed() {
    let sim = SimProcess::start(&["--messages", "5", "--quota", "off"]);
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("takeout.mbox");
    std::fs::write(
        &mbox,
        "From 1@xxx Mon Jan 01 00:00:00 +0000 2024\nX-GM-THRID: 1\nX-Gmail-Labels: Inbox,Opened,Muted,\"Clients, 2024\",Work/Q1\nMessage-ID: <t1@example.org>\nSubject: one\nDate: Mon, 01 Jan 2024 10:00:00 +0000\n\n>From the start\n\nFrom 2@xxx Mon Jan 01 00:00:00 +0000 2024\nX-Gmail-Labels: Sent,Starred,Unread\nMessage-ID: <t2@example.org>\nSubject: two\n\nbody\n",
    )
    .unwrap();
    let bob = sim.token_for("bob@example.com");
    let said = ok(&restore_cmd(&sim, &bob, &mbox, &[]).output().unwrap());
    assert!(said.contains("imported 2"), "{said}");
    assert!(said.contains("\"Muted\" -> \"Muted (restored)\""), "{said}");
    assert!(said.contains("left off: Opened"), "{said}");
    let names = label_names(&sim, &bob);
    let one = get_as(&sim, &bob, "messages?q=rfc822msgid:t1@example.org");
    let (raw, labels, _) = message(
        &sim,
        &bob,
        &names,
        one["messages"][0]["id"].as_str().unwrap(),
    );
    assert_eq!(
        labels,
        ["Clients, 2024", "INBOX", "Muted (restored)", "Work/Q1"]
            .map(String::from)
            .into()
    );
    assert!(
        raw.ends_with(b"\r\n\r\nFrom the start\r\n"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let two = get_as(
        &sim,
        &bob,
        "messages?q=rfc822msgid:t2@example.org&includeSpamTrash=true",
    );
    let (_, labels, _) = message(
        &sim,
        &bob,
        &names,
        two["messages"][0]["id"].as_str().unwrap(),
    );
    assert_eq!(
        labels,
        ["SENT", "STARRED", "UNREAD"].map(String::from).into()
    );
    // Again: nothing new.
    let said = ok(&restore_cmd(&sim, &bob, &mbox, &[]).output().unwrap());
    assert!(said.contains("imported 0, 2 already there"), "{said}");
}

/// A message of `len` bytes, the same in every run: headers, then lines of
/// letters that vary (so a chunk sent twice or skipped changes the bytes).
fn big_message(len: usize, mid: &str) -> Vec<u8> {
    let mut raw = format!(
        "From: Big <big@example.org>\r\nTo: alice@example.com\r\nSubject: big\r\nMessage-ID: <{mid}>\r\nDate: Tue, 02 Jan 2024 10:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    let mut x: u32 = 12345;
    while raw.len() < len {
        for _ in 0..76 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            raw.push(b'a' + ((x >> 16) % 26) as u8);
        }
        raw.extend_from_slice(b"\r\n");
    }
    raw.truncate(len);
    raw
}

#[test]
fn a_large_message_goes_resumable_and_a_broken_chunk_resumes_from_the_reported_offset() {
    use gmailscript::gmail::request::{DateSource, ImportOptions, Request};
    let sim = SimProcess::start(&["--messages", "5", "--quota", "off"]);
    let client = common::client(&sim.url);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = ImportOptions {
        insert: false,
        label_ids: vec!["INBOX".into()],
        date: DateSource::Header,
        never_mark_spam: true,
    };
    // 12 MiB: three 4 MiB chunks. The second chunk's exchange breaks after
    // the simulator kept half of it; then the last one breaks too.
    for (n, broken_chunk) in [(1, 2), (2, 3)] {
        let before = sim.stats()["uploads"].clone();
        let raw = big_message(12 << 20, &format!("big-{n}@example.org"));
        sim.post(&format!("/_sim/uploads/break?chunk={broken_chunk}"));
        let got = rt
            .block_on(client.call_json(&Request::import(raw.clone().into(), &opts)))
            .unwrap();
        let id = got["id"].as_str().unwrap();
        let after = sim.stats()["uploads"].clone();
        let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
        assert_eq!(
            delta("sessions_opened"),
            1,
            "resumed, not sent again: {after}"
        );
        assert_eq!(delta("chunks_broken"), 1, "{after}");
        assert!(
            delta("status_queries") >= 1,
            "asked where it stood: {after}"
        );
        assert_eq!(delta("completed"), 1);
        // 3 chunks, the broken one, and its rest sent after the status query.
        assert_eq!(delta("chunks"), 4, "{after}");
        let v = get_as(&sim, "sim-token", &format!("messages/{id}?format=raw"));
        let stored = base64::engine::general_purpose::URL_SAFE
            .decode(v["raw"].as_str().unwrap())
            .unwrap();
        assert_eq!(stored.len(), raw.len());
        assert!(stored == raw, "the same bytes after the broken chunk");
        let hits = get_as(
            &sim,
            "sim-token",
            &format!("messages?q=rfc822msgid:big-{n}@example.org"),
        );
        assert_eq!(hits["messages"].as_array().unwrap().len(), 1);
    }
    // A small message still goes as one multipart upload.
    let before = sim.stats()["uploads"]["sessions_opened"].as_u64().unwrap();
    rt.block_on(client.call_json(&Request::import(
        big_message(4096, "small@example.org").into(),
        &opts,
    )))
    .unwrap();
    assert_eq!(sim.stats()["uploads"]["sessions_opened"], before);
}

#[test]
fn localised_system_label_names_are_renamed_and_reported_end_to_end() {
    // A Takeout from a German or French account names its system labels in
    // that language; the simulator refuses them as label names.
    let sim = SimProcess::start(&["--messages", "5", "--quota", "off"]);
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("takeout.mbox");
    std::fs::write(
        &mbox,
        "From 1@xxx Mon Jan 01 00:00:00 +0000 2024\nX-Gmail-Labels: Posteingang,\"Boîte de réception\",Work\nMessage-ID: <loc1@example.org>\nSubject: eins\n\nHallo\n",
    )
    .unwrap();
    let bob = sim.token_for("bob@example.com");
    let said = ok(&restore_cmd(&sim, &bob, &mbox, &[]).output().unwrap());
    assert!(said.contains("imported 1"), "{said}");
    assert!(
        said.contains(
            "labels Gmail refused, renamed: \"Boîte de réception\" -> \"Boîte de réception (restored)\", \"Posteingang\" -> \"Posteingang (restored)\""
        ),
        "{said}"
    );
    let names = label_names(&sim, &bob);
    let one = get_as(&sim, &bob, "messages?q=rfc822msgid:loc1@example.org");
    let (_, labels, _) = message(
        &sim,
        &bob,
        &names,
        one["messages"][0]["id"].as_str().unwrap(),
    );
    assert_eq!(
        labels,
        [
            "Boîte de réception (restored)",
            "Posteingang (restored)",
            "Work"
        ]
        .map(String::from)
        .into()
    );
}

#[test]
fn migrate_copies_alice_into_bob_once_with_bytes_and_label_names_through_a_kill() {
    let sim = SimProcess::start(&["--messages", "80", "--latency", "15ms", "--quota", "off"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    let key = service_key(dir.path(), &sim);
    let gms = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("GMAILSCRIPT_CONFIG_DIR", &cfg)
            .env_remove("GMAILSCRIPT_TOKEN")
            .env_remove("RUST_LOG")
            .current_dir(dir.path())
            .stdin(Stdio::null());
        c
    };
    ok(&gms(&[
        "auth",
        "service-account",
        "--key",
        key.to_str().unwrap(),
        "--subject",
        "alice@example.com",
        "--scope",
        "modify",
        "--account",
        "corp",
        "--endpoint",
        &sim.url,
    ])
    .output()
    .unwrap());
    let migrate = || {
        let mut c = gms(&[
            "run",
            &script("migrate.lua"),
            "--account",
            "corp",
            "--endpoint",
            &sim.url,
            "--quota",
            "off",
            "--quiet",
        ]);
        c.args(["--", "bob@example.com"]);
        c
    };

    let (alice, bob) = (
        sim.token_for("alice@example.com"),
        sim.token_for("bob@example.com"),
    );
    let alice_names = label_names(&sim, &alice);
    let mut source = Vec::new();
    let mut page = String::new();
    loop {
        let v = get_as(&sim, &alice, &format!("messages?maxResults=500{page}"));
        for m in v["messages"].as_array().into_iter().flatten() {
            source.push(message(
                &sim,
                &alice,
                &alice_names,
                m["id"].as_str().unwrap(),
            ));
        }
        match v["nextPageToken"].as_str() {
            Some(t) => page = format!("&pageToken={t}"),
            None => break,
        }
    }
    assert!(source.len() > 50, "{}", source.len());
    assert!(
        source.iter().any(|s| s.1.iter().any(|l| l.contains('/')
            || l.starts_with("Label")
            || !l.chars().all(|c| c.is_ascii_uppercase() || c == '_'))),
        "the source has user labels to carry over"
    );
    let before = all_ids(&sim, &bob).len();

    // Killed once mid-way, then run to the end.
    let mut child = migrate()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(&mut child, "some messages migrated", || {
        all_ids(&sim, &bob).len() >= before + 10
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        all_ids(&sim, &bob).len() < before + source.len(),
        "the kill landed mid-way"
    );
    let said = ok(&migrate().output().unwrap());
    assert!(
        said.contains("migrate of alice@example.com into bob@example.com: imported"),
        "{said}"
    );

    assert_eq!(
        all_ids(&sim, &bob).len(),
        before + source.len(),
        "every message once: {said}"
    );
    let bob_names = label_names(&sim, &bob);
    for (raw, labels, mid) in &source {
        let q: String =
            url::form_urlencoded::byte_serialize(format!("rfc822msgid:{mid}").as_bytes()).collect();
        let hits = get_as(&sim, &bob, &format!("messages?q={q}&includeSpamTrash=true"));
        let hits = hits["messages"].as_array().cloned().unwrap_or_default();
        assert_eq!(hits.len(), 1, "{mid} once in bob's mailbox");
        let (got_raw, got_labels, _) =
            message(&sim, &bob, &bob_names, hits[0]["id"].as_str().unwrap());
        assert!(got_raw == *raw, "{mid}: the same bytes");
        assert_eq!(&got_labels, labels, "{mid}: the same label names");
    }

    // Again: nothing sent, nothing fetched from alice.
    let calls = || {
        sim.stats()["calls_by_user"]["alice@example.com"]
            .as_u64()
            .unwrap()
    };
    let calls_before = calls();
    let said = ok(&migrate().output().unwrap());
    assert!(
        said.contains(&format!("imported 0, {} already there", source.len())),
        "{said}"
    );
    assert_eq!(all_ids(&sim, &bob).len(), before + source.len());
    // The profile, labels.list and one page of messages.list: no message
    // is fetched again.
    assert!(
        calls() - calls_before <= 4,
        "{} calls to alice's mailbox on a rerun",
        calls() - calls_before
    );

    // A fixed token acts for its own mailbox only: Gmail's 403, said plainly.
    let out = Command::new(BIN)
        .args([
            "run",
            &script("migrate.lua"),
            "--endpoint",
            &sim.url,
            "--quota",
            "off",
            "--quiet",
            "--",
            "bob@example.com",
        ])
        .env("GMAILSCRIPT_TOKEN", &alice)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Delegation denied"), "{err}");
}
