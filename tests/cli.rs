//! The binary as a user runs it: `gmailscript sim` prints its URL first,
//! serves, and bad input gets one clear line and exit code 2.

use std::io::Write;
use std::process::Command;

mod common;
use common::BIN;

#[tokio::test]
async fn sim_prints_its_url_first_and_serves() {
    // Killed when dropped, so a failed assert leaves no simulator running.
    let sim = common::SimProcess::start(&["--messages", "25", "--seed", "9"]);
    assert!(sim.url.starts_with("http://127.0.0.1:"), "{}", sim.url);
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/gmail/v1/users/me/profile", sim.url))
        .bearer_auth("sim-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["messagesTotal"], 25);
}

fn fails_with(args: &[&str], needle: &str) {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_options_name_what_is_wrong() {
    fails_with(&["sim", "--quota", "fast"], "2026, legacy or off");
    fails_with(&["sim", "--faults", "500"], "500");
    fails_with(&["sim", "--faults", "boom:0.1"], "boom");
    fails_with(&["sim", "--latency", "soon"], "soon");
    fails_with(&["sim", "--speed", "0"], "--speed");
    fails_with(&["sim", "--users", "not-an-address"], "not-an-address");
    fails_with(&["sim", "--max-batch", "0"], "--max-batch");
    fails_with(
        &["sim", "--mbox", "/nonexistent/mail.mbox"],
        "/nonexistent/mail.mbox",
    );
    fails_with(&["frobnicate"], "frobnicate");
}

#[test]
fn a_file_that_is_not_an_mbox_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"Subject: hello\n\nnot an mbox\n")
        .unwrap();
    fails_with(&["sim", "--mbox", path.to_str().unwrap()], "notes.txt");
}

#[tokio::test]
async fn an_mbox_from_takeout_becomes_the_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("takeout.mbox");
    let mbox = "From 1700000000000000001@xxx Mon Jan 01 10:00:00 +0000 2024\n\
X-GM-THRID: 1700000000000000001\n\
X-Gmail-Labels: Inbox,Unread,Receipts\n\
From: Shop <shop@example.com>\n\
To: me@example.com\n\
Subject: Your receipt\n\
Date: Mon, 1 Jan 2024 10:00:00 +0000\n\
Message-ID: <r1@example.com>\n\
\n\
Thanks for your order.\n\
\n\
From 1700000000000000002@xxx Tue Jan 02 10:00:00 +0000 2024\n\
X-GM-THRID: 1700000000000000002\n\
X-Gmail-Labels: Sent\n\
From: me@example.com\n\
To: friend@example.com\n\
Subject: Lunch?\n\
Date: Tue, 2 Jan 2024 10:00:00 +0000\n\
Message-ID: <l1@example.com>\n\
\n\
>From here on, lunch is on me.\n";
    std::fs::write(&path, mbox).unwrap();
    let h = gmailscript::sim::start(gmailscript::sim::SimConfig {
        mbox: Some(path),
        quota: gmailscript::sim::quota::Rules::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let get = |path: String| {
        let url = format!("{}/gmail/v1/users/me/{path}", h.base_url);
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth("sim-token")
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let all = get("messages?includeSpamTrash=true".into()).await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 2);
    let receipts = get("messages?q=label:receipts%20is:unread".into()).await;
    let id = receipts["messages"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(receipts["messages"].as_array().unwrap().len(), 1);
    let m = get(format!(
        "messages/{id}?format=metadata&metadataHeaders=Subject"
    ))
    .await;
    assert_eq!(m["payload"]["headers"][0]["value"], "Your receipt");
    let sent = get("messages?q=in:sent%20lunch".into()).await;
    assert_eq!(sent["messages"].as_array().unwrap().len(), 1);
    h.stop().await;
}
