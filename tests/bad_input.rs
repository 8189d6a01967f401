//! The bad-input catalogue (docs/bad-input.md lists it): every user-facing
//! input tried malformed, empty, huge and of the wrong type. Each must give
//! one clear line naming what is wrong, exit code 2, and no panic.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_gmailscript");

fn gs(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("gmailscript runs")
}

/// Exit 2, no panic, and each needle in stderr.
fn refused(what: &str, out: Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(!err.trim().is_empty(), "{what}: says something");
    for n in needles {
        assert!(err.contains(n), "{what}: {n:?} not in {err}");
    }
}

#[test]
fn cli_flags() {
    let huge = "9".repeat(5000);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["sim", "--port", "http"], vec!["--port"]),
        (vec!["sim", "--port", "70000"], vec!["--port"]),
        (vec!["sim", "--messages", "-5"], vec!["-5"]),
        (vec!["sim", "--messages", &huge], vec!["--messages"]),
        (vec!["sim", "--seed", ""], vec!["--seed"]),
        (vec!["sim", "--quota", ""], vec!["2026, legacy or off"]),
        (vec!["sim", "--speed", "-1"], vec!["-1"]),
        (vec!["sim", "--speed", "NaN"], vec!["--speed"]),
        (vec!["sim", "--faults", "503:-1"], vec!["503:-1"]),
        (vec!["sim", "--faults", ":"], vec![":"]),
        (vec!["sim", "--latency", ""], vec!["duration"]),
        (vec!["sim", "--latency", &huge], vec!["out of range"]),
        (vec!["sim", "--token-lifetime", "3 weeks"], vec!["weeks"]),
        (vec!["sim", "--users", ""], vec!["users"]),
        (vec!["sim", "--concurrency", "0"], vec!["--concurrency"]),
        (vec!["sim", "--max-batch", "5000"], vec!["--max-batch"]),
        (
            vec!["sim", "--date", "2026-13-01"],
            vec!["--date", "YYYY-MM-DD"],
        ),
        (
            vec!["sim", "--date", "1900-01-01"],
            vec!["--date", "out of range"],
        ),
        (vec!["sim", "--date", ""], vec!["--date"]),
        (
            vec!["sim", "--per-second", "10"],
            vec!["--per-second", "at least 50"],
        ),
        (vec!["sim", "--per-second", "lots"], vec!["--per-second"]),
        (vec!["sim", "--daily-limit", "0"], vec!["--daily-limit"]),
        (vec!["sim", "--daily-limit", &huge], vec!["--daily-limit"]),
        (
            vec!["sim", "--rate-penalty", "soon"],
            vec!["--rate-penalty"],
        ),
        (
            vec!["sim", "--rate-penalty", "1000h"],
            vec!["--rate-penalty", "out of range"],
        ),
        (vec!["sim", "--outage", "2s"], vec!["--outage", "AT+FOR"]),
        (vec!["sim", "--outage", "+"], vec!["--outage"]),
        (
            vec!["sim", "--realism", "harsh"],
            vec!["--realism", "gmail"],
        ),
        (
            vec!["sim", "--charge-refused=maybe"],
            vec!["--charge-refused"],
        ),
        (vec!["sim", "--batch-latency", ""], vec!["--batch-latency"]),
        (
            vec!["run", "x.lua", "--sim-realism", "gmail"],
            vec!["--sim"],
        ),
        (
            vec!["run", "x.lua", "--sim", "--sim-outage", "5s"],
            vec!["--sim-outage", "AT+FOR"],
        ),
        (vec!["run"], vec!["SCRIPT"]),
        (
            vec!["run", "x.lua", "--sim", "--endpoint", "http://a"],
            vec!["--endpoint"],
        ),
        (vec!["run", "x.lua", "--sim-messages", "5"], vec!["--sim"]),
        (
            vec!["run", "x.lua", "--sim-date", "2026-06-01"],
            vec!["--sim"],
        ),
        (
            vec!["run", "x.lua", "--sim", "--sim-date", "June"],
            vec!["--sim-date", "YYYY-MM-DD"],
        ),
        (vec!["run", "x.lua", "--quota", "lots"], vec!["quota"]),
        (vec!["run", "x.lua", "--quota-window", "soon"], vec!["soon"]),
        (
            vec!["run", "/nonexistent/x.lua", "--sim"],
            vec!["/nonexistent/x.lua", "not found"],
        ),
    ];
    for (args, needles) in cases {
        refused(&format!("{args:?}"), gs(&args), &needles);
    }
}

#[test]
fn endpoint_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.lua");
    std::fs::write(&s, "print(1)").unwrap();
    let s = s.to_str().unwrap();
    let out = Command::new(BIN)
        .args(["run", s, "--endpoint", "not a url"])
        .env("GMAILSCRIPT_TOKEN", "t")
        .output()
        .unwrap();
    refused("bad endpoint", out, &["--endpoint", "not a url"]);
    let out = Command::new(BIN)
        .args(["run", s, "--endpoint", "ftp://x"])
        .env("GMAILSCRIPT_TOKEN", "t")
        .output()
        .unwrap();
    refused("ftp endpoint", out, &["http"]);
    let out = Command::new(BIN)
        .args(["run", s, "--endpoint", "http://127.0.0.1:9"])
        .env_remove("GMAILSCRIPT_TOKEN")
        .output()
        .unwrap();
    refused("no token", out, &["GMAILSCRIPT_TOKEN"]);

    // A saved account's token never goes over plain http to another
    // machine: refused before any account is even read.
    let config = tempfile::tempdir().unwrap();
    let with_account = |url: &str| {
        Command::new(BIN)
            .args(["run", s, "--endpoint", url, "--account", "work"])
            .env("GMAILSCRIPT_CONFIG_DIR", config.path())
            .env_remove("GMAILSCRIPT_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for url in [
        "http://gmail.example.com",
        "http://10.1.2.3:8080/",
        "http://[2001:db8::1]/",
    ] {
        refused(
            url,
            with_account(url),
            &[
                "--endpoint",
                url,
                "plain http",
                "account work's",
                "would cross the network unencrypted",
                "https://",
            ],
        );
    }
    // https anywhere, and http to this machine, pass that check (and fail
    // later: there is no account "work").
    for url in [
        "https://gmail.example.com",
        "http://127.0.0.1:9",
        "http://[::1]:9",
        "http://localhost:9",
    ] {
        let out = with_account(url);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("plain http"), "{url}: {err}");
        assert!(err.contains("work"), "{url}: {err}");
    }
    let out = Command::new(BIN)
        .args([
            "auth",
            "login",
            "--no-browser",
            "--endpoint",
            "http://gmail.example.com",
        ])
        .env("GMAILSCRIPT_CONFIG_DIR", config.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    refused("auth login over http", out, &["--endpoint", "plain http"]);
}

fn script(dir: &Path, name: &str, body: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn scripts_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (script(d, "empty.lua", b""), vec![]),
        (
            script(d, "binary.lua", &[0u8, 159, 146, 150, 0, 1, 2]),
            vec!["binary.lua"],
        ),
        (
            script(
                d,
                "huge_line.lua",
                format!("x = '{}' +", "a".repeat(200_000)).as_bytes(),
            ),
            vec!["huge_line.lua"],
        ),
        (
            script(d, "deep.lua", b"local function f() return f() + 1 end f()"),
            vec!["deep.lua", "stack overflow"],
        ),
        (
            script(d, "error_table.lua", b"error({code = 1})"),
            vec!["error"],
        ),
        (script(d, "error_nil.lua", b"error()"), vec!["error"]),
    ];
    for (path, needles) in cases {
        let out = gs(&["run", &path, "--sim", "--sim-messages", "5"]);
        if path.ends_with("empty.lua") {
            assert_eq!(out.status.code(), Some(0), "an empty script does nothing");
            continue;
        }
        refused(&path, out, &needles);
    }
}

#[test]
fn lua_options() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "x".repeat(100_000);
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "gmail.batch({}, 5)".into(),
            vec!["gmail.batch", "options must be a table"],
        ),
        (
            "gmail.batch({}, {[1] = true})".into(),
            vec!["gmail.batch", "option names must be strings"],
        ),
        (
            "gmail.batch({}, {parallel = 0})".into(),
            vec!["option 'parallel'", "1 to 16"],
        ),
        (
            "gmail.batch({}, {parallel = 1.5})".into(),
            vec!["option 'parallel'"],
        ),
        (
            "gmail.batch({}, {max_attempts = -1})".into(),
            vec!["option 'max_attempts'"],
        ),
        (
            "gmail.batch({}, {chunk = 0})".into(),
            vec!["option 'chunk'"],
        ),
        (
            "gmail.batch({}, {chunk = 101})".into(),
            vec!["option 'chunk'"],
        ),
        (
            "gmail.batch({}, {headers = 'From'})".into(),
            vec!["option 'headers'", "list of strings"],
        ),
        (
            "gmail.batch({}, {headers = {1, 2}})".into(),
            vec!["option 'headers'"],
        ),
        (
            "gmail.batch({}, {resume = 'state.db'})".into(),
            vec!["option 'resume'", "store.open"],
        ),
        (
            "gmail.batch({}, {backoff = {base = 'fast'}})".into(),
            vec!["option 'backoff.base'", "fast"],
        ),
        (
            "gmail.batch({}, {on_message = 'print'})".into(),
            vec!["option 'on_message'", "function"],
        ),
        (
            "gmail.batch({1, 2}, {})".into(),
            vec!["gmail.batch", "ids[1]"],
        ),
        (
            "gmail.batch(42, {})".into(),
            vec!["gmail.batch", "ids must be"],
        ),
        (
            format!("gmail.batch({{}}, {{format = '{huge}'}})"),
            vec!["unknown format", "…"],
        ),
        ("gmail.get({}, {})".into(), vec!["gmail.get"]),
        (
            "gmail.fetch{path = 'http://evil/x'}".into(),
            vec!["gmail.fetch", "option 'path'"],
        ),
        (
            "gmail.fetch{method = 'BREW', path = 'labels'}".into(),
            vec!["option 'method'", "BREW"],
        ),
        ("gmail.fetch{}".into(), vec!["option 'path' is required"]),
        (
            "gmail.modify({'a'}, {})".into(),
            vec!["gmail.modify", "'add' or 'remove'"],
        ),
        (
            "gmail.modify('a', {add = {'INBOX'}})".into(),
            vec!["gmail.modify"],
        ),
        (
            "gmail.history({})".into(),
            vec!["gmail.history", "history id"],
        ),
        (
            "gmail.list{page_size = 501}".into(),
            vec!["option 'page_size'", "1 to 500"],
        ),
        ("gmail.list{limit = -3}".into(), vec!["option 'limit'"]),
        ("retry(5)".into(), vec!["retry"]),
        (
            "retry(function() end, {jitter = 'some'})".into(),
            vec!["option 'jitter'"],
        ),
        (
            "gmail.batch({}, {backoff = {jitter = 'some'}})".into(),
            vec!["option 'backoff.jitter'", "some"],
        ),
        ("sleep(-1)".into(), vec!["sleep"]),
        (
            "json.encode(function() end)".into(),
            vec!["json.encode", "function"],
        ),
        (
            "local t = {} t.t = t json.encode(t)".into(),
            vec!["json.encode", "100 levels"],
        ),
        (
            "json.encode(0/0)".into(),
            vec!["json.encode", "no JSON form"],
        ),
        (
            "gmail.default_policy.on_error = function() return 'skip' end".into(),
            vec!["gmail.default_policy is read-only", "on_error of your own"],
        ),
        (
            "gmail.default_policy = { on_error = function() return 'skip' end }".into(),
            vec!["gmail.default_policy is read-only"],
        ),
        (
            "gmail.default_policy.on_error('boom', 'x', 1)".into(),
            vec![
                "gmail.default_policy.on_error: err must be an error table",
                "string (\"boom\")",
            ],
        ),
        ("output.jsonl()".into(), vec!["output.jsonl"]),
        (
            "output.jsonl('x.jsonl', {append = true})".into(),
            vec!["unknown option 'append'"],
        ),
        ("output.eml({})".into(), vec!["output.eml"]),
        ("store.open()".into(), vec!["store.open"]),
        ("store.open('.')".into(), vec!["store.open"]),
        (
            "local s = store.open('s.db') s:set('k', {})".into(),
            vec!["state:set", "table"],
        ),
    ];
    for (i, (code, needles)) in cases.iter().enumerate() {
        let path = script(dir.path(), &format!("opt{i}.lua"), code.as_bytes());
        let out = Command::new(BIN)
            .args(["run", &path, "--sim", "--sim-messages", "5"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        refused(code.get(..60).unwrap_or(code), out, needles);
    }
}

#[test]
fn state_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x00\x01garbage".to_vec()),
        ("text", b"notes about my mail\n".to_vec()),
        ("huge", vec![b'z'; 5 << 20]),
        ("sqlite-header-only", b"SQLite format 3\0".to_vec()),
    ];
    for (name, bytes) in cases {
        let path = d.join(format!("{name}.state"));
        std::fs::write(&path, &bytes).unwrap();
        let s = script(
            d,
            &format!("{name}.lua"),
            format!("store.open('{}')", path.display()).as_bytes(),
        );
        refused(
            name,
            gs(&["run", &s, "--sim", "--sim-messages", "5"]),
            &[&format!("{name}.state")],
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name}: left as it was"
        );
    }
    // A folder where the state file should be.
    std::fs::create_dir(d.join("folder.state")).unwrap();
    let s = script(
        d,
        "folder.lua",
        format!("store.open('{}')", d.join("folder.state").display()).as_bytes(),
    );
    refused(
        "folder",
        gs(&["run", &s, "--sim", "--sim-messages", "5"]),
        &["folder.state"],
    );
}

#[test]
fn mbox_files_for_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", vec![0xff, 0xfe, 0, 1, 2, 3]),
        ("no-from-line", b"Subject: hi\n\nbody\n".to_vec()),
        ("huge-junk", vec![b'x'; 3 << 20]),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(format!("{name}.mbox"));
        std::fs::write(&path, &bytes).unwrap();
        refused(
            name,
            gs(&["sim", "--mbox", path.to_str().unwrap()]),
            &[&format!("{name}.mbox")],
        );
    }
    refused(
        "folder",
        gs(&["sim", "--mbox", dir.path().to_str().unwrap()]),
        &[],
    );
}

#[test]
fn client_secret_and_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty.json", Vec::new()),
        ("array.json", b"[1, 2, 3]".to_vec()),
        ("junk.json", vec![b'{'; 5 << 20]),
        ("binary.json", vec![0, 159, 146, 150]),
        (
            "wrong-types.json",
            br#"{"installed": {"client_id": 5, "client_secret": []}}"#.to_vec(),
        ),
    ];
    for (name, bytes) in &files {
        std::fs::write(d.join(name), bytes).unwrap();
    }
    std::fs::create_dir(d.join("folder.json")).unwrap();
    let names: Vec<&str> = files
        .iter()
        .map(|(n, _)| *n)
        .chain(["folder.json", "missing.json"])
        .collect();
    for name in names {
        let path = d.join(name);
        let path = path.to_str().unwrap();
        for args in [
            vec!["auth", "login", "--no-browser", "--client-secret", path],
            vec![
                "auth",
                "service-account",
                "--key",
                path,
                "--subject",
                "a@example.com",
            ],
        ] {
            let out = Command::new(BIN)
                .args(&args)
                .env("GMAILSCRIPT_CONFIG_DIR", d.join("config"))
                .stdin(Stdio::null())
                .output()
                .unwrap();
            refused(&format!("{args:?}"), out, &[name]);
        }
    }
}

/// `gs` with a deadline: a script that would sleep for ages must be refused,
/// not left waiting. Killed and reported as a failure if it overruns.
fn gs_within(dir: &Path, script: &str, secs: u64) -> Output {
    let mut child = Command::new(BIN)
        .args(["run", script, "--sim", "--sim-messages", "5"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gmailscript runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{script}: still running after {secs} s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Extreme numbers where a duration or a count is expected: refused with
/// the function and the option named, never a panic, never a long wait.
#[test]
fn lua_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let missing = "'0000000000000000'"; // no such message: its get fails with 404
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "gmail.batch({'a'}, { backoff = { base = 1e300 } })".into(),
            vec![
                "gmail.batch: option 'backoff.base' must be a number of seconds from 0 to 86400",
                "1e+300",
            ],
        ),
        (
            "gmail.batch({'a'}, { backoff = { max = math.maxinteger } })".into(),
            vec!["option 'backoff.max'", "0 to 86400", "9223372036854775807"],
        ),
        (
            "gmail.batch({'a'}, { backoff = { base = 0/0 } })".into(),
            vec!["option 'backoff.base'", "0 to 86400"],
        ),
        (
            "gmail.batch({'a'}, { backoff = { base = -1 } })".into(),
            vec!["option 'backoff.base'", "-1"],
        ),
        (
            "gmail.batch({'a'}, { backoff = { base = '99999h' } })".into(),
            vec!["option 'backoff.base'", "0 to 86400", "99999h"],
        ),
        (
            "gmail.batch({'a'}, { backoff = { attempts = 1e300 } })".into(),
            vec!["option 'backoff.attempts'", "1 to 1000"],
        ),
        (
            "gmail.batch({'a'}, { backoff = { speed = 1 } })".into(),
            vec!["unknown option 'backoff.speed'"],
        ),
        (
            "gmail.batch({}, { total = 1e300 })".into(),
            vec!["gmail.batch: option 'total'", "1e+300"],
        ),
        (
            "gmail.batch({}, { max_attempts = 2^63 })".into(),
            vec!["option 'max_attempts'", "1 to 1000"],
        ),
        (
            format!("gmail.batch({{ {missing} }}, {{ on_error = function() return 'retry', 1e300 end }})"),
            vec![
                "gmail.batch: on_error returned \"retry\" with a wait of 1e+300 seconds; the wait must be from 0 to 86400 seconds",
            ],
        ),
        (
            format!("gmail.batch({{ {missing} }}, {{ on_error = function() return 'retry', -5 end }})"),
            vec!["on_error returned \"retry\" with a wait of -5 seconds"],
        ),
        (
            format!("gmail.batch({{ {missing} }}, {{ on_error = function() return 'retry', '5' end }})"),
            vec!["on_error returned \"retry\" with a wait of string (\"5\")"],
        ),
        (
            "retry(function() error('x') end, { base = 1e300 })".into(),
            vec!["retry: option 'base' must be a number of seconds from 0 to 86400", "1e+300"],
        ),
        (
            "retry(function() error('x') end, { max = math.maxinteger })".into(),
            vec!["retry: option 'max'", "0 to 86400"],
        ),
        (
            "retry(function() error('x') end, { attempts = 1e300 })".into(),
            vec!["retry: option 'attempts'", "1 to 1000"],
        ),
        (
            "retry(function() return nil, { class = 'rate', retry_after = 1e300 } end)".into(),
            vec!["retry: the error's retry_after must be a number of seconds from 0 to 86400", "1e+300"],
        ),
        (
            "retry(function() return nil, { class = 'rate', retry_after = 0/0 } end)".into(),
            vec!["retry: the error's retry_after", "0 to 86400"],
        ),
        (
            "sleep(math.maxinteger)".into(),
            vec!["sleep: seconds must be a number from 0 to 86400", "9223372036854775807"],
        ),
        ("sleep(1e300)".into(), vec!["sleep", "0 to 86400", "1e+300"]),
        ("time.sleep(0/0)".into(), vec!["sleep", "0 to 86400"]),
        (
            "sleep('1')".into(),
            vec!["sleep: seconds must be a number", "string (\"1\")"],
        ),
        (
            "gmail.list{ limit = 1e300 }".into(),
            vec!["gmail.list: option 'limit' must be a whole number from 0 to 4294967295", "1e+300"],
        ),
        (
            "gmail.list{ limit = 2^63 }".into(),
            vec!["gmail.list: option 'limit'"],
        ),
        (
            "gmail.list{ limit = math.mininteger }".into(),
            vec!["gmail.list: option 'limit'"],
        ),
        ("gmail.list{ limit = 1.5 }".into(), vec!["option 'limit'", "1.5"]),
        (
            "gmail.list{ page_size = -1e300 }".into(),
            vec!["option 'page_size'", "1 to 500", "-1e+300"],
        ),
    ];
    for (i, (code, needles)) in cases.iter().enumerate() {
        let path = script(dir.path(), &format!("num{i}.lua"), code.as_bytes());
        refused(code, gs_within(dir.path(), &path, 60), needles);
    }
}
