//! `run --users`: one policy over many mailboxes of a Workspace domain.
//!
//! Each mailbox runs the script in a Lua state of its own (a [`Host`]),
//! with `gmail.user` set to its address and its own per-user pacer; every
//! pacer also reserves from one [`ProjectBudget`]. Lua states are not
//! `Send`: the mailboxes are tasks of one `LocalSet`, up to
//! `--parallel-users` at once, their engine I/O overlapping on one thread.
//! A mailbox that cannot be processed is reported and the run goes on.

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{watch, Semaphore};

use crate::app_auth::Delegation;
use crate::auth::{AuthError, FixedToken, Secret, TokenFuture, TokenSource};
use crate::cli::{bad_address, RunArgs, Shard, UsersArg};
use crate::endpoint::{check_token_endpoint, endpoint_url};
use crate::exit::{UsageError, EXIT_FAILED_ITEMS, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE};
use crate::gmail::backoff::Backoff;
use crate::gmail::client::{ClientConfig, GOOGLE_BASE_URL};
use crate::gmail::directory::{self, DirUser, UserQuery, DIRECTORY_BASE_URL, SCOPE_DIRECTORY};
use crate::gmail::quota::{Pacer, Profile, ProjectBudget};
use crate::gmail::{ApiError, Client, ErrorClass, Request};
use crate::lua::{Ctx, Host, HostConfig, Outcome};

/// Most addresses a `--users @FILE` may hold.
const MAX_FILE_USERS: usize = 1_000_000;
/// Largest `--users @FILE` read.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Where each mailbox's tokens come from.
enum Tokens {
    /// The in-process simulator: it mints a token for any of its users.
    Sim(Arc<crate::sim::Sim>),
    /// A service account acting for each user (domain-wide delegation).
    Account(Delegation),
}

/// A simulator user's tokens, minted by the in-process simulator (a new
/// one after a 401), as a delegated service account's would be.
struct SimUserTokens {
    sim: Arc<crate::sim::Sim>,
    email: String,
    token: Mutex<Option<Secret>>,
}

impl SimUserTokens {
    fn mint(&self) -> Secret {
        let principal = crate::sim::auth::Principal {
            email: self.email.clone(),
            no_mailbox: false,
            scopes: vec![crate::sim::auth::SCOPE_FULL.to_string()],
        };
        let (token, _) = self.sim.auth.mint(principal, None);
        let token = Secret::new(token);
        *self.token.lock().unwrap() = Some(token.clone());
        token
    }
}

impl TokenSource for SimUserTokens {
    fn token(&self) -> TokenFuture<'_> {
        let have = self.token.lock().unwrap().clone();
        Box::pin(async move { Ok::<_, AuthError>(have.unwrap_or_else(|| self.mint())) })
    }
    fn refresh(&self, _stale: &Secret) -> TokenFuture<'_> {
        Box::pin(async move { Ok(self.mint()) })
    }
}

impl Tokens {
    async fn for_user(&self, email: &str) -> Result<Arc<dyn TokenSource>, String> {
        match self {
            Tokens::Sim(sim) => Ok(Arc::new(SimUserTokens {
                sim: sim.clone(),
                email: email.to_string(),
                token: Mutex::new(None),
            })),
            Tokens::Account(d) => d.tokens(email, None).await.map_err(|e| e.0),
        }
    }
}

/// What every mailbox of the run shares.
struct Setup {
    base_url: String,
    directory_url: String,
    profile: Profile,
    window: Duration,
    tokens: Tokens,
    /// The account (and endpoint) a learned quota is remembered under.
    who: String,
    auth_hint: Option<String>,
    sim: Option<crate::sim::SimHandle>,
}

async fn setup(args: &RunArgs) -> anyhow::Result<Setup> {
    let c = &args.conn;
    if c.sim {
        let conn = crate::app::connect(c).await?;
        let handle = conn.sim.expect("--sim starts a simulator");
        return Ok(Setup {
            base_url: handle.base_url.clone(),
            directory_url: handle.base_url.clone(),
            profile: conn.profile,
            window: conn.window,
            tokens: Tokens::Sim(handle.sim.clone()),
            who: "sim".into(),
            auth_hint: None,
            sim: Some(handle),
        });
    }
    let name = match &c.account {
        Some(name) => name.clone(),
        None if c.endpoint.is_some() => {
            return Err(UsageError(
                "--users acts for each user of a domain: with --endpoint it needs a service \
                 account (--account NAME), not the one token of GMAILSCRIPT_TOKEN; or try it \
                 offline with --sim --sim-domain example.com"
                    .into(),
            )
            .into())
        }
        None => crate::app_auth::default_account()?.ok_or_else(|| {
            UsageError(
                "--users needs a service account with domain-wide delegation: gmailscript auth \
                 service-account --key FILE --subject ADMIN --account corp, then --account corp \
                 (or try it offline with --sim --sim-domain example.com)"
                    .into(),
            )
        })?,
    };
    let delegation = Delegation::open(&name)?;
    let (base_url, directory_url, who, window) = match &c.endpoint {
        Some(url) => {
            check_token_endpoint(url, &format!("account {name}'s"))?;
            let base = endpoint_url(url)?;
            let window = match c.quota_window {
                Some(w) => w,
                None if c.quota == Profile::Off => crate::app::GMAIL_WINDOW,
                None => crate::app::sim_window(&base)
                    .await
                    .unwrap_or(crate::app::GMAIL_WINDOW),
            };
            let who = format!("account:{name} endpoint:{base}");
            (base.clone(), base, who, window)
        }
        None => (
            GOOGLE_BASE_URL.to_string(),
            DIRECTORY_BASE_URL.to_string(),
            format!("account:{name}"),
            c.quota_window.unwrap_or(crate::app::GMAIL_WINDOW),
        ),
    };
    Ok(Setup {
        base_url,
        directory_url,
        profile: c.quota.clone(),
        window,
        tokens: Tokens::Account(delegation),
        who,
        auth_hint: Some(crate::app::account_hint(&name)),
        sim: None,
    })
}

/// `--users @FILE`: one address a line; blank lines and `#` comments are
/// ignored; a bad address is named with its file and line.
pub(crate) fn read_users_file(path: &Path) -> Result<Vec<String>, UsageError> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| UsageError(format!("--users @{shown}: cannot read it: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(UsageError(format!(
            "--users @{shown}: {} bytes is more than a list of users needs (at most {MAX_FILE_BYTES})",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| UsageError(format!("--users @{shown}: cannot read it: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| UsageError(format!("--users @{shown}: not UTF-8 text")))?;
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let a = line.split('#').next().unwrap_or("").trim();
        if a.is_empty() {
            continue;
        }
        if let Some(why) = bad_address(a) {
            return Err(UsageError(format!(
                "{shown}:{}: {:?} is not an email address ({why}); one address a line, # for comments",
                i + 1,
                a.chars().take(80).collect::<String>()
            )));
        }
        if users.len() >= MAX_FILE_USERS {
            return Err(UsageError(format!(
                "--users @{shown}: more than {MAX_FILE_USERS} addresses"
            )));
        }
        users.push(a.to_lowercase());
    }
    if users.is_empty() {
        return Err(UsageError(format!(
            "--users @{shown}: no address in it (one a line; # starts a comment)"
        )));
    }
    Ok(users)
}

/// The shard this process takes: `--shard I/N`, or JOB_COMPLETION_INDEX
/// (0-based, as a Kubernetes Indexed Job sets it) of `--shards N`.
fn shard_of(shard: Option<Shard>, shards: Option<u32>) -> Result<Option<Shard>, UsageError> {
    shard_from(shard, shards, std::env::var("JOB_COMPLETION_INDEX").ok())
}

fn shard_from(
    shard: Option<Shard>,
    shards: Option<u32>,
    index: Option<String>,
) -> Result<Option<Shard>, UsageError> {
    if shard.is_some() {
        return Ok(shard);
    }
    let Some(count) = shards else {
        return Ok(None);
    };
    let Some(index) = index else {
        return Err(UsageError(format!(
            "--shards {count} takes this process's shard from JOB_COMPLETION_INDEX (set by a \
             Kubernetes Indexed Job), which is not set; give --shard I/{count} instead"
        )));
    };
    match index.trim().parse::<u32>() {
        Ok(i) if i < count => Ok(Some(Shard {
            index: i + 1,
            count,
        })),
        _ => Err(UsageError(format!(
            "JOB_COMPLETION_INDEX={index:?} is not a shard index of --shards {count} (0 to {})",
            count - 1
        ))),
    }
}

/// Whether `email` falls in `shard`: a stable hash (FNV-1a of the
/// lower-case address), the same on every machine and every run.
fn in_shard(email: &str, shard: &Shard) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in email.to_lowercase().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % u64::from(shard.count) == u64::from(shard.index - 1)
}

/// How one mailbox went.
struct Mailbox {
    user: String,
    status: &'static str,
    outcome: Outcome,
    code: u8,
    error: Option<String>,
    started: chrono::DateTime<chrono::Utc>,
    elapsed: Duration,
}

impl Mailbox {
    fn new(user: &str, status: &'static str, code: u8, error: Option<String>) -> Mailbox {
        Mailbox {
            user: user.to_string(),
            status,
            outcome: Outcome::default(),
            code,
            error,
            started: chrono::Utc::now(),
            elapsed: Duration::ZERO,
        }
    }
}

/// The report file, a line per mailbox as each ends.
struct Report {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl Report {
    fn create(path: &Path) -> Result<Report, UsageError> {
        let file = std::fs::File::create(path).map_err(|e| {
            UsageError(format!("--report {}: cannot write it: {e}", path.display()))
        })?;
        Ok(Report {
            path: path.to_path_buf(),
            file,
        })
    }

    fn write(&mut self, m: &Mailbox) {
        let line = crate::app::report_line(
            &m.user,
            m.status,
            &m.outcome,
            m.code,
            m.error.as_deref(),
            m.started,
            m.elapsed,
        );
        // One write a line: a reader never sees half of one.
        let r = self
            .file
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| self.file.flush());
        if let Err(e) = r {
            eprintln!(
                "gmailscript: --report {}: cannot write it: {e}",
                self.path.display()
            );
        }
    }
}

/// The run's progress: one bar for the mailboxes, a line per active one.
struct Progress {
    multi: Option<MultiProgress>,
    overall: ProgressBar,
    active: RefCell<Vec<(String, Rc<Ctx>, ProgressBar)>>,
    messages_done: Cell<u64>,
    started: Instant,
}

impl Progress {
    fn new(total: usize, quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let shown = !quiet && std::io::stderr().is_terminal();
        let multi = shown.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let overall = match &multi {
            Some(m) => m.add(ProgressBar::new(total as u64)),
            None => ProgressBar::hidden(),
        };
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {pos}/{len} mailboxes [{bar:30}] {msg}")
        {
            overall.set_style(style.progress_chars("=> "));
        }
        crate::lua::progress::set_multi(multi.clone());
        Progress {
            multi,
            overall,
            active: RefCell::new(Vec::new()),
            messages_done: Cell::new(0),
            started: Instant::now(),
        }
    }

    fn begin(&self, user: &str, ctx: Rc<Ctx>) {
        let line = match &self.multi {
            Some(m) => m.add(ProgressBar::new_spinner()),
            None => ProgressBar::hidden(),
        };
        line.set_message(format!("{user}: starting"));
        self.active.borrow_mut().push((user.to_string(), ctx, line));
    }

    fn end(&self, user: &str, messages: u64) {
        self.active.borrow_mut().retain(|(u, _, line)| {
            if u == user {
                line.finish_and_clear();
            }
            u != user
        });
        self.messages_done.set(self.messages_done.get() + messages);
        self.overall.inc(1);
        self.tick();
    }

    /// Redraw: each active mailbox's batch, and the messages of all.
    fn tick(&self) {
        let mut messages = self.messages_done.get();
        for (user, ctx, line) in self.active.borrow().iter() {
            let bar = ctx.batch_bar.borrow().clone();
            let (pos, len) = bar.map_or((0, None), |b| (b.position(), b.length()));
            messages += pos;
            line.set_message(match len {
                Some(n) => format!("{user}: {pos}/{n} messages"),
                None => format!("{user}: {pos} messages"),
            });
            line.tick();
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.overall.set_message(format!(
            "{messages} messages · {:.0}/s",
            messages as f64 / secs
        ));
    }

    fn finish(&self) {
        for (_, _, line) in self.active.borrow_mut().drain(..) {
            line.finish_and_clear();
        }
        self.overall.finish_and_clear();
        crate::lua::progress::set_multi(None);
    }
}

/// The users to run over, in order, each once, in this process's shard.
async fn users(
    args: &RunArgs,
    s: &Setup,
    shard: Option<&Shard>,
) -> anyhow::Result<(Vec<String>, std::collections::HashSet<String>)> {
    let d = &args.domain;
    let mut known_suspended = std::collections::HashSet::new();
    let listed: Vec<String> = match d.users.as_ref().expect("a --users run") {
        UsersArg::List(list) => list.clone(),
        UsersArg::File(path) => read_users_file(path)?,
        UsersArg::All => {
            let all = list_directory(args, s).await?;
            let (suspended, active): (Vec<DirUser>, Vec<DirUser>) =
                all.into_iter().partition(|u| u.suspended);
            if !suspended.is_empty() && !d.include_suspended {
                eprintln!(
                    "gmailscript: {} suspended user(s) left out (--include-suspended takes them too)",
                    suspended.len()
                );
            }
            let mut users: Vec<String> = active.into_iter().map(|u| u.email).collect();
            if d.include_suspended {
                known_suspended.extend(suspended.iter().map(|u| u.email.clone()));
                users.extend(suspended.into_iter().map(|u| u.email));
            }
            users
        }
    };
    let mut seen = std::collections::HashSet::new();
    let users = listed
        .into_iter()
        .filter(|u| seen.insert(u.clone()))
        .filter(|u| shard.is_none_or(|sh| in_shard(u, sh)))
        .collect();
    Ok((users, known_suspended))
}

async fn list_directory(args: &RunArgs, s: &Setup) -> anyhow::Result<Vec<DirUser>> {
    let tokens: Arc<dyn TokenSource> = match &s.tokens {
        Tokens::Sim(sim) => Arc::new(FixedToken::new(sim.config.token.clone())),
        Tokens::Account(d) => {
            let Some(admin) = d.subject.clone() else {
                return Err(UsageError(
                    "--users all lists the domain's users as the service account's saved \
                     subject, an administrator; this account has none: save one with gmailscript \
                     auth service-account --key FILE --subject ADMIN --account NAME"
                        .into(),
                )
                .into());
            };
            d.tokens(&admin, Some(&[SCOPE_DIRECTORY.to_string()]))
                .await?
        }
    };
    let client = Client::new(
        ClientConfig {
            base_url: s.directory_url.clone(),
            max_wait: args.conn.max_wait,
            idle_timeout: args.conn.idle_timeout,
            auth_hint: s.auth_hint.clone(),
            ..ClientConfig::default()
        },
        tokens,
    )?;
    let q = UserQuery {
        query: args.domain.users_query.clone(),
    };
    directory::list_users(&client, &q, &Backoff::default())
        .await
        .map_err(|e| UsageError(format!("cannot list the domain's users: {e}")).into())
}

pub(crate) async fn run(args: RunArgs, verbose: u8) -> anyhow::Result<u8> {
    let script = crate::scripts::Script::resolve(&args.script)?;
    let shard = shard_of(args.domain.shard, args.domain.shards)?;
    let mut report = args.report.as_deref().map(Report::create).transpose()?;
    let s = setup(&args).await?;
    let (users, suspended) = users(&args, &s, shard.as_ref()).await?;
    if users.is_empty() {
        if let Some(sim) = s.sim {
            sim.stop().await;
        }
        return Err(UsageError(match shard {
            Some(sh) => format!(
                "no user to run over in shard {}/{} (the list has fewer users than shards)",
                sh.index, sh.count
            ),
            None => "no user to run over (the Directory listed none)".into(),
        })
        .into());
    }
    tracing::info!(
        "running {} over {} mailbox(es), {} at once",
        script.describe(),
        users.len(),
        args.domain.parallel_users
    );
    let budget = match (args.domain.project_quota.0, &s.profile) {
        (_, Profile::Off) | (None, _) => None,
        (Some(units), _) => {
            let share = units / u64::from(shard.map_or(1, |sh| sh.count));
            Some(Arc::new(ProjectBudget::new(share.max(1), s.window)))
        }
    };
    let cancel = crate::app::watch_interrupts();
    let progress = Rc::new(Progress::new(users.len(), args.quiet));
    let report_cell = Rc::new(RefCell::new(report.take()));
    let ctx = Rc::new(RunCtx {
        args,
        verbose,
        script,
        setup: s,
        budget,
        cancel: cancel.clone(),
        progress: progress.clone(),
        report: report_cell.clone(),
        suspended,
    });
    let local = tokio::task::LocalSet::new();
    let results = local.run_until(run_all(ctx.clone(), users)).await;
    progress.finish();
    let interrupted = *cancel.borrow();
    print_table(&results);
    if let Some(r) = report_cell.borrow_mut().as_mut() {
        for m in results
            .iter()
            .filter(|m| m.error.as_deref() == Some(NOT_STARTED))
        {
            r.write(m);
        }
    }
    let ctx = Rc::try_unwrap(ctx).ok();
    if let Some(sim) = ctx.and_then(|c| c.setup.sim) {
        sim.stop().await;
    }
    // A mailbox without Gmail is skipped, as GAM warns and goes on: only
    // failed or stopped mailboxes make the run's exit code 1.
    let bad = results
        .iter()
        .filter(|m| m.status == "failed" || m.status == "stopped")
        .count();
    if interrupted {
        eprintln!(
            "gmailscript: interrupted; what was done is saved (run again to resume: mailboxes done pass quickly)"
        );
        return Ok(EXIT_INTERRUPTED);
    }
    if bad > 0 {
        eprintln!(
            "gmailscript: {bad} of {} mailbox(es) failed (the table above says why)",
            results.len()
        );
        return Ok(EXIT_FAILED_ITEMS);
    }
    Ok(EXIT_OK)
}

const NOT_STARTED: &str = "not started (interrupted)";

struct RunCtx {
    args: RunArgs,
    verbose: u8,
    script: crate::scripts::Script,
    setup: Setup,
    budget: Option<Arc<ProjectBudget>>,
    cancel: watch::Receiver<bool>,
    progress: Rc<Progress>,
    report: Rc<RefCell<Option<Report>>>,
    /// Users the Directory lists as suspended (taken with --include-suspended).
    suspended: std::collections::HashSet<String>,
}

async fn run_all(ctx: Rc<RunCtx>, users: Vec<String>) -> Vec<Mailbox> {
    let slots = Arc::new(Semaphore::new(ctx.args.domain.parallel_users as usize));
    let ticker = {
        let progress = ctx.progress.clone();
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                progress.tick();
            }
        })
    };
    let mut handles = Vec::with_capacity(users.len());
    let mut cancel = ctx.cancel.clone();
    for user in users {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.ok(),
            _ = cancel.wait_for(|c| *c) => None,
        };
        let Some(permit) = permit.filter(|_| !*ctx.cancel.borrow()) else {
            handles.push(Err(user));
            continue;
        };
        let c = ctx.clone();
        handles.push(Ok(tokio::task::spawn_local(async move {
            let m = run_mailbox(&c, &user).await;
            drop(permit);
            if let Some(r) = c.report.borrow_mut().as_mut() {
                r.write(&m);
            }
            c.progress.end(&user, m.outcome.ok);
            m
        })));
    }
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(match h {
            Ok(h) => match h.await {
                Ok(m) => m,
                Err(e) => Mailbox::new("?", "failed", EXIT_USAGE, Some(format!("crashed: {e}"))),
            },
            Err(user) => Mailbox::new(&user, "stopped", EXIT_INTERRUPTED, Some(NOT_STARTED.into())),
        });
    }
    ticker.abort();
    results
}

/// The second probe: the first message of the mailbox, read. A suspended
/// user's profile and listing still answer, but reading a message fails
/// (500 backendError, which never heals, or 403): the mailbox is reported
/// at once rather than after every message's retries. A few tries, so a
/// passing 500 is not taken for it.
async fn probe_messages(client: &Client) -> Result<(), ApiError> {
    let tries = Backoff {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(2),
        attempts: 3,
        jitter: true,
    };
    let list = Request::list_messages(
        &crate::gmail::request::ListQuery {
            page_size: 1,
            include_spam_trash: true,
            ..Default::default()
        },
        None,
    );
    let v = client.call_json_retrying(&list, &tries).await?;
    let Some(id) = v["messages"][0]["id"].as_str() else {
        return Ok(());
    };
    let get = Request::get_message(id, crate::gmail::request::Format::Minimal, &[]);
    client.call_retrying(&get, &tries).await.map(|_| ())
}

/// Why a mailbox cannot be processed, from its getProfile probe: skipped
/// (no Gmail) or failed (delegation refused, forbidden, unreachable).
fn classify(e: &ApiError) -> (&'static str, String) {
    if e.reason == "failedPrecondition" && e.message.contains("Mail service not enabled") {
        return ("skipped", "no Gmail (Mail service not enabled)".into());
    }
    match e.class {
        ErrorClass::Auth => ("failed", format!("delegation refused: {}", e.brief())),
        ErrorClass::Forbidden => ("failed", format!("forbidden: {}", e.brief())),
        _ => ("failed", e.to_string()),
    }
}

async fn run_mailbox(c: &RunCtx, user: &str) -> Mailbox {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let mut m = probe_and_run(c, user).await;
    m.started = started;
    m.elapsed = clock.elapsed();
    m
}

async fn probe_and_run(c: &RunCtx, user: &str) -> Mailbox {
    let s = &c.setup;
    let failed = |status, code, error: String| Mailbox::new(user, status, code, Some(error));
    let tokens = match s.tokens.for_user(user).await {
        Ok(t) => t,
        Err(e) => return failed("failed", EXIT_USAGE, format!("delegation refused: {e}")),
    };
    let client = match Client::new(
        ClientConfig {
            base_url: s.base_url.clone(),
            user: user.to_string(),
            max_wait: c.args.conn.max_wait,
            idle_timeout: c.args.conn.idle_timeout,
            auth_hint: s.auth_hint.clone(),
            ..ClientConfig::default()
        },
        tokens,
    ) {
        Ok(client) => Arc::new(client),
        Err(e) => return failed("failed", EXIT_USAGE, e.to_string()),
    };
    client.watch_cancel(c.cancel.clone());
    // The probe: one unit, and it says whether there is a mailbox at all.
    let probe = Backoff {
        attempts: 3,
        ..Backoff::default()
    };
    match client.call_json_retrying(&Request::profile(), &probe).await {
        Ok(v) => {
            let email = v["emailAddress"].as_str().unwrap_or_default();
            if !email.eq_ignore_ascii_case(user) {
                return failed(
                    "failed",
                    EXIT_USAGE,
                    format!("Gmail answered for {email:?}, not for {user}"),
                );
            }
        }
        Err(e) => {
            if *c.cancel.borrow() {
                return failed("stopped", EXIT_INTERRUPTED, NOT_STARTED.into());
            }
            let (status, why) = classify(&e);
            return failed(status, EXIT_USAGE, why);
        }
    }
    if let Err(e) = probe_messages(&client).await {
        if *c.cancel.borrow() {
            return failed("stopped", EXIT_INTERRUPTED, NOT_STARTED.into());
        }
        let known = c.suspended.contains(user);
        return failed(
            "failed",
            EXIT_USAGE,
            format!(
                "{}its messages cannot be read: {} (Google answers a suspended user so)",
                if known { "suspended: " } else { "" },
                e.brief()
            ),
        );
    }
    let pacer = match s.profile {
        Profile::Auto => crate::app::auto_pacer(&s.who, user, s.window),
        ref p => Pacer::new(p, s.window),
    };
    let pacer = Arc::new(match &c.budget {
        Some(b) => pacer.with_project(b.clone()),
        None => pacer,
    });
    let host = match Host::new(HostConfig {
        client,
        profile: s.profile.clone(),
        window: s.window,
        pacer: Some(pacer.clone()),
        dry_run: c.args.dry_run,
        quiet: c.args.quiet,
        verbose: c.verbose,
        cancel: c.cancel.clone(),
    })
    .and_then(|h| h.set_user(user).map(|()| h))
    {
        Ok(h) => h,
        Err(e) => return failed("failed", EXIT_USAGE, format!("cannot set up Lua: {e}")),
    };
    host.fold_progress();
    c.progress.begin(user, host.ctx.clone());
    let result = host.run_script(&c.script, &c.args.args).await;
    let mut outcome = host.ctx.outcome.borrow().clone();
    outcome.cancelled |= host.ctx.cancelled();
    outcome.units = pacer.spent();
    drop(host);
    let mut m = Mailbox::new(user, "ok", EXIT_OK, None);
    if let Err(e) = result {
        crate::lua::progress::eprint_line(&format!(
            "gmailscript: {user}: script error: {}",
            e.message
        ));
        for line in e.traceback_lines() {
            crate::lua::progress::eprint_line(&line);
        }
        outcome.script_error = Some(e.message);
    }
    let (code, why) = crate::app::summary(&outcome);
    m.code = code;
    m.status = match code {
        EXIT_OK => "ok",
        crate::exit::EXIT_STOPPED | EXIT_INTERRUPTED => "stopped",
        _ => "failed",
    };
    m.error = why;
    m.outcome = outcome;
    m
}

/// The table at the end, on stderr: a row per mailbox.
fn print_table(results: &[Mailbox]) {
    let width = results
        .iter()
        .map(|m| m.user.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    let mut out = String::new();
    out.push_str(&format!(
        "{:<width$}  {:<8}  {:>8}  {:>7}  {:>9}  {:>8}  why\n",
        "user", "result", "ok", "failed", "units", "time"
    ));
    for m in results {
        out.push_str(&format!(
            "{:<width$}  {:<8}  {:>8}  {:>7}  {:>9}  {:>7.1}s  {}\n",
            m.user,
            m.status,
            m.outcome.ok,
            m.outcome.failed,
            m.outcome.units,
            m.elapsed.as_secs_f64(),
            m.error.as_deref().unwrap_or("")
        ));
    }
    let ok = results.iter().filter(|m| m.status == "ok").count();
    out.push_str(&format!("{ok} of {} mailbox(es) ok", results.len()));
    eprintln!("{out}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_user_once() {
        let users: Vec<String> = (0..1000).map(|i| format!("user{i}@example.com")).collect();
        for count in [1, 2, 3, 7] {
            let mut taken = vec![0; users.len()];
            for index in 1..=count {
                let sh = Shard { index, count };
                for (i, u) in users.iter().enumerate() {
                    taken[i] += usize::from(in_shard(u, &sh));
                }
            }
            assert!(taken.iter().all(|&n| n == 1), "{count} shards");
        }
        // Stable: the case of the address does not move it.
        let sh = Shard { index: 1, count: 2 };
        assert_eq!(in_shard("A@X.com", &sh), in_shard("a@x.com", &sh));
    }

    #[test]
    fn the_shard_comes_from_the_job_index() {
        assert_eq!(
            shard_from(None, Some(4), Some("2".into())).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        let e = shard_from(None, Some(4), None).unwrap_err().0;
        assert!(e.contains("JOB_COMPLETION_INDEX"), "{e}");
        let e = shard_from(None, Some(4), Some("4".into())).unwrap_err().0;
        assert!(e.contains("0 to 3"), "{e}");
        assert_eq!(shard_from(None, None, Some("1".into())).unwrap(), None);
    }
}
