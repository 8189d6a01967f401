//! Real-account flows end to end, against the simulator's OAuth side on
//! loopback (the client secret and key files name its endpoints, as
//! yup-oauth2 honours them): the installed-app login through its redirect,
//! refresh during a long batch, service accounts with and without a
//! subject, a revoked login, private files, and no token in any output.
//! Every command gets --endpoint: nothing may talk to Google.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;

use common::BIN;

/// A `gmailscript sim` process.
struct Sim(common::SimProcess);

impl std::ops::Deref for Sim {
    type Target = common::SimProcess;
    fn deref(&self) -> &common::SimProcess {
        &self.0
    }
}

impl Sim {
    fn start(args: &[&str]) -> Sim {
        let mut all = vec!["--quota", "off"];
        all.extend_from_slice(args);
        Sim(common::SimProcess::start(&all))
    }

    /// POST a form to the simulator; the status and the JSON answer.
    fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{}{path}", self.url))
                .form(form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
        })
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A config directory of its own, and the files a user would download.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cfg(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn account_dir(&self, name: &str) -> PathBuf {
        self.cfg().join("accounts").join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("GMAILSCRIPT_CONFIG_DIR", self.cfg())
            .env_remove("GMAILSCRIPT_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `run SCRIPT --account NAME --endpoint SIM --quota off EXTRA...`
    fn run_command(&self, sim: &Sim, account: &str, script: &str, extra: &[&str]) -> Command {
        let mut c = self.command(&["run", script, "--account", account]);
        c.args(["--endpoint", &sim.url, "--quota", "off"])
            .args(extra);
        c
    }

    fn run_on(&self, sim: &Sim, account: &str, script: &str, extra: &[&str]) -> Output {
        self.run_command(sim, account, script, extra)
            .output()
            .unwrap()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// A Desktop app client secret whose endpoints are the simulator's.
    fn client_secret(&self, sim: &Sim) -> String {
        self.write(
            "client_secret.json",
            &serde_json::json!({"installed": {
                "client_id": "1234-test.apps.googleusercontent.com",
                "client_secret": "GOCSPX-test-client-secret",
                "auth_uri": format!("{}/o/oauth2/auth", sim.url),
                "token_uri": format!("{}/token", sim.url),
                "redirect_uris": ["http://localhost"],
            }})
            .to_string(),
        )
    }

    /// `auth login` as a user does it, with the browser's part played by
    /// following the printed address: the simulator consents and redirects
    /// to the login's loopback port. Returns the login's output and the
    /// address it printed.
    fn login(&self, sim: &Sim, extra: &[&str]) -> (Output, String) {
        let secret = self.client_secret(sim);
        let mut child = self
            .command(&["auth", "login", "--no-browser", "--client-secret", &secret])
            .args(["--endpoint", &sim.url])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let url = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "login ended without an address: {seen}"
            );
            seen.push_str(&line);
            if line.contains("/o/oauth2/auth?") {
                break line.trim().to_string();
            }
        };
        let rest = std::thread::spawn(move || {
            let mut s = String::new();
            stderr.read_to_string(&mut s).unwrap();
            s
        });
        let page = block_on(async {
            // reqwest follows the 302 to the loopback redirect_uri.
            let r = reqwest::get(&url).await.unwrap();
            assert_eq!(r.status(), 200, "redirect not followed to the login");
            r.text().await.unwrap()
        });
        assert!(page.contains("close this window"), "{page}");
        let mut out = child.wait_with_output().unwrap();
        out.stderr = (seen + &rest.join().unwrap()).into_bytes();
        (out, url)
    }

    fn tokens(&self, name: &str) -> Value {
        let text = std::fs::read_to_string(self.account_dir(name).join("tokens.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn account(&self, name: &str) -> Value {
        let text = std::fs::read_to_string(self.account_dir(name).join("account.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{:?}", text(o));
}

/// Exit code 2, one readable line with `needles`, no panic.
fn assert_usage(o: &Output, needles: &[&str]) -> String {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn set_mode(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

const PROFILE: &str = "local p = assert(gmail.profile())\nprint(p.email)\n";

#[test]
fn login_follows_the_redirect_and_runs_on_the_saved_tokens() {
    let sim = Sim::start(&["--messages", "50"]);
    let home = Home::new();
    let (out, url) = home.login(&sim, &[]);
    assert_ok(&out);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("Logged in as me@example.com"), "{stdout}");
    // Read-only unless asked; the browser comes back to this computer.
    assert!(
        url.contains("scope=https://www.googleapis.com/auth/gmail.readonly"),
        "{url}"
    );
    assert!(url.contains("redirect_uri=http://localhost:"), "{url}");

    let account = home.account("default");
    assert_eq!(account["kind"], "installed");
    assert_eq!(account["email"], "me@example.com");
    assert_eq!(
        account["scopes"],
        serde_json::json!(["https://www.googleapis.com/auth/gmail.readonly"])
    );
    let tokens = home.tokens("default");
    assert!(tokens[0]["token"]["refresh_token"].is_string());

    // A saved account's tokens go to a non-Google endpoint only when the
    // account is named.
    let script = home.write("profile.lua", PROFILE);
    let run = home.run_on(&sim, "default", &script, &[]);
    assert_ok(&run);
    assert_eq!(text(&run).0.trim(), "me@example.com");

    // Status: kind, scopes, email, expiry; the default marked; no token.
    let status = home.run(&["auth", "status"]);
    assert_ok(&status);
    let (s, _) = text(&status);
    assert!(
        s.contains("*  default  installed  me@example.com  readonly  expires"),
        "{s}"
    );
    assert!(s.contains("\n* the default account, used when"), "{s}");
    let access = tokens[0]["token"]["access_token"].as_str().unwrap();
    let refresh = tokens[0]["token"]["refresh_token"].as_str().unwrap();
    assert!(!s.contains(access) && !s.contains(refresh), "{s}");

    // Wider scopes only when asked.
    let (out, url) = home.login(&sim, &["--account", "work", "--scope", "full"]);
    assert_ok(&out);
    assert!(url.contains("scope=https://mail.google.com/"), "{url}");
    let (out, url) = home.login(&sim, &["--account", "tidy", "--scope", "modify"]);
    assert_ok(&out);
    assert!(url.contains("gmail.modify"), "{url}");
    let (s, _) = text(&home.run(&["auth", "status"]));
    assert!(
        s.contains("work     installed  me@example.com  full"),
        "{s}"
    );
}

#[cfg(unix)]
#[test]
fn token_files_are_private_and_loose_modes_are_fixed() {
    let sim = Sim::start(&["--messages", "5"]);
    let home = Home::new();
    assert_ok(&home.login(&sim, &[]).0);
    let dir = home.account_dir("default");
    assert_eq!(mode(&home.cfg()), 0o700);
    assert_eq!(mode(&home.cfg().join("accounts")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("account.json")), 0o600);
    assert_eq!(mode(&dir.join("tokens.json")), 0o600);

    // Copied around carelessly: the next run puts them back, and says so.
    set_mode(&dir, 0o755);
    set_mode(&dir.join("tokens.json"), 0o644);
    set_mode(&dir.join("account.json"), 0o664);
    let script = home.write("profile.lua", PROFILE);
    let run = home.run_on(&sim, "default", &script, &[]);
    assert_ok(&run);
    assert!(
        text(&run).1.contains("readable by others"),
        "{:?}",
        text(&run)
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("tokens.json")), 0o600);
    assert_eq!(mode(&dir.join("account.json")), 0o600);
}

#[test]
fn expired_tokens_are_refreshed_during_a_long_batch() {
    // Tokens live one second; the batch takes several.
    let sim = Sim::start(&[
        "--messages",
        "400",
        "--token-lifetime",
        "1s",
        "--latency",
        "100ms",
    ]);
    let home = Home::new();
    assert_ok(&home.login(&sim, &[]).0);
    let script = home.write(
        "long.lua",
        r#"
local ids = {}
for id in gmail.list{} do ids[#ids + 1] = id end
local r = gmail.batch(ids, { format = "minimal", chunk = 10 })
print(#ids, r.ok, r.failed, r.skipped)
"#,
    );
    let started = std::time::Instant::now();
    let run = home.run_on(&sim, "default", &script, &["-q"]);
    assert_ok(&run);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(3),
        "the batch was too quick to outlive tokens: {:?}",
        started.elapsed()
    );
    let (out, _) = text(&run);
    let n: Vec<u64> = out.split_whitespace().map(|f| f.parse().unwrap()).collect();
    assert!(n[0] > 300, "{out}");
    assert_eq!(n[1..], [n[0], 0, 0], "{out}");
    // Tokens did expire under it (401s), and fresh ones were fetched.
    let stats = sim.stats();
    let unauthorized: u64 = stats["calls"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|codes| codes["401"].as_u64())
        .sum();
    assert!(unauthorized > 0, "{stats}");
}

#[test]
fn a_revoked_or_damaged_login_says_to_log_in_again() {
    let sim = Sim::start(&["--messages", "5", "--token-lifetime", "1s"]);
    let home = Home::new();
    assert_ok(&home.login(&sim, &["--account", "work"]).0);
    let tokens = home.tokens("work");
    let refresh = tokens[0]["token"]["refresh_token"].as_str().unwrap();
    assert_eq!(sim.post_form("/revoke", &[("token", refresh)]).0, 200);

    let script = home.write("profile.lua", PROFILE);
    let run = || home.run_on(&sim, "work", &script, &[]);
    assert_usage(
        &run(),
        &[
            "no longer accepts the saved login",
            "gmailscript auth login --account work",
        ],
    );

    // A token cache that is not JSON any more.
    std::fs::write(
        home.account_dir("work").join("tokens.json"),
        "[{\"scopes\": [\"x\"], \"tok",
    )
    .unwrap();
    assert_usage(
        &run(),
        &["damaged", "gmailscript auth login --account work"],
    );
    let (s, _) = text(&home.run(&["auth", "status"]));
    assert!(s.contains("token cache damaged"), "{s}");

    // Logged out: tokens gone.
    std::fs::remove_file(home.account_dir("work").join("tokens.json")).unwrap();
    assert_usage(
        &run(),
        &["not logged in", "gmailscript auth login --account work"],
    );
}

#[test]
fn client_secret_files_of_the_wrong_kind_say_what_to_download() {
    let home = Home::new();
    let web = home.write(
        "web.json",
        r#"{"web":{"client_id":"x","client_secret":"y","auth_uri":"http://127.0.0.1:9/a","token_uri":"http://127.0.0.1:9/t"}}"#,
    );
    let err = assert_usage(
        &home.run(&["auth", "login", "--no-browser", "--client-secret", &web]),
        &[
            "Web application",
            "Create an OAuth client ID of type Desktop app and download its JSON",
        ],
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let bad = home.write("bad.json", "{\"installed\": ");
    assert_usage(
        &home.run(&["auth", "login", "--no-browser", "--client-secret", &bad]),
        &["not JSON", "type Desktop app"],
    );
    assert_usage(
        &home.run(&["auth", "login", "--no-browser"]),
        &["--client-secret FILE", "Desktop app"],
    );
    // Nothing half-made was left behind.
    let (s, _) = text(&home.run(&["auth", "status"]));
    assert!(s.contains("No accounts"), "{s}");
}

#[test]
fn without_an_account_runs_say_how_to_log_in_or_try_the_simulator() {
    let home = Home::new();
    let script = home.write("profile.lua", PROFILE);
    assert_usage(
        &home.run(&["run", &script]),
        &["gmailscript auth login", "--sim"],
    );
    assert_usage(
        &home.run(&["run", &script, "--account", "nope"]),
        &["no account named nope", "gmailscript auth status"],
    );
    let (s, _) = text(&home.run(&["auth", "status"]));
    assert!(s.contains("No accounts") && s.contains("--sim"), "{s}");

    // Once there is an account named `default`, runs use it. (Its token
    // cache is damaged here, so the run stops before any network call:
    // without --endpoint it would talk to Google.)
    let secret = home.write(
        "client_secret.json",
        r#"{"installed":{"client_id":"x","client_secret":"y","auth_uri":"http://127.0.0.1:9/a",
            "token_uri":"http://127.0.0.1:9/token","redirect_uris":["http://localhost"]}}"#,
    );
    let dir = home.account_dir("default");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("account.json"),
        serde_json::json!({"kind": "installed", "client_secret": secret,
            "scopes": ["https://www.googleapis.com/auth/gmail.readonly"]})
        .to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("tokens.json"), "{").unwrap();
    assert_usage(
        &home.run(&["run", &script]),
        &[
            "account default",
            "damaged",
            "gmailscript auth login --account default",
        ],
    );
}

/// A service account key for the simulator, with a throwaway RSA key.
fn service_key(home: &Home, sim: &Sim) -> String {
    common::service_key(home.dir.path(), sim)
        .display()
        .to_string()
}

fn http_requests(sim: &Sim) -> u64 {
    sim.stats()["http_requests"].as_u64().unwrap()
}

#[test]
fn service_accounts_act_for_a_subject_and_are_refused_without_one() {
    let sim = Sim::start(&["--messages", "5"]);
    let home = Home::new();
    let key = service_key(&home, &sim);
    let script = home.write("profile.lua", PROFILE);

    // Without a subject: refused before any call, saying why.
    let before = http_requests(&sim);
    assert_usage(
        &home.run(&[
            "auth",
            "service-account",
            "--key",
            &key,
            "--account",
            "corp",
            "--endpoint",
            &sim.url,
        ]),
        &["--subject USER", "400 Precondition check failed"],
    );
    // (+1: the stats call itself.)
    assert_eq!(http_requests(&sim), before + 1);

    // With one: the JWT grant, then the subject's profile.
    let out = home.run(&[
        "auth",
        "service-account",
        "--key",
        &key,
        "--subject",
        "alice@example.com",
        "--account",
        "corp",
        "--endpoint",
        &sim.url,
    ]);
    assert_ok(&out);
    assert!(text(&out).0.contains("acting for alice@example.com"));
    let account = home.account("corp");
    assert_eq!(account["kind"], "service_account");
    assert_eq!(account["subject"], "alice@example.com");
    let (s, _) = text(&home.run(&["auth", "status"]));
    assert!(
        s.contains("corp     service_account  alice@example.com (subject)  readonly"),
        "{s}"
    );
    // No row has the star, so no legend for it: how runs choose instead.
    assert!(!s.contains('*'), "{s}");
    assert!(
        s.contains("No account is named default: runs need --account NAME"),
        "{s}"
    );

    let run = |extra: &[&str]| home.run_on(&sim, "corp", &script, extra);
    let out = run(&[]);
    assert_ok(&out);
    assert_eq!(text(&out).0.trim(), "alice@example.com");
    // One key, many mailboxes.
    let out = run(&["--user", "bob@example.com"]);
    assert_ok(&out);
    assert_eq!(text(&out).0.trim(), "bob@example.com");
    // A subject the domain does not have.
    assert_usage(
        &run(&["--user", "mallory@example.com"]),
        &["mallory@example.com is not a user"],
    );

    // An account saved without a subject (by hand) is refused before any
    // call too, unless --user names one.
    let mut account = home.account("corp");
    account.as_object_mut().unwrap().remove("subject");
    std::fs::write(
        home.account_dir("corp").join("account.json"),
        account.to_string(),
    )
    .unwrap();
    let before = http_requests(&sim);
    assert_usage(
        &run(&[]),
        &["400 Precondition check failed", "--user EMAIL"],
    );
    assert_eq!(http_requests(&sim), before + 1);
    let out = run(&["--user", "alice@example.com"]);
    assert_ok(&out);
    assert_eq!(text(&out).0.trim(), "alice@example.com");
}

#[test]
fn a_key_that_is_not_a_service_account_key_is_explained() {
    let home = Home::new();
    let secret = home.write(
        "client_secret.json",
        r#"{"installed":{"client_id":"x","client_secret":"y","auth_uri":"a","token_uri":"t"}}"#,
    );
    assert_usage(
        &home.run(&[
            "auth",
            "service-account",
            "--key",
            &secret,
            "--subject",
            "a@example.com",
        ]),
        &["not a service account key", "gmailscript auth login"],
    );
}

#[test]
fn logout_revokes_the_login_and_deletes_the_tokens() {
    let sim = Sim::start(&["--messages", "5"]);
    let home = Home::new();
    assert_ok(&home.login(&sim, &[]).0);
    let refresh = home.tokens("default")[0]["token"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let out = home.run(&["auth", "logout"]);
    assert_ok(&out);
    assert!(
        text(&out).0.contains("revoked at Google"),
        "{:?}",
        text(&out)
    );
    assert!(!home.account_dir("default").exists());
    // The simulator no longer takes the refresh token.
    let (status, answer) = sim.post_form(
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "1234-test.apps.googleusercontent.com"),
            ("refresh_token", &refresh),
        ],
    );
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_usage(&home.run(&["auth", "logout"]), &["no account named"]);
}

/// Everything the simulator hands out that must stay secret: access
/// tokens, refresh tokens, authorization codes, and the client secret.
const SECRET_SHAPES: &[&str] = &["ya29.", "1//sim-refresh", "4/sim-code", "GOCSPX-test"];

fn assert_no_secrets(o: &Output) {
    let (out, err) = text(o);
    for shape in SECRET_SHAPES {
        assert!(!out.contains(shape), "{shape} in stdout: {out}");
        assert!(!err.contains(shape), "{shape} in stderr: {err}");
    }
}

#[test]
fn no_token_reaches_the_output_of_a_failing_verbose_run() {
    let sim = Sim::start(&[
        "--messages",
        "60",
        "--token-lifetime",
        "1s",
        "--latency",
        "30ms",
    ]);
    let home = Home::new();
    let (login, _) = home.login(&sim, &["-vv"]);
    assert_ok(&login);
    assert_no_secrets(&login);
    let script = home.write(
        "fails.lua",
        r#"
local r = gmail.batch(gmail.list{}, { format = "minimal", chunk = 5 })
log.info("fetched " .. r.ok)
error("the policy gave up")
"#,
    );
    let run = || home.run_command(&sim, "default", &script, &["-vv"]);
    let out = run().output().unwrap();
    assert_usage(&out, &["the policy gave up"]);
    assert!(text(&out).1.contains("DEBUG"), "-vv logs debug lines");
    assert_no_secrets(&out);
    // Even when RUST_LOG asks for everything.
    let out = run().env("RUST_LOG", "trace").output().unwrap();
    assert_usage(&out, &["the policy gave up"]);
    assert_no_secrets(&out);
    // And when the login is refused.
    let refresh = home.tokens("default")[0]["token"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    sim.post_form("/revoke", &[("token", &refresh)]);
    let out = run().env("RUST_LOG", "trace").output().unwrap();
    assert_usage(&out, &["gmailscript auth login --account default"]);
    assert_no_secrets(&out);
}

#[test]
fn a_long_watch_outlives_its_tokens() {
    // Tokens live one second; mail comes over four.
    let sim = Sim::start(&["--messages", "5", "--token-lifetime", "1s"]);
    let home = Home::new();
    assert_ok(&home.login(&sim, &[]).0);
    let log = home.dir.path().join("handled.log");
    let script = home.write(
        "watch.lua",
        r#"
local out = assert(io.open(arg[1], "a"))
local w = table.pack(gmail.watch{ every = "100ms" })
out:write("start\n") out:flush()
local n = 0
for c in table.unpack(w, 1, w.n) do
  if c.type == "added" then
    out:write(c.id, "\n") out:flush()
    n = n + 1
    if n == 4 then break end
  end
end
"#,
    );
    let mut child = home
        .run_command(
            &sim,
            "default",
            &script,
            &["-q", "--", log.to_str().unwrap()],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !lines().starts_with("start") {
        assert!(std::time::Instant::now() < deadline, "never started");
        assert!(child.try_wait().unwrap().is_none(), "ended early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut ids = Vec::new();
    for _ in 0..4 {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let v = sim.post("/_sim/users/me@example.com/deliver?count=1");
        ids.push(v["ids"][0].as_str().unwrap().to_string());
    }
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    let handled: Vec<String> = lines().lines().skip(1).map(String::from).collect();
    assert_eq!(handled, ids);
    // Tokens did expire under it (401s), and fresh ones were fetched.
    let stats = sim.stats();
    let unauthorized: u64 = stats["calls"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|codes| codes["401"].as_u64())
        .sum();
    assert!(unauthorized > 0, "{stats}");
    let (_, err) = text(&out);
    assert!(
        !err.contains("trying again"),
        "a refresh is not an outage: {err}"
    );
}
