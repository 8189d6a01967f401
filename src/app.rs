//! The commands behind the CLI: connect (simulator, endpoint or account),
//! build the Lua host, run the script, and turn the outcome into an exit
//! code and a one-line summary.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::{FixedToken, TokenSource};
use crate::cli::{ConnArgs, RunArgs};
use crate::endpoint::{check_token_endpoint, endpoint_url};
use crate::exit::{
    UsageError, EXIT_FAILED_ITEMS, EXIT_INTERRUPTED, EXIT_OK, EXIT_STOPPED, EXIT_USAGE,
};
use crate::gmail::client::{ClientConfig, GOOGLE_BASE_URL};
use crate::gmail::quota::{Learn, Pacer, Profile, LEARN_CEILING};
use crate::gmail::Client;
use crate::lua::{Host, HostConfig, Outcome};
use crate::quota_memory::QuotaMemory;

/// What a run talks to; keeps an in-process simulator alive.
pub(crate) struct Connection {
    pub(crate) client: Arc<Client>,
    pub(crate) profile: Profile,
    pub(crate) window: Duration,
    /// With `--quota auto`: a learning pacer that remembers what it finds.
    pub(crate) pacer: Option<Arc<Pacer>>,
    pub(crate) sim: Option<crate::sim::SimHandle>,
}

impl Connection {
    /// The Lua host's settings for this connection (`run` and the REPL).
    pub(crate) fn host_config(
        &self,
        dry_run: bool,
        quiet: bool,
        verbose: u8,
        cancel: watch::Receiver<bool>,
    ) -> HostConfig {
        HostConfig {
            client: self.client.clone(),
            profile: self.profile.clone(),
            window: self.window,
            pacer: self.pacer.clone(),
            dry_run,
            quiet,
            verbose,
            cancel,
        }
    }
}

pub(crate) async fn connect(c: &ConnArgs) -> anyhow::Result<Connection> {
    let user = c.user.clone().unwrap_or_else(|| "me".to_string());
    if c.sim {
        let speed = c.sim_speed;
        let mut config = crate::sim::SimConfig {
            messages: c.sim_messages,
            seed: c.sim_seed,
            quota: c.sim_quota,
            speed,
            slow_delay: c.sim_slow_delay,
            start_ms: c.sim_date,
            // A little service time, so batching and pacing behave as on
            // the real service (--sim-realism gmail sets more).
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            ..crate::sim::SimConfig::default()
        };
        c.sim_tuning().apply(&mut config);
        let handle = crate::sim::start(config)
            .await
            .map_err(|e| UsageError(format!("cannot start the simulator: {e}")))?;
        let profile = match c.sim_quota {
            crate::sim::quota::Rules::P2026 => Profile::P2026,
            crate::sim::quota::Rules::Legacy => Profile::Legacy,
            crate::sim::quota::Rules::Off => Profile::Off,
        };
        let client = Client::new(
            ClientConfig {
                base_url: handle.base_url.clone(),
                user,
                max_wait: c.max_wait,
                idle_timeout: c.idle_timeout,
                ..ClientConfig::default()
            },
            Arc::new(FixedToken::new(handle.sim.config.token.clone())),
        )?;
        return Ok(Connection {
            client: Arc::new(client),
            profile,
            window: handle.sim.quota.window,
            pacer: None,
            sim: Some(handle),
        });
    }
    if let Some(url) = &c.endpoint {
        let base_url = endpoint_url(url)?;
        // A saved account's tokens are Google credentials: they go to
        // another endpoint only when the account is named.
        let tokens: Arc<dyn TokenSource> = match &c.account {
            Some(name) => {
                check_token_endpoint(url, &format!("account {name}'s"))?;
                crate::app_auth::account_tokens(name, c.user.as_deref()).await?
            }
            None => {
                let token = env_token().ok_or_else(|| {
                    UsageError(
                        "--endpoint needs an access token in GMAILSCRIPT_TOKEN (a simulator started with `gmailscript sim` accepts sim-token), or --account NAME"
                            .into(),
                    )
                })?;
                Arc::new(FixedToken::new(token))
            }
        };
        let who = match &c.account {
            Some(name) => format!("account:{name} endpoint:{base_url}"),
            None => format!("endpoint:{base_url}"),
        };
        let hint = match &c.account {
            Some(name) => account_hint(name),
            None => format!(
                "the token in {TOKEN_VAR} was refused: it is wrong or has expired; set {TOKEN_VAR} \
                 to a valid access token (a simulator started with `gmailscript sim` accepts \
                 sim-token), or use --account NAME"
            ),
        };
        // Without pacing (--quota off) the window does not matter: the
        // endpoint is not asked.
        let window = match c.quota_window {
            Some(w) => w,
            None if c.quota == Profile::Off => GMAIL_WINDOW,
            None => sim_window(&base_url).await.unwrap_or(GMAIL_WINDOW),
        };
        return token_connection(c, base_url, user, tokens, &who, hint, window).await;
    }
    let name = match &c.account {
        Some(name) => name.clone(),
        None => crate::app_auth::default_account()?.ok_or_else(|| {
            UsageError(
                "no Google account is set up yet: log in with `gmailscript auth login --client-secret FILE` \
                 (docs/accounts.md says how to get the file), or try the built-in simulator with --sim \
                 (or a running one with --endpoint URL and GMAILSCRIPT_TOKEN)"
                    .into(),
            )
        })?,
    };
    let tokens = crate::app_auth::account_tokens(&name, c.user.as_deref()).await?;
    let who = format!("account:{name}");
    let hint = account_hint(&name);
    let window = c.quota_window.unwrap_or(GMAIL_WINDOW);
    token_connection(
        c,
        GOOGLE_BASE_URL.to_string(),
        user,
        tokens,
        &who,
        hint,
        window,
    )
    .await
}

/// Gmail's quota window.
pub(crate) const GMAIL_WINDOW: Duration = Duration::from_secs(60);

/// The header with which a gmailscript simulator says its quota window
/// (src/sim writes it; the name is all the two share).
const SIM_WINDOW_HEADER: &str = "x-gmailscript-sim-window";

/// The quota window a gmailscript simulator at `base_url` announces, if it
/// is one: asked only of plain http on this machine, with no token, from
/// its own `/_sim/stats`. Anything else (Gmail, another server, no answer
/// within 2 s, a window that is not a duration) is `None`: Gmail's window.
pub(crate) async fn sim_window(base_url: &str) -> Option<Duration> {
    let url = url::Url::parse(base_url).ok()?;
    let loopback = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
    };
    if url.scheme() != "http" || !loopback {
        return None;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let resp = http
        .get(format!("{base_url}/_sim/stats"))
        .send()
        .await
        .ok()?;
    let text = resp.headers().get(SIM_WINDOW_HEADER)?.to_str().ok()?;
    let window = crate::duration::parse_duration(text).ok()?;
    // A window of nothing, or of more than a day, is not one to pace for.
    if window.is_zero() || window > Duration::from_secs(86_400) {
        return None;
    }
    tracing::info!(
        "quota window {}, as the gmailscript simulator at {base_url} announces (--quota-window overrides it)",
        text
    );
    Some(window)
}

/// What a 401 through a saved account says: whose login, and how to renew it.
pub(crate) fn account_hint(name: &str) -> String {
    format!(
        "the token of account {name} was refused even after renewing it; log in again with \
         `gmailscript auth login --account {name}` (a service account: `gmailscript auth \
         service-account --account {name} --key FILE`)"
    )
}

/// `--quota auto`: the pace learned before for this account (or endpoint)
/// and mailbox, with no probing; else a pacer that finds it from the 2026
/// budget up and writes it down the moment a refusal shows it.
pub(crate) fn auto_pacer(who: &str, mailbox: &str, window: Duration) -> Pacer {
    let Some(dir) = crate::quota_memory::data_dir() else {
        tracing::warn!("no data directory: the quota learned is not kept for the next run");
        return Pacer::new(&Profile::Auto, window);
    };
    let memory = QuotaMemory::new(&dir, who, mailbox, window);
    if let Some(units) = memory.get() {
        tracing::info!(
            "quota: {units} units per window, as learned before ({})",
            memory.path().display()
        );
        return Pacer::new(&Profile::Units(units), window);
    }
    let learn = Learn {
        start: Profile::P2026.per_user().unwrap_or(6_000),
        ceiling: LEARN_CEILING,
    };
    Pacer::learning(learn, window).on_learned(move |units| match memory.put(units) {
        Ok(()) => tracing::info!(
            "quota: learned {units} units per window; kept in {}",
            memory.path().display()
        ),
        Err(e) => tracing::warn!(
            "quota: learned {units} units per window but cannot keep it in {}: {e}",
            memory.path().display()
        ),
    })
}

/// GMAILSCRIPT_TOKEN as it was at start; `main` takes it out of the
/// environment (see [`set_env_token`]).
static ENV_TOKEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The name of the variable that carries a token for `--endpoint`.
pub const TOKEN_VAR: &str = "GMAILSCRIPT_TOKEN";

/// Keeps the token `main` read from GMAILSCRIPT_TOKEN before it removed
/// the variable, so that neither a script (`os.getenv`) nor a program it
/// starts finds the token in the environment.
pub fn set_env_token(token: Option<String>) {
    let _ = ENV_TOKEN.set(token);
}

/// The token of GMAILSCRIPT_TOKEN: the one `main` kept, else (a caller
/// of the library that did not go through `main`) the variable itself.
fn env_token() -> Option<String> {
    match ENV_TOKEN.get() {
        Some(t) => t.clone(),
        None => std::env::var(TOKEN_VAR).ok(),
    }
}

/// A connection through `tokens`. The first token is fetched now, so a
/// login that no longer works is one clear line before the script starts.
async fn token_connection(
    c: &ConnArgs,
    base_url: String,
    user: String,
    tokens: Arc<dyn TokenSource>,
    who: &str,
    auth_hint: String,
    window: Duration,
) -> anyhow::Result<Connection> {
    let pacer = (c.quota == Profile::Auto).then(|| Arc::new(auto_pacer(who, &user, window)));
    let client = Client::new(
        ClientConfig {
            base_url,
            user,
            max_wait: c.max_wait,
            idle_timeout: c.idle_timeout,
            auth_hint: Some(auth_hint),
            ..ClientConfig::default()
        },
        tokens,
    )?;
    client.token().await.map_err(|e| UsageError(e.message))?;
    Ok(Connection {
        client: Arc::new(client),
        profile: c.quota.clone(),
        window,
        pacer,
        sim: None,
    })
}

/// Ctrl-C (or SIGTERM, as from `kill` or a service manager) once: stop
/// cleanly (batches in flight finish, state is flushed). Twice: exit at
/// once.
pub(crate) fn watch_interrupts() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut signals = Signals::new();
        let Some(first) = signals.next().await else {
            return;
        };
        eprintln!(
            "\ngmailscript: {first}: stopping after the batches in flight (Ctrl-C again to quit now)"
        );
        let _ = tx.send(true);
        if signals.next().await.is_some() {
            std::process::exit(EXIT_INTERRUPTED as i32);
        }
    });
    rx
}

/// Ctrl-C and, on Unix, SIGTERM, as one stream of stop requests.
pub struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub fn new() -> Signals {
        Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// The next request to stop, named; None if signals cannot be caught.
    pub async fn next(&mut self) -> Option<&'static str> {
        #[cfg(unix)]
        if let Some(term) = self.term.as_mut() {
            return tokio::select! {
                r = tokio::signal::ctrl_c() => r.ok().map(|()| "interrupted (Ctrl-C)"),
                _ = term.recv() => Some("terminated (SIGTERM)"),
            };
        }
        tokio::signal::ctrl_c()
            .await
            .ok()
            .map(|()| "interrupted (Ctrl-C)")
    }
}

impl Default for Signals {
    fn default() -> Self {
        Signals::new()
    }
}

pub async fn run(args: RunArgs, verbose: u8) -> anyhow::Result<u8> {
    if args.domain.users.is_some() {
        return crate::app_domain::run(args, verbose).await;
    }
    let Some(path) = args.report.clone() else {
        return run_script(args, verbose, &mut Outcome::default()).await;
    };
    // Made now, so a report that cannot be written is said before any work.
    let report = RunReport::start(&path)?;
    let mut outcome = Outcome::default();
    let user = args.conn.user.clone().unwrap_or_else(|| "me".to_string());
    let result = run_script(args, verbose, &mut outcome).await;
    let (code, error) = match &result {
        Ok(code) => (*code, summary(&outcome).1),
        Err(e) => (EXIT_USAGE, Some(format!("{e:#}"))),
    };
    if let Err(e) = report.finish(&user, &outcome, code, error.as_deref()) {
        eprintln!("gmailscript: {e}");
    }
    result
}

/// `--report FILE`: the run's summary as one JSON line (docs/report.md).
struct RunReport {
    path: std::path::PathBuf,
    started: chrono::DateTime<chrono::Utc>,
    clock: std::time::Instant,
}

impl RunReport {
    fn start(path: &std::path::Path) -> anyhow::Result<RunReport> {
        std::fs::write(path, b"").map_err(|e| {
            UsageError(format!("--report {}: cannot write it: {e}", path.display()))
        })?;
        Ok(RunReport {
            path: path.to_path_buf(),
            started: chrono::Utc::now(),
            clock: std::time::Instant::now(),
        })
    }

    fn finish(&self, user: &str, o: &Outcome, code: u8, error: Option<&str>) -> anyhow::Result<()> {
        let status = match code {
            EXIT_OK => "ok",
            EXIT_STOPPED | EXIT_INTERRUPTED => "stopped",
            _ => "failed",
        };
        let line = report_line(
            user,
            status,
            o,
            code,
            error,
            self.started,
            self.clock.elapsed(),
        );
        // Written beside it, then renamed: a reader never sees half a line.
        let tmp = self.path.with_extension("report-tmp");
        std::fs::write(&tmp, format!("{line}\n"))
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| anyhow::anyhow!("--report {}: cannot write it: {e}", self.path.display()))
    }
}

/// One mailbox's line of a `--report` (docs/report.md).
pub(crate) fn report_line(
    user: &str,
    status: &str,
    o: &Outcome,
    code: u8,
    error: Option<&str>,
    started: chrono::DateTime<chrono::Utc>,
    elapsed: Duration,
) -> serde_json::Value {
    let rfc3339 =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let ended = started + chrono::Duration::from_std(elapsed).unwrap_or_default();
    let seconds = (elapsed.as_secs_f64() * 1000.0).round() / 1000.0;
    serde_json::json!({
        "user": user,
        "status": status,
        "listed": o.ok + o.skipped + o.failed + o.not_done,
        "ok": o.ok,
        "skipped": o.skipped,
        "failed": o.failed,
        "not_done": o.not_done,
        "already_done": o.already_done,
        "units": o.units,
        "exit_code": code,
        "error": error,
        "started": rfc3339(started),
        "ended": rfc3339(ended),
        "seconds": seconds,
        "duration_seconds": seconds,
    })
}

async fn run_script(args: RunArgs, verbose: u8, outcome_out: &mut Outcome) -> anyhow::Result<u8> {
    let script = crate::scripts::Script::resolve(&args.script)?;
    tracing::info!("running {}", script.describe());
    let conn = connect(&args.conn).await?;
    let host = Host::new(conn.host_config(args.dry_run, args.quiet, verbose, watch_interrupts()))
        .map_err(|e| anyhow::anyhow!("cannot set up Lua: {e}"))?;
    let local = tokio::task::LocalSet::new();
    let result = local.run_until(host.run_script(&script, &args.args)).await;
    let mut outcome = host.ctx.outcome.borrow().clone();
    // Ctrl-C ended a wait or a batch the script went past: still interrupted.
    outcome.cancelled |= host.ctx.cancelled();
    outcome.units = host.ctx.runner.pacer.spent();
    *outcome_out = outcome.clone();
    drop(host);
    if let Some(sim) = conn.sim {
        sim.stop().await;
    }
    if let Err(e) = result {
        eprintln!("gmailscript: script error: {}", e.message);
        for line in e.traceback_lines() {
            eprintln!("{line}");
        }
        outcome_out.script_error = Some(e.message);
        return Ok(EXIT_USAGE);
    }
    Ok(exit_code(&outcome))
}

/// The exit code and summary line for how the script's work went.
fn exit_code(o: &Outcome) -> u8 {
    if watch_ended(o) {
        eprintln!("gmailscript: stopped; the watch's mark is saved (run again to go on from it)");
        return EXIT_OK;
    }
    let (code, line) = summary(o);
    if let Some(line) = line {
        eprintln!("gmailscript: {line}");
    }
    code
}

/// Stopping is how a watch ends (systemd, docker stop, Ctrl-C): not an
/// interruption.
fn watch_ended(o: &Outcome) -> bool {
    o.cancelled
        && o.watch_stopped
        && o.stopped.is_none()
        && o.failed == 0
        && o.script_error.is_none()
}

/// The exit code, and the line that says why when it is not 0.
pub(crate) fn summary(o: &Outcome) -> (u8, Option<String>) {
    if let Some(e) = &o.script_error {
        return (EXIT_USAGE, Some(format!("script error: {e}")));
    }
    if watch_ended(o) {
        return (EXIT_OK, None);
    }
    if o.cancelled {
        return (
            EXIT_INTERRUPTED,
            Some("interrupted; what was done is saved (run again to resume)".into()),
        );
    }
    if let Some(why) = &o.stopped {
        return (EXIT_STOPPED, Some(why.clone()));
    }
    if o.failed > 0 {
        let line = match &o.failures_in {
            Some(p) => format!(
                "{} item(s) failed; recorded in {} (state:failures() lists them; a rerun retries them)",
                o.failed,
                p.display()
            ),
            None => format!(
                "{} item(s) failed (the batch report's `failures` lists them)",
                o.failed
            ),
        };
        return (EXIT_FAILED_ITEMS, Some(line));
    }
    (EXIT_OK, None)
}
