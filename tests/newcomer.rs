//! The first hour (issue 16), as a newcomer meets it with the binary on
//! the PATH: shipped scripts by name from any folder, completions and the
//! man page, `require` of one's own modules, the tip for a forgotten `--`,
//! logs that say what the engine does, and the smaller messages.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::BIN;

/// `gmailscript ARGS` in `cwd`, with its config and data directories under
/// `home` (never the user's), no RUST_LOG, stderr a pipe.
fn gs(home: &Path, cwd: &Path, args: &[&str]) -> Output {
    gs_env(home, cwd, args, &[])
}

fn gs_env(home: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env("GMAILSCRIPT_CONFIG_DIR", home.join("config"))
        .env("GMAILSCRIPT_DATA_DIR", home.join("data"))
        .env_remove("RUST_LOG")
        .env_remove("LUA_PATH")
        .env_remove("LUA_PATH_5_4")
        .env_remove("GMAILSCRIPT_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("gmailscript runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> (String, String) {
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    (out, err)
}

#[test]
fn a_shipped_script_runs_by_name_from_any_folder_and_a_real_file_wins() {
    let home = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let sim = ["--sim", "--sim-messages", "30"];

    let o = gs(
        home.path(),
        cwd.path(),
        &[&["-v", "run", "backup"][..], &sim].concat(),
    );
    let (out, err) = ok(&o);
    assert!(
        out.starts_with("full backup of me@example.com to backup:"),
        "{out}"
    );
    assert!(
        err.contains("shipped script backup.lua"),
        "-v says which ran: {err}"
    );
    assert!(cwd.path().join("backup/cur").is_dir());

    // ./backup is now the backup folder: not a script, so the shipped one
    // still runs (incrementally).
    let (out, _) = ok(&gs(
        home.path(),
        cwd.path(),
        &[&["run", "backup"][..], &sim].concat(),
    ));
    assert!(out.starts_with("incremental backup"), "{out}");

    // A file of one's own wins, by its path or by the bare name.
    std::fs::write(cwd.path().join("backup.lua"), "print('my own backup')\n").unwrap();
    for name in ["backup.lua", "backup"] {
        let o = gs(
            home.path(),
            cwd.path(),
            &[&["-v", "run", name][..], &sim].concat(),
        );
        let (out, err) = ok(&o);
        assert_eq!(out, "my own backup\n", "{name}");
        assert!(err.contains("script file backup.lua"), "{name}: {err}");
    }

    // The README's path form works from any folder too.
    let o = gs(
        home.path(),
        cwd.path(),
        &[&["run", "scripts/stats.lua"][..], &sim].concat(),
    );
    assert!(ok(&o).0.contains("Top senders by count"));

    // No such script: the shipped ones are named.
    let o = gs(home.path(), cwd.path(), &["run", "bakup", "--sim"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("script bakup not found")
            && err
                .contains("adaptive, autolabel, backup, cleanup, export, migrate, restore, stats"),
        "{err}"
    );
}

#[test]
fn scripts_lists_the_shipped_ones_with_their_purpose_and_prints_one() {
    let home = tempfile::tempdir().unwrap();
    let (out, _) = ok(&gs(home.path(), home.path(), &["scripts"]));
    for line in [
        "autolabel  Watch the mailbox and file new mail by rules, until stopped.",
        "backup     Back up a mailbox to a Maildir, and keep it up to date.",
        "cleanup    Label and archive old newsletters.",
        "export     Export the headers of the messages a query matches, one JSON object per line.",
        "restore    Restore mail into Gmail from a backup folder or a Takeout mbox, each message once.",
        "stats      Top senders by count and by size.",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "{line:?} missing in:\n{out}"
        );
    }
    let (out, _) = ok(&gs(home.path(), home.path(), &["scripts", "export"]));
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/export.lua"))
            .unwrap();
    assert_eq!(out, on_disk);
    let o = gs(home.path(), home.path(), &["scripts", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no shipped script nope; they are adaptive, autolabel, backup"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn completions_for_each_shell_and_the_man_page_come_from_the_same_definitions() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (bash, _) = ok(&gs(h, h, &["completions", "bash"]));
    assert!(
        bash.contains("complete -F") && bash.contains("gmailscript"),
        "{bash}"
    );
    for word in ["--sim-messages", "completions", "scripts"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    // The script is valid bash.
    let path = h.join("gmailscript.bash");
    std::fs::write(&path, &bash).unwrap();
    if let Ok(check) = Command::new("bash").arg("-n").arg(&path).output() {
        assert!(check.status.success(), "{}", text(&check.stderr));
    }
    let (zsh, _) = ok(&gs(h, h, &["completions", "zsh"]));
    assert!(
        zsh.starts_with("#compdef gmailscript"),
        "{}",
        &zsh[..zsh.len().min(200)]
    );
    assert!(zsh.contains("--sim-messages"));
    let (fish, _) = ok(&gs(h, h, &["completions", "fish"]));
    assert!(fish.contains("complete -c gmailscript") && fish.contains("sim-messages"));
    let o = gs(h, h, &["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("bash"),
        "names the shells: {}",
        text(&o.stderr)
    );

    let (man, _) = ok(&gs(h, h, &["man"]));
    assert!(man.contains(".TH gmailscript 1"));
    assert!(man.contains("Move a lot of Gmail reliably"));
    let dir = h.join("man1");
    let (_, err) = ok(&gs(h, h, &["man", "--dir", dir.to_str().unwrap()]));
    assert!(err.contains("man pages written to"), "{err}");
    for page in [
        "gmailscript.1",
        "gmailscript-run.1",
        "gmailscript-sim.1",
        "gmailscript-auth-login.1",
    ] {
        let p = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(p.contains(".TH"), "{page}");
    }
    let run = std::fs::read_to_string(dir.join("gmailscript-run.1")).unwrap();
    assert!(
        run.contains("sim\\-messages"),
        "the run page documents its options"
    );
}

#[test]
fn require_finds_modules_beside_the_script_in_the_user_folder_and_on_lua_path() {
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let scripts = home.path().join("my scripts");
    let user = home.path().join("config/lua");
    let extra = home.path().join("extra");
    for d in [&scripts, &user, &extra] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(scripts.join("helper.lua"), "return { who = 'beside' }\n").unwrap();
    // The same name in the user folder loses to the one beside the script.
    std::fs::write(user.join("helper.lua"), "return { who = 'user folder' }\n").unwrap();
    std::fs::write(user.join("mine.lua"), "return { who = 'user folder' }\n").unwrap();
    std::fs::create_dir_all(user.join("pkg")).unwrap();
    std::fs::write(
        user.join("pkg/init.lua"),
        "return { who = 'user package' }\n",
    )
    .unwrap();
    std::fs::write(extra.join("fromenv.lua"), "return { who = 'LUA_PATH' }\n").unwrap();
    std::fs::write(
        scripts.join("main.lua"),
        "print(require('helper').who)\nprint(require('mine').who)\nprint(require('pkg').who)\n\
         print(require('fromenv').who)\n",
    )
    .unwrap();
    let lua_path = format!("{}/?.lua;;", extra.display());
    let main = scripts.join("main.lua");
    let o = gs_env(
        home.path(),
        elsewhere.path(),
        &[
            "run",
            main.to_str().unwrap(),
            "--sim",
            "--sim-messages",
            "1",
        ],
        &[("LUA_PATH", &lua_path)],
    );
    let (out, _) = ok(&o);
    assert_eq!(out, "beside\nuser folder\nuser package\nLUA_PATH\n");

    // A relative script path, run from its own parent folder.
    let o = gs(
        home.path(),
        home.path(),
        &["run", "my scripts/main.lua", "--sim", "--sim-messages", "1"],
    );
    assert_eq!(o.status.code(), Some(2), "fromenv is only on LUA_PATH");
    let err = text(&o.stderr);
    assert!(err.contains("module 'fromenv' not found"), "{err}");
    assert!(
        err.contains("my scripts/fromenv.lua") && err.contains("config/lua/fromenv.lua"),
        "says where it looked: {err}"
    );
}

#[test]
fn script_arguments_before_the_dashes_get_a_tip_with_the_right_command() {
    let home = tempfile::tempdir().unwrap();
    let o = gs(
        home.path(),
        home.path(),
        &["run", "scripts/export.lua", "--sim", "is:unread", "u.jsonl"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("unexpected argument 'is:unread'"), "{err}");
    assert!(
        err.contains("gmailscript run scripts/export.lua --sim -- 'is:unread' u.jsonl"),
        "{err}"
    );
    // A misspelt option gets clap's suggestion, not ours.
    let o = gs(
        home.path(),
        home.path(),
        &["run", "stats", "--sim-mesages", "5"],
    );
    let err = text(&o.stderr);
    assert!(
        err.contains("--sim-messages") && !err.contains("go after `--`"),
        "{err}"
    );
}

#[test]
fn logs_say_what_the_engine_does_without_library_noise_or_colour_in_a_pipe() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let args = [
        "run",
        "backup",
        "--sim",
        "--sim-messages",
        "40",
        "--",
        "out",
    ];
    let (_, err) = ok(&gs(h, h, &[&["-v"][..], &args].concat()));
    assert!(
        !err.contains('\x1b'),
        "no escape codes when stderr is a pipe: {err:?}"
    );
    assert!(err.contains("chunk size 50 to start"), "{err}");
    assert!(
        err.contains(" chunks, ") && err.contains("quota units"),
        "a chunk summary: {err}"
    );
    assert!(!err.contains("DEBUG"), "{err}");

    std::fs::remove_dir_all(h.join("out")).unwrap();
    let (_, err) = ok(&gs(h, h, &[&["-vv"][..], &args].concat()));
    assert!(!err.contains('\x1b'));
    assert!(
        err.contains("POST /batch/gmail/v1 ("),
        "per-call detail: {err}"
    );
    assert!(err.contains("GET /gmail/v1/users/me/profile"), "{err}");
    for noisy in ["hyper", "reqwest", "h2::", "rustls"] {
        assert!(
            !err.lines().any(|l| l.contains(&format!(" {noisy}"))),
            "{noisy} lines at -vv:\n{err}"
        );
    }

    // The libraries' lines are there when RUST_LOG asks for them.
    std::fs::remove_dir_all(h.join("out")).unwrap();
    let o = gs_env(h, h, &args, &[("RUST_LOG", "hyper_util=debug")]);
    let (_, err) = ok(&o);
    assert!(err.contains("hyper_util"), "{err}");
}

#[test]
fn sigterm_stops_like_ctrl_c_with_the_work_saved() {
    use std::io::{BufRead, BufReader};
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut child = Command::new(BIN)
        .args([
            "-v",
            "run",
            "backup",
            "--sim",
            "--sim-messages",
            "600",
            "--",
            "out",
        ])
        .current_dir(h)
        .env("GMAILSCRIPT_CONFIG_DIR", h.join("config"))
        .env("GMAILSCRIPT_DATA_DIR", h.join("data"))
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // The first summary line says chunks have gone out and come back.
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "ended early:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains(" chunks, ") {
            break;
        }
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on the child's own pid, which has not been waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(
        rest.contains("gmailscript: terminated (SIGTERM): stopping after the batches in flight"),
        "{rest}"
    );
    assert!(
        rest.contains("gmailscript: interrupted; what was done is saved"),
        "{rest}"
    );
    // A stopped backup prints no result; it says on stderr what it kept.
    assert!(!out.contains("fetched,"), "no normal-looking result: {out}");
    let fetched: u64 = rest
        .split("stopped early: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{rest}"));
    assert!(fetched > 0 && fetched < 580, "{out}");

    // What was fetched is kept: the rerun (the same mailbox, unpaced)
    // starts from there.
    let again = [
        "run",
        "backup",
        "--sim",
        "--sim-messages",
        "600",
        "--sim-quota",
        "off",
        "--",
        "out",
    ];
    let (out, _) = ok(&gs(h, h, &again));
    assert!(out.contains(&format!("{fetched} already there")), "{out}");
}

#[test]
fn an_os_error_is_said_once() {
    let home = tempfile::tempdir().unwrap();
    let o = gs(
        home.path(),
        home.path(),
        &["sim", "--mbox", "/nonexistent/mail.mbox"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
    assert!(
        err.starts_with("gmailscript: cannot open /nonexistent/mail.mbox: "),
        "{err}"
    );
}

#[test]
fn the_sim_banner_counts_the_messages_of_the_mbox() {
    use std::io::{BufRead, BufReader};
    let home = tempfile::tempdir().unwrap();
    let mbox = home.path().join("takeout.mbox");
    let one = |n: u32| {
        format!(
            "From 17000000000000000{n:02}@xxx Mon Jan 01 10:00:00 +0000 2024\nFrom: a@example.com\n\
             To: me@example.com\nSubject: message {n}\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\
             Message-ID: <m{n}@example.com>\n\nbody {n}\n\n"
        )
    };
    std::fs::write(&mbox, (1..=3).map(one).collect::<String>()).unwrap();
    let mut child = Command::new(BIN)
        .args(["sim", "--port", "0", "--messages", "50", "--mbox"])
        .arg(&mbox)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        banner.contains(&format!(
            "serving 3 users (me@example.com has the 3 messages of {}, the others 50 generated each)",
            mbox.display()
        )),
        "{banner}"
    );
}

#[test]
fn what_the_readme_tour_writes_in_the_checkout_is_ignored_by_git() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let ignore = std::fs::read_to_string(format!("{root}/.gitignore")).unwrap();
    let ignored: Vec<&str> = ignore.lines().collect();
    assert!(
        readme.contains("scripts/backup.lua --sim "),
        "the tour backs up into ./backup"
    );
    assert!(
        readme.contains("--sim -- 'is:unread' unread.jsonl"),
        "the tour exports unread.jsonl"
    );
    for path in ["/backup/", "/unread.jsonl"] {
        assert!(ignored.contains(&path), ".gitignore lacks {path}");
    }
}

#[test]
fn the_backup_bar_counts_to_the_messages_there_are() {
    use expectrl::session::OsSession as Session;
    use expectrl::{Eof, Expect};
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "run",
        "backup",
        "--sim",
        "--sim-messages",
        "400",
        "--",
        "out",
    ])
    .current_dir(h)
    .env("GMAILSCRIPT_CONFIG_DIR", h.join("config"))
    .env("GMAILSCRIPT_DATA_DIR", h.join("data"))
    .env("TERM", "xterm")
    .env_remove("RUST_LOG");
    let mut p = Session::spawn(cmd).expect("runs on a pty");
    p.get_process_mut().set_window_size(150, 40).unwrap();
    p.set_expect_timeout(Some(std::time::Duration::from_secs(120)));
    let all = p.expect(Eof).expect("the run ends");
    let screen = text(all.as_bytes());
    let fetched: u64 = screen
        .split(" fetched")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(fetched < 400, "some of the 400 are spam or trash: {screen}");
    // Every frame of the bar: "POS/LEN messages".
    let frames: Vec<(u64, u64)> = screen
        .split(" messages")
        .filter_map(|before| {
            let word = before.rsplit([' ', '\r', '\n']).next()?;
            let (pos, len) = word.split_once('/')?;
            Some((pos.parse().ok()?, len.parse().ok()?))
        })
        .collect();
    assert!(frames.len() >= 3, "the bar was drawn: {screen}");
    // The profile's 400 count spam and trash; the listing is read ahead of
    // the fetching, so from the first message on the bar's length is the
    // number there are.
    assert_eq!(frames.last().unwrap().1, fetched, "{frames:?}");
    assert!(
        frames
            .iter()
            .filter(|(pos, _)| *pos > 0)
            .all(|(_, len)| *len == fetched),
        "{frames:?}"
    );
}
