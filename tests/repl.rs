//! `gmailscript repl` as a person uses it, through a real pseudo-terminal
//! (completion, multi-line input, Ctrl-C, history), and as a script uses
//! it, with statements piped to standard input.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession as Session;
use expectrl::{ControlCode, Eof, Expect};

const BIN: &str = env!("CARGO_BIN_EXE_gmailscript");

/// The REPL on a terminal, with its history kept under `home`.
fn spawn(home: &Path, args: &[&str]) -> Session {
    let mut cmd = Command::new(BIN);
    cmd.arg("repl")
        .args(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("TERM", "xterm")
        .env_remove("RUST_LOG");
    let mut p = Session::spawn(cmd).expect("the REPL starts on a pty");
    p.get_process_mut().set_window_size(120, 40).unwrap();
    p.set_expect_timeout(Some(Duration::from_secs(30)));
    p.expect("Ctrl-D to quit.").expect("greeting");
    prompt(&mut p);
    p
}

/// A fresh, empty prompt as the editor draws it (clear the line, the
/// prompt, cursor back): not a redraw of a line being edited, so what is
/// typed next reaches the editor and not the terminal between two reads.
fn prompt(p: &mut Session) {
    p.expect("\x1b[K> \r").expect("a prompt");
}

/// Type a line and press Enter.
fn enter(p: &mut Session, line: &str) {
    p.send(line).unwrap();
    p.send("\r").unwrap();
}

fn quit(mut p: Session) -> WaitStatus {
    p.send(ControlCode::EndOfTransmission).unwrap();
    p.expect(Eof).expect("the REPL ends on Ctrl-D");
    p.get_process().wait().unwrap()
}

#[test]
fn tab_completes_globals_members_and_message_helpers() {
    let home = tempfile::tempdir().unwrap();
    let mut p = spawn(home.path(), &["--sim", "--sim-messages", "20"]);

    // A module member: `gmail.ba` becomes `gmail.batch`.
    p.send("gmail.ba\t").unwrap();
    enter(&mut p, " ~= nil");
    p.expect("true")
        .expect("gmail.ba<Tab> completed to gmail.batch");
    prompt(&mut p);

    // Twice Tab lists the module's members; Ctrl-C drops the line.
    p.send("gmail.\t\t").unwrap();
    p.expect("default_policy")
        .expect("gmail.<Tab><Tab> lists members");
    p.send(ControlCode::EndOfText).unwrap();
    prompt(&mut p);

    // A message's methods after `:` and fields after `.`.
    enter(
        &mut p,
        "m = gmail.get(gmail.list{ limit = 1 }(), { format = \"metadata\" })",
    );
    prompt(&mut p);
    p.send("m:he\t").unwrap();
    enter(&mut p, "(\"Subject\") == m:header(\"subject\")");
    p.expect("true").expect("m:he<Tab> completed to m:header");
    prompt(&mut p);
    p.send("m.thr\t").unwrap();
    enter(&mut p, " ~= nil");
    p.expect("true")
        .expect("m.thr<Tab> completed to m.thread_id");
    prompt(&mut p);

    // A message typed alone is summarised.
    enter(&mut p, "m");
    p.expect("subject").expect("a message summary");
    prompt(&mut p);
    assert!(matches!(quit(p), WaitStatus::Exited(_, 0)));
}

#[test]
fn multi_line_statements_continue_until_they_parse() {
    let home = tempfile::tempdir().unwrap();
    let mut p = spawn(home.path(), &["--sim", "--sim-messages", "10"]);
    enter(&mut p, "for i = 1, 2 do");
    p.expect("\x1b[K>> \r").expect("a continuation prompt");
    enter(&mut p, "print(i * 10)");
    p.expect("\x1b[K>> \r").expect("still continuing");
    enter(&mut p, "end");
    p.expect("10\r\n20").expect("the loop ran once complete");
    prompt(&mut p);

    // An error is one line and the session goes on.
    enter(&mut p, "foo()");
    p.expect("stdin:1: attempt to call a nil value (global 'foo')")
        .expect("the error");
    prompt(&mut p);
    enter(&mut p, "1 + 1");
    p.expect("2").unwrap();
    prompt(&mut p);
    assert!(matches!(quit(p), WaitStatus::Exited(_, 0)));
}

#[test]
fn ctrl_c_cancels_a_slow_call_and_the_session_goes_on() {
    let home = tempfile::tempdir().unwrap();
    let mut p = spawn(
        home.path(),
        &[
            "--sim",
            "--sim-messages",
            "10",
            "--sim-faults",
            "slow:1",
            "--sim-slow-delay",
            "60s",
        ],
    );
    enter(&mut p, "x = 41");
    prompt(&mut p);
    // The signal: the entry prints a word (split, so the echoed line does
    // not match) just before the call.
    enter(&mut p, "print('call' .. 'ing'); gmail.profile()");
    p.expect("calling").expect("the entry runs");
    let sent = Instant::now();
    p.send(ControlCode::EndOfText).unwrap();
    p.expect("interrupted").expect("Ctrl-C cancels the call");
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "cancelled at once, not when the slow answer came"
    );
    prompt(&mut p);
    // The Lua state is intact, globals and async calls included.
    enter(&mut p, "sleep(0.01); return x + 1");
    p.expect("42").expect("the session goes on");
    prompt(&mut p);

    // A Lua loop that never waits on the engine is interrupted too.
    enter(
        &mut p,
        "print('spin' .. 'ning'); while true do x = x + 1 end",
    );
    p.expect("spinning").expect("the loop starts");
    p.send(ControlCode::EndOfText).unwrap();
    p.expect("interrupted").expect("Ctrl-C stops a busy loop");
    prompt(&mut p);
    enter(&mut p, "x > 42");
    p.expect("true").unwrap();
    prompt(&mut p);

    // Ctrl-C twice on an empty line quits.
    p.send(ControlCode::EndOfText).unwrap();
    p.expect("Ctrl-C again").unwrap();
    prompt(&mut p);
    p.send(ControlCode::EndOfText).unwrap();
    p.expect(Eof).expect("the second Ctrl-C quits");
    assert!(matches!(
        p.get_process().wait().unwrap(),
        WaitStatus::Exited(_, 0)
    ));
}

#[test]
fn ctrl_c_stops_a_batch_cleanly_then_a_second_drops_it() {
    let home = tempfile::tempdir().unwrap();
    // The 2026 quota at real speed lets ~300 gets through, then the batch
    // waits a minute for the window: a long batch to interrupt.
    let mut p = spawn(
        home.path(),
        &["--sim", "--sim-messages", "2000", "--sim-quota", "2026"],
    );
    enter(
        &mut p,
        "n = 0; r = gmail.batch(gmail.list{}, {format = 'minimal', progress = false, on_message = function(m) n = n + 1; if n == 1 then print('deli' .. 'vering') end end})",
    );
    p.expect("delivering").expect("the batch delivers");
    let sent = Instant::now();
    p.send(ControlCode::EndOfText).unwrap();
    p.expect("stopping the batch")
        .expect("the first Ctrl-C stops the batch");
    prompt(&mut p);
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "stopped at once, not after the quota window"
    );
    // The batch returned its report: what was delivered is counted, and
    // the report says it was cancelled.
    enter(
        &mut p,
        "return string.format('%s/%s/%s', tostring(n > 0 and n < 1960), tostring(r.ok == n), r.stopped)",
    );
    p.expect("true/true/cancelled")
        .expect("the report of the stopped batch");
    prompt(&mut p);
    // The next batch is not born cancelled.
    enter(
        &mut p,
        "return gmail.batch(gmail.list{limit = 3}, {format = 'minimal', progress = false, on_message = function() end}).ok",
    );
    p.expect("3").expect("a new batch runs to its end");
    prompt(&mut p);

    // A batch whose callback never yields: the first Ctrl-C asks for a
    // clean stop that cannot come, the second drops the entry.
    enter(
        &mut p,
        "gmail.batch(gmail.list{limit = 3}, {format = 'minimal', progress = false, on_message = function() print('stu' .. 'ck'); while true do end end})",
    );
    p.expect("stuck").expect("the callback runs");
    p.send(ControlCode::EndOfText).unwrap();
    // Printed once the handler listens for the next Ctrl-C.
    p.expect("stopping the batch").unwrap();
    p.send(ControlCode::EndOfText).unwrap();
    p.expect("interrupted").expect("the second Ctrl-C drops it");
    prompt(&mut p);
    enter(&mut p, "return 6 * 7");
    p.expect("42").expect("the session goes on");
    prompt(&mut p);
    assert!(matches!(quit(p), WaitStatus::Exited(_, 0)));
}

#[test]
fn history_survives_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let mut p = spawn(home.path(), &["--sim", "--sim-messages", "10"]);
    enter(&mut p, "12000 + 345");
    p.expect("12345").unwrap();
    prompt(&mut p);
    assert!(matches!(quit(p), WaitStatus::Exited(_, 0)));

    let file = home.path().join("data/gmailscript/history.txt");
    let saved = std::fs::read_to_string(&file).expect("history in the data directory");
    assert!(saved.contains("12000 + 345"), "{saved}");

    let mut p = spawn(home.path(), &["--sim", "--sim-messages", "10"]);
    p.send("\x1b[A\r").unwrap(); // Up, Enter
    p.expect("12345")
        .expect("the entry came back from the history");
    prompt(&mut p);
    assert!(matches!(quit(p), WaitStatus::Exited(_, 0)));
}

/// The REPL with statements piped in.
fn piped(args: &[&str], input: &str) -> (Output, String, String) {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("repl")
        .args(args)
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn piped_statements_print_values_and_go_on_after_errors() {
    let (out, stdout, stderr) = piped(
        &["--sim", "--sim-messages", "30"],
        "1 + 1\n\
         t = { b = 2, a = 1, 'first', nested = { 3, 4 } }\n\
         t\n\
         for i = 1, 2 do\n\
           print('line ' .. i)\n\
         end\n\
         foo()\n\
         gmail.profile().messages_total\n\
         gmail.get('nope')\n\
         'still' .. ' here'\n",
    );
    assert_eq!(
        stdout,
        "2\n\
         { \"first\", a = 1, b = 2, nested = { 3, 4 } }\n\
         line 1\n\
         line 2\n\
         30\n\
         nil\terror 400 invalidArgument (invalid): Invalid id value\n\
         \"still here\"\n"
    );
    assert_eq!(
        stderr,
        "stdin:1: attempt to call a nil value (global 'foo')\n"
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a statement failed: exit code 2"
    );
    assert!(!stdout.contains("sim-token") && !stderr.contains("sim-token"));
}

#[test]
fn piped_without_errors_exits_0_and_help_comes_from_the_docs() {
    let (out, stdout, stderr) = piped(
        &["--sim", "--sim-messages", "5"],
        ":help gmail.batch\n:help\nDRY_RUN\n",
    );
    assert!(stdout.starts_with("### gmail.batch\n"), "{stdout}");
    assert!(stdout.contains("#### BatchReport"));
    assert!(
        stdout.contains(":help TOPIC"),
        "the overview lists commands"
    );
    assert!(
        stdout.contains("gmail     batch, default_policy,"),
        "{stdout}"
    );
    assert!(stdout.ends_with("false\n"));
    assert_eq!(stderr, "");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_script_runs_first_and_its_globals_stay() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("init.lua");
    std::fs::write(
        &script,
        "greeting = 'hello from ' .. arg[0]:match('[^/]*$')\nlocal hidden = 1\n",
    )
    .unwrap();
    let (out, stdout, _) = piped(
        &[
            "--sim",
            "--sim-messages",
            "5",
            "--dry-run",
            "-i",
            script.to_str().unwrap(),
        ],
        "greeting\nhidden\nDRY_RUN\n",
    );
    assert_eq!(stdout, "\"hello from init.lua\"\nnil\ntrue\n");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn an_unfinished_statement_at_the_end_is_an_error() {
    let (out, stdout, stderr) = piped(&["--sim", "--sim-messages", "5"], "for i = 1, 2 do\n");
    assert_eq!(stdout, "");
    assert!(stderr.contains("'end' expected"), "{stderr}");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_call_s_trailing_nil_is_not_shown_and_a_shipped_script_leaves_its_result() {
    let stats = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/stats.lua");
    let (out, stdout, stderr) = piped(
        &["--sim", "--sim-messages", "40", "-i", stats],
        "gmail.profile()\n\
         return 1, nil\n\
         return nil, nil\n\
         gmail.get('0000000000000000')\n\
         result.messages\n\
         #result.by_count > 0 and result.by_count[1][2] >= result.by_count[#result.by_count][2]\n",
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("stats.lua left these globals: result"),
        "{stderr}"
    );
    // What stats.lua printed, then the entries' values.
    let counted: u64 = stdout
        .lines()
        .next()
        .and_then(|l| l.strip_suffix(" messages"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("stats' first line: {stdout}"));
    let entries = &stdout[stdout.find("{\n  email").expect("the profile")..];
    let lines: Vec<&str> = entries.lines().collect();
    // The profile table, and no `nil` line for its (absent) error after it.
    assert_eq!(lines[0], "{", "{entries}");
    assert_eq!(lines[1], "  email = \"me@example.com\",", "{entries}");
    assert!(lines[2].starts_with("  history_id = "), "{entries}");
    assert_eq!(lines[3], "  messages_total = 40,", "{entries}");
    assert!(lines[4].starts_with("  threads_total = "), "{entries}");
    assert_eq!(lines[5], "}", "{entries}");
    assert_eq!(lines[6], "1", "{entries}");
    assert_eq!(lines[7], "nil", "{entries}");
    assert!(lines[8].starts_with("nil\terror 404"), "{entries}");
    assert_eq!(lines[9], counted.to_string(), "{entries}");
    assert_eq!(lines[10], "true", "{entries}");
    assert_eq!(lines.len(), 11, "{entries}");
}

#[test]
fn a_script_without_globals_is_said_to_leave_none() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("locals.lua");
    std::fs::write(&script, "local n = 1\nprint(n)\n").unwrap();
    let (out, stdout, stderr) = piped(
        &[
            "--sim",
            "--sim-messages",
            "5",
            "-i",
            script.to_str().unwrap(),
        ],
        "n\n",
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout, "1\nnil\n");
    assert!(
        stderr.contains("locals.lua left no globals (its locals are gone once it ends)"),
        "{stderr}"
    );
}
