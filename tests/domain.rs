//! `gmailscript run --users`: one policy over many mailboxes, against the
//! simulator on loopback. A user without Gmail and a suspended user are
//! reported while every other mailbox is backed up exactly; a script that
//! raises for one user fails that mailbox only; shards cover the users
//! once; Ctrl-C stops and a rerun resumes; bad `--users` inputs are named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;

use common::{SimProcess, BIN};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn backup() -> String {
    root().join("scripts/backup.lua").display().to_string()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A config directory of its own (accounts), and scratch files.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("GMAILSCRIPT_CONFIG_DIR", self.path("config"))
            .env("GMAILSCRIPT_DATA_DIR", self.path("data"))
            .env_remove("GMAILSCRIPT_TOKEN")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// A service account `corp` whose key signs JWT grants for `sim`,
    /// saved acting for `subject` (a throwaway RSA key).
    fn service_account(&self, sim: &SimProcess, subject: &str) {
        let key = common::service_key(self.dir.path(), sim)
            .display()
            .to_string();
        let out = self.run(&[
            "auth",
            "service-account",
            "--key",
            &key,
            "--subject",
            subject,
            "--scope",
            "readonly",
            "--account",
            "corp",
            "--endpoint",
            &sim.url,
        ]);
        assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    }
}

/// The ids `user` has outside spam and trash (what backup.lua lists), read
/// from the simulator with a token of that user.
fn listed(sim: &SimProcess, user: &str) -> BTreeSet<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let t: Value = http
            .post(format!("{}/_sim/tokens", sim.url))
            .form(&[("user", user)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = t["access_token"].as_str().unwrap().to_string();
        let mut ids = BTreeSet::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = format!("{}/gmail/v1/users/me/messages?maxResults=500", sim.url);
            if let Some(p) = &page {
                url.push_str(&format!("&pageToken={p}"));
            }
            let v: Value = http
                .get(url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for m in v["messages"].as_array().into_iter().flatten() {
                ids.insert(m["id"].as_str().unwrap().to_string());
            }
            match v["nextPageToken"].as_str() {
                Some(p) => page = Some(p.to_string()),
                None => break,
            }
        }
        ids
    })
}

/// The message ids of a Maildir (the second `.` field of each file name),
/// one per file.
fn maildir_ids(dir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            ids.push(name.split('.').nth(1).unwrap().to_string());
        }
    }
    ids.sort();
    ids
}

/// The report's lines by user.
fn report(path: &Path) -> BTreeMap<String, Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["user"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

#[test]
fn a_domain_backup_reports_the_mailboxes_it_cannot_process_and_backs_up_the_others_exactly() {
    let sim = SimProcess::start(&["--messages", "40", "--suspended", "bob@example.com"]);
    let home = Home::new();
    home.service_account(&sim, "me@example.com");
    let dest = home.path("backups");
    std::fs::create_dir(&dest).unwrap();
    let rep = home.path("report.jsonl");
    let out = home.run(&[
        "run",
        &backup(),
        "--account",
        "corp",
        "--endpoint",
        &sim.url,
        "--quota",
        "2026",
        "--users",
        "me@example.com,alice@example.com,bob@example.com,nogmail@example.com",
        "--report",
        rep.to_str().unwrap(),
        "--",
        dest.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for user in ["me@example.com", "alice@example.com"] {
        let want: Vec<String> = listed(&sim, user).into_iter().collect();
        assert!(want.len() > 20, "{user}: {}", want.len());
        assert_eq!(maildir_ids(&dest.join(user)), want, "{user}'s Maildir");
        assert!(dest.join(user).join(".gmailscript-state").exists());
        assert!(
            stdout.contains(&format!("full backup of {user} to ")),
            "{stdout}"
        );
    }
    assert!(
        !dest.join("bob@example.com").join("cur").exists()
            || maildir_ids(&dest.join("bob@example.com")).is_empty()
    );
    let r = report(&rep);
    assert_eq!(r.len(), 4, "{r:?}");
    for user in ["me@example.com", "alice@example.com"] {
        let l = &r[user];
        let n = listed(&sim, user).len() as u64;
        assert_eq!(
            (l["status"].as_str(), l["ok"].as_u64(), l["failed"].as_u64()),
            (Some("ok"), Some(n), Some(0)),
            "{l}"
        );
        assert!(l["units"].as_u64().unwrap() >= 20 * n, "{l}");
        assert!(
            l["seconds"].as_f64().is_some() && l["error"].is_null(),
            "{l}"
        );
    }
    assert_eq!(r["nogmail@example.com"]["status"], "skipped");
    assert!(r["nogmail@example.com"]["error"]
        .as_str()
        .unwrap()
        .contains("Mail service not enabled"));
    assert_eq!(r["bob@example.com"]["status"], "failed");
    let why = r["bob@example.com"]["error"].as_str().unwrap();
    assert!(
        why.contains("cannot be read") && why.contains("backendError"),
        "{why}"
    );
    // The table names every mailbox and why.
    for row in [
        "nogmail@example.com  skipped",
        "bob@example.com      failed",
        "alice@example.com    ok",
        "2 of 4 mailbox(es) ok",
        "1 of 4 mailbox(es) failed",
    ] {
        assert!(stderr.contains(row), "{row:?} in\n{stderr}");
    }
}

/// Prints its mailbox, checks no global of another mailbox's state is
/// seen, and raises for user2 only.
const PER_USER: &str = r#"
assert(seen == nil, "a global of another mailbox leaked into this state")
seen = gmail.user
local p = assert(gmail.profile())
assert(p.email == gmail.user)
if gmail.user == "user2@example.com" then error("no policy for user2") end
print("done " .. gmail.user)
"#;

#[test]
fn users_all_lists_the_domain_and_a_script_error_fails_one_mailbox_only() {
    let home = Home::new();
    let script = home.write("per-user.lua", PER_USER);
    let rep = home.path("r.jsonl");
    let out = home.run(&[
        "run",
        &script,
        "--sim",
        "--sim-domain",
        "example.com",
        "--sim-domain-users",
        "6",
        "--sim-messages",
        "5",
        "--sim-suspended",
        "user3@example.com",
        "--users",
        "all",
        "--parallel-users",
        "3",
        "--report",
        rep.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let done: BTreeSet<&str> = stdout.lines().collect();
    let want: BTreeSet<&str> = [
        "done admin@example.com",
        "done user1@example.com",
        "done user4@example.com",
        "done user5@example.com",
        "done user6@example.com",
    ]
    .into();
    assert_eq!(done, want);
    assert!(stderr.contains("1 suspended user(s) left out"), "{stderr}");
    assert!(
        stderr.contains("user2@example.com: script error:")
            && stderr.contains("no policy for user2"),
        "{stderr}"
    );
    let r = report(&rep);
    assert_eq!(r.len(), 6, "the suspended user is left out: {r:?}");
    assert_eq!(r["user2@example.com"]["status"], "failed");
    assert!(r["user2@example.com"]["error"]
        .as_str()
        .unwrap()
        .contains("no policy for user2"));
    assert_eq!(r.values().filter(|l| l["status"] == "ok").count(), 5);

    // A query narrows it; --include-suspended takes the suspended user,
    // reported as such.
    let out = home.run(&[
        "run",
        &script,
        "--sim",
        "--sim-domain",
        "example.com",
        "--sim-domain-users",
        "6",
        "--sim-messages",
        "5",
        "--sim-suspended",
        "user3@example.com",
        "--users",
        "all",
        "--users-query",
        "orgUnitPath=/Support",
        "--include-suspended",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["done user6@example.com"]
    );
    assert!(
        stderr.contains("user3@example.com  failed")
            && stderr.contains("suspended: its messages cannot be read"),
        "{stderr}"
    );
}

#[test]
fn two_shards_cover_every_user_exactly_once() {
    let home = Home::new();
    let script = home.write("who.lua", "print(gmail.user)");
    let run = |shard: &[&str], env: Option<&str>| {
        let mut c = home.command(&[
            "run",
            &script,
            "--sim",
            "--sim-domain",
            "example.com",
            "--sim-domain-users",
            "30",
            "--sim-messages",
            "1",
            "--users",
            "all",
        ]);
        c.args(shard);
        if let Some(i) = env {
            c.env("JOB_COMPLETION_INDEX", i);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
        text(&out).0.lines().map(String::from).collect::<Vec<_>>()
    };
    let a = run(&["--shard", "1/2"], None);
    let b = run(&["--shard", "2/2"], None);
    assert!(!a.is_empty() && !b.is_empty(), "{a:?} {b:?}");
    let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
    all.sort();
    let mut want: Vec<String> = std::iter::once("admin@example.com".to_string())
        .chain((1..=30).map(|i| format!("user{i}@example.com")))
        .collect();
    want.sort();
    assert_eq!(all, want, "each user in exactly one shard");
    // The same shard from a Kubernetes Indexed Job's index (0-based).
    let mut from_env = run(&["--shards", "2"], Some("1"));
    let mut b = b.clone();
    from_env.sort();
    b.sort();
    assert_eq!(from_env, b);
}

#[test]
fn ctrl_c_stops_the_mailboxes_cleanly_and_a_rerun_resumes_each() {
    let home = Home::new();
    let dest = home.path("b");
    std::fs::create_dir(&dest).unwrap();
    let rep = home.path("r.jsonl");
    let args = |report: bool| {
        let mut a: Vec<String> = [
            "run",
            &backup(),
            "--sim",
            "--sim-domain",
            "example.com",
            "--sim-domain-users",
            "5",
            "--sim-messages",
            "400",
            "--users",
            "all",
            "--parallel-users",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if report {
            a.extend(["--report".to_string(), rep.display().to_string()]);
        }
        a.extend(["--".to_string(), dest.display().to_string()]);
        a
    };
    let argv = args(true);
    let mut child = home
        .command(&argv.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Waits on what the run writes, not on a guess of how long it takes.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let written = ["admin@example.com", "user1@example.com"]
            .iter()
            .map(|u| maildir_ids(&dest.join(u)).len())
            .sum::<usize>();
        if written >= 20 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "nothing written within 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    let r = report(&rep);
    assert_eq!(r.len(), 6, "every mailbox has a line: {r:?}");
    let not_started = r
        .values()
        .filter(|l| l["error"].as_str() == Some("not started (interrupted)"))
        .count();
    assert!(not_started >= 1, "{r:?}");
    assert!(
        r.values()
            .all(|l| l["status"] == "stopped" || l["status"] == "ok"),
        "{r:?}"
    );
    let before: BTreeMap<String, usize> = r
        .keys()
        .map(|u| (u.clone(), maildir_ids(&dest.join(u)).len()))
        .collect();

    // The rerun: each mailbox goes on from its own state; nothing twice.
    let argv = args(false);
    let out = home.run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for (user, had) in before {
        let ids = maildir_ids(&dest.join(&user));
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{user}: a message written twice");
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("backup of {user} ")))
            .unwrap_or_else(|| panic!("no summary for {user}: {stdout}"));
        assert!(
            line.contains(&format!("{} fetched, {had} already there", ids.len() - had)),
            "{user} had {had}, has {}: {line}",
            ids.len()
        );
    }
}

#[test]
fn bad_users_inputs_are_named() {
    let home = Home::new();
    let script = home.write("who.lua", "print(gmail.user)");
    let file = home.write(
        "users.txt",
        "# the sales team\nalice@example.com\n\nbob@example.com  # on leave\nnot-an-address\n",
    );
    let run = |extra: &[&str]| {
        let mut a = vec!["run", script.as_str(), "--sim"];
        a.extend_from_slice(extra);
        let out = home.run(&a);
        let (o, e) = text(&out);
        (out.status.code(), o, e)
    };
    let (code, _, e) = run(&["--users", &format!("@{file}")]);
    assert_eq!(code, Some(2), "{e}");
    assert!(
        e.contains(&format!(
            "{file}:5: \"not-an-address\" is not an email address"
        )),
        "{e}"
    );
    let (code, _, e) = run(&["--users", "alice@example.com,bob"]);
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains("\"bob\" is not an email address"), "{e}");
    let (code, _, e) = run(&["--users", "@/nonexistent/users.txt"]);
    assert_eq!(code, Some(2), "{e}");
    assert!(
        e.contains("--users @/nonexistent/users.txt: cannot read it"),
        "{e}"
    );
    let (code, _, e) = run(&["--users", "all", "--shard", "3/2"]);
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains("is not a shard; write I/N"), "{e}");
    let (code, _, e) = run(&["--users", "all", "--shards", "2"]);
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains("JOB_COMPLETION_INDEX"), "{e}");
    let (code, _, e) = run(&["--users", "all", "--user", "me@example.com"]);
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains("cannot be used with"), "{e}");
    // A file of good lines, comments and blanks: those users, in order.
    let good = home.write(
        "good.txt",
        "# two\nalice@example.com\n\nbob@example.com # second\n",
    );
    let (code, o, e) = run(&["--users", &format!("@{good}")]);
    assert_eq!(code, Some(0), "{e}");
    assert_eq!(
        o.lines().collect::<BTreeSet<_>>(),
        ["alice@example.com", "bob@example.com"].into()
    );
    // One token cannot act for many users.
    let out = home
        .command(&[
            "run",
            &script,
            "--endpoint",
            "http://127.0.0.1:9",
            "--users",
            "a@example.com",
        ])
        .env("GMAILSCRIPT_TOKEN", "sim-token")
        .output()
        .unwrap();
    let (_, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("needs a service account"), "{e}");
}
