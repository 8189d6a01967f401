//! `gmail.watch` as a long-running policy meets it: mail delivered while it
//! runs and while it is stopped, each handled once; history too old; an
//! outage; a loop body that raises. The simulator runs in its own process
//! and mail arrives through its deliver endpoint.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{SimProcess, BIN};

const ME: &str = "me@example.com";

/// Appends `start` once watching, then each change it handles to the file
/// in arg[1] (`type id`), one line each, flushed at once;
/// `arg[2] == "boom"` raises on the third.
const WATCHER: &str = r#"
local st = store.open(arg[1] .. ".state")
local out = assert(io.open(arg[1], "a"))
local n = 0
local w = table.pack(gmail.watch{ every = "100ms", state = st })
out:write("start\n") out:flush()
for c in table.unpack(w, 1, w.n) do
  n = n + 1
  if arg[2] == "boom" and n == 3 then error("boom on " .. c.id) end
  out:write(c.type, " ", c.id or c.history_id, "\n")
  out:flush()
end
out:close()
print("watch ended")
"#;

struct Setup {
    sim: SimProcess,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(sim_args: &[&str]) -> Setup {
        let mut args = vec!["--quota", "off", "--messages", "5"];
        args.extend_from_slice(sim_args);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("watch.lua"), WATCHER).unwrap();
        Setup {
            sim: SimProcess::start(&args),
            dir,
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("changes.log")
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("run")
            .arg(self.dir.path().join("watch.lua"))
            .args(["--endpoint", &self.sim.url, "--quota", "off", "--"])
            .arg(self.log())
            .args(extra)
            .env("GMAILSCRIPT_TOKEN", "sim-token")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn spawn(&self) -> Child {
        self.command(&[]).spawn().unwrap()
    }

    fn deliver(&self, n: usize) -> Vec<String> {
        let v = self
            .sim
            .post(&format!("/_sim/users/{ME}/deliver?count={n}"));
        v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_string())
            .collect()
    }

    /// Lines of the change log.
    fn changes(&self) -> Vec<String> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// How often each id was logged as added.
    fn added(&self) -> HashMap<String, usize> {
        let mut n = HashMap::new();
        for l in self.changes() {
            if let Some(id) = l.strip_prefix("added ") {
                *n.entry(id.to_string()).or_default() += 1;
            }
        }
        n
    }

    /// Wait until the log holds `ids` as added (the watcher's own signal
    /// that it handled them); panics after a minute, with the log.
    fn wait_added(&self, child: &mut Child, ids: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let added = self.added();
            if ids.iter().all(|id| added.contains_key(id)) {
                return;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the watch ended ({status}) before handling {ids:?}");
            }
            assert!(
                Instant::now() < deadline,
                "not handled within a minute: {ids:?}; log: {:?}",
                self.changes()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the `n`th run of the watcher has its start mark.
    fn wait_started(&self, child: &mut Child, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.changes().iter().filter(|l| *l == "start").count() < n {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the watch ended ({status}) before starting");
            }
            assert!(Instant::now() < deadline, "the watch never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn stop(child: Child, sig: &str) -> (Output, String, String) {
    signal(&child, sig);
    let out = child.wait_with_output().unwrap();
    let (o, e) = text(&out);
    (out, o, e)
}

fn assert_once(s: &Setup, ids: &[String]) {
    let added = s.added();
    for id in ids {
        assert_eq!(added.get(id), Some(&1), "{id} handled once: {added:?}");
    }
}

#[test]
fn new_mail_is_handled_once_across_sigterm_and_a_restart() {
    let s = Setup::new(&[]);
    let mut child = s.spawn();
    s.wait_started(&mut child, 1);
    let first = s.deliver(3);
    s.wait_added(&mut child, &first);
    let second = s.deliver(2);
    s.wait_added(&mut child, &second);
    // SIGTERM (systemd, docker stop) ends a watch as Ctrl-C does: exit 0.
    let (out, stdout, stderr) = stop(child, "-TERM");
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("watch ended"), "the loop ended: {stdout}");
    assert!(stderr.contains("the watch's mark is saved"), "{stderr}");

    // Mail that arrives while it is stopped is handled after the restart.
    let meanwhile = s.deliver(2);
    let mut child = s.spawn();
    s.wait_added(&mut child, &meanwhile);
    let later = s.deliver(1);
    s.wait_added(&mut child, &later);
    let (out, stdout, stderr) = stop(child, "-INT");
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let all: Vec<String> = [first, second, meanwhile, later].concat();
    assert_once(&s, &all);
    assert_eq!(
        s.added().len(),
        all.len(),
        "nothing else: {:?}",
        s.changes()
    );
}

#[test]
fn history_too_old_yields_resync_once_then_goes_on() {
    let s = Setup::new(&[]);
    let mut child = s.spawn();
    s.wait_started(&mut child, 1);
    let first = s.deliver(1);
    s.wait_added(&mut child, &first);
    let (out, ..) = stop(child, "-INT");
    assert_eq!(out.status.code(), Some(0));

    // Stopped long enough for Gmail to forget where it was.
    let missed = s.deliver(2);
    s.sim.post(&format!("/_sim/users/{ME}/expire-history"));
    let mut child = s.spawn();
    let after = loop {
        // The resync comes first; mail after it is handled as usual.
        if s.changes().iter().any(|l| l.starts_with("resync ")) {
            break s.deliver(1);
        }
        assert!(child.try_wait().unwrap().is_none(), "ended early");
        std::thread::sleep(Duration::from_millis(20));
    };
    s.wait_added(&mut child, &after);
    let (out, stdout, stderr) = stop(child, "-INT");
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let log = s.changes();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("resync ")).count(),
        1,
        "{log:?}"
    );
    // What arrived while the history was lost is the script's to list:
    // the watch does not invent it.
    let added = s.added();
    assert!(missed.iter().all(|id| !added.contains_key(id)), "{log:?}");
    assert_once(&s, &[first, after].concat());
}

#[test]
fn an_outage_is_waited_out_and_said_once_each_way() {
    // Down from 2 s to 5 s after the simulator starts.
    let s = Setup::new(&["--outage", "2s+3s"]);
    let started = Instant::now();
    let mut child = s.spawn();
    s.wait_started(&mut child, 1);
    // Mail delivered during the outage (the deliver endpoint is the
    // simulator's own and stays up) is handled once it ends.
    while started.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let during = s.deliver(2);
    s.wait_added(&mut child, &during);
    let (out, stdout, stderr) = stop(child, "-INT");
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_once(&s, &during);
    assert_eq!(
        stderr.matches("trying again with backoff").count(),
        1,
        "said once: {stderr}"
    );
    assert_eq!(
        stderr.matches("Gmail answers again").count(),
        1,
        "recovery said once: {stderr}"
    );
}

#[test]
fn a_body_that_raises_stops_with_the_mark_at_the_last_change_done() {
    let s = Setup::new(&[]);
    let mut child = s.command(&["boom"]).spawn().unwrap();
    s.wait_started(&mut child, 1);
    let ids = s.deliver(4);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("boom on"), "{stderr}");
    assert!(stderr.contains("watch.lua:9"), "names the line: {stderr}");
    assert_eq!(s.added().len(), 2, "{:?}", s.changes());

    // The rerun starts at the change that raised: the third, then the rest.
    let mut child = s.spawn();
    s.wait_added(&mut child, &ids);
    let (out, ..) = stop(child, "-INT");
    assert_eq!(out.status.code(), Some(0));
    assert_once(&s, &ids);
}

#[test]
fn bad_watch_options_name_the_option() {
    let s = Setup::new(&[]);
    let cases: &[(&str, &[&str])] = &[
        (
            "gmail.watch{ every = '10ms' }",
            &["'every'", "at least 0.1 s"],
        ),
        ("gmail.watch{ evry = 1 }", &["unknown option 'evry'"]),
        ("gmail.watch{ start = 'abc' }", &["'start'", "history id"]),
        ("gmail.watch{ state = 5 }", &["'state'", "store.open"]),
    ];
    for (code, needles) in cases {
        let path = s.dir.path().join("bad.lua");
        std::fs::write(&path, code).unwrap();
        let out = Command::new(BIN)
            .arg("run")
            .arg(&path)
            .args(["--endpoint", &s.sim.url, "--quota", "off"])
            .env("GMAILSCRIPT_TOKEN", "sim-token")
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{code}: {stderr}");
        for n in *needles {
            assert!(stderr.contains(n), "{code}: wants {n:?} in {stderr}");
        }
    }
}

/// A child's stdout and stderr lines as they come, read on threads.
struct Lines {
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Lines {
    fn of(child: &mut Child) -> Lines {
        use std::io::BufRead;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for r in [out, err] {
            let seen = seen.clone();
            readers.push(std::thread::spawn(move || {
                for line in std::io::BufReader::new(r).lines() {
                    let Ok(line) = line else { return };
                    seen.lock().unwrap().push(line);
                }
            }));
        }
        Lines { seen, readers }
    }

    /// Wait (a minute at most) for a line containing each of `needles`.
    fn wait(&self, child: &mut Child, needles: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let all = self.seen.lock().unwrap().join("\n");
            if needles.iter().all(|n| all.contains(n.as_str())) {
                return;
            }
            assert!(
                child.try_wait().unwrap().is_none() && Instant::now() < deadline,
                "never saw {needles:?} in:\n{all}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn text(self) -> String {
        for r in self.readers {
            r.join().unwrap();
        }
        self.seen.lock().unwrap().join("\n")
    }
}

/// scripts/autolabel.lua files new mail by its rules (a label created on
/// first use, star, read) and under --dry-run only says what it would do.
#[test]
fn autolabel_files_new_mail_by_its_rules_and_dry_run_changes_nothing() {
    let s = Setup::new(&[]);
    let rules = s.dir.path().join("rules.lua");
    std::fs::write(
        &rules,
        r#"return { { from = "@", add = { "Filed/New" }, star = true, read = true, name = "all" } }"#,
    )
    .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/autolabel.lua");
    let spawn = |dry: bool, state: &str| {
        Command::new(BIN)
            .arg("run")
            .arg(&script)
            .args(["--endpoint", &s.sim.url, "--quota", "off", "-v"])
            .args(dry.then_some("--dry-run"))
            .arg("--")
            .arg(&rules)
            .arg(s.dir.path().join(state))
            .arg("100ms")
            .env("GMAILSCRIPT_TOKEN", "sim-token")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let labels_of = |id: &str| -> Vec<String> {
        s.sim
            .get(&format!("/gmail/v1/users/me/messages/{id}?format=minimal"))["labelIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    let started = "gmail.watch: from history id".to_string();
    let run = |dry: bool, state: &str, verb: &str| {
        let mut child = spawn(dry, state);
        let lines = Lines::of(&mut child);
        lines.wait(&mut child, std::slice::from_ref(&started));
        let ids = s.deliver(2);
        let want: Vec<String> = ids.iter().map(|id| format!("{verb} {id}")).collect();
        lines.wait(&mut child, &want);
        signal(&child, "-INT");
        let status = child.wait().unwrap();
        let text = lines.text();
        assert_eq!(status.code(), Some(0), "{text}");
        ids
    };

    let dry = run(true, "dry.state", "would file");
    for id in &dry {
        assert!(
            labels_of(id).contains(&"UNREAD".to_string()),
            "dry run changed {id}"
        );
    }
    let labels = s.sim.get("/gmail/v1/users/me/labels").to_string();
    assert!(
        !labels.contains("Filed/New"),
        "dry run made a label: {labels}"
    );

    let filed = run(false, "real.state", "filed");
    let labels = s.sim.get("/gmail/v1/users/me/labels");
    let made = labels["labels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "Filed/New")
        .unwrap_or_else(|| panic!("label made: {labels}"));
    let made = made["id"].as_str().unwrap().to_string();
    for id in &filed {
        let l = labels_of(id);
        assert!(
            l.contains(&made) && l.contains(&"STARRED".to_string()),
            "{id}: {l:?}"
        );
        assert!(!l.contains(&"UNREAD".to_string()), "{id} read: {l:?}");
    }
}
