//! A local Gmail API simulator: the REST subset a bulk client uses, the
//! batch endpoint, OAuth token endpoint, quota, latency and injected faults.
//!
//! It stands alone: it shares no wire code with the client in `gmail/`, so a
//! bug on one side cannot hide a bug on the other.

mod api;
pub mod auth;
pub mod batch;
mod directory;
mod errors;
pub mod faults;
mod fields;
pub mod generate;
pub mod import;
pub mod mailbox;
mod mbox;
pub mod quota;
mod render;
mod resumable;
pub mod search;
mod server;
mod stats;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

pub use server::{start, SimHandle};

/// The token always accepted for the default user unless `--token` says
/// otherwise.
pub(crate) const DEFAULT_TOKEN: &str = "sim-token";

pub(crate) const DEFAULT_USERS: &[&str] =
    &["me@example.com", "alice@example.com", "bob@example.com"];
pub(crate) const DEFAULT_NO_GMAIL: &[&str] = &["nogmail@example.com"];

/// Most users `--domain-users` may ask for (memory stays bounded: a user
/// costs nothing until its mailbox is first used, but its entry does).
pub(crate) const MAX_DOMAIN_USERS: usize = 100_000;

/// The users of a simulated domain: `admin@DOMAIN` (the default user, an
/// administrator) and `user1@DOMAIN` ... `userN@DOMAIN`.
pub fn domain_users(domain: &str, n: usize) -> Vec<String> {
    std::iter::once(format!("admin@{domain}"))
        .chain((1..=n).map(|i| format!("user{i}@{domain}")))
        .collect()
}

/// How Gmail answers a suspended user's message calls (`--suspended-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SuspendedError {
    /// 500 backendError, which looks transient and never heals
    /// (GAM-team/got-your-back#114).
    #[default]
    Backend,
    /// 403 forbidden "The caller does not have permission"
    /// (GAM-team/got-your-back#258, #116).
    Forbidden,
}

/// The day the simulator's calendar starts unless `--date` says otherwise:
/// 2026-06-01T00:00:00Z. Mail dates, and the ids, history ids and fault
/// draws derived from them, follow it, so a seed means the same mailbox
/// whatever day the simulator runs on.
pub const DEFAULT_START_MS: i64 = 1_780_272_000_000;

/// The simulator's own "now" for mail: its start date plus the time elapsed
/// since it started (monotonic, so a wall-clock jump moves nothing).
#[derive(Debug, Clone)]
struct SimClock {
    start_ms: i64,
    started: Instant,
}

impl SimClock {
    fn new(start_ms: i64) -> SimClock {
        SimClock {
            start_ms,
            started: Instant::now(),
        }
    }

    /// The calendar's start, ms since the epoch.
    fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// Wall-clock time since the simulator's calendar started.
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Simulated now, ms since the epoch.
    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_ms.saturating_add(elapsed)
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// 0 picks any free port.
    pub port: u16,
    pub seed: u64,
    /// Messages generated for each user with Gmail.
    pub messages: usize,
    /// Users with Gmail; the first is the default user.
    pub users: Vec<String>,
    /// Users who exist but have no Gmail ("Mail service not enabled").
    pub no_gmail: Vec<String>,
    /// Suspended users: in the directory with `suspended: true`; their
    /// tokens are issued and their mailboxes listed, but every call that
    /// reads a message or changes anything fails (see `SuspendedError`).
    /// An address not among `users` is added as one.
    pub suspended: Vec<String>,
    pub suspended_error: SuspendedError,
    /// Units per project per minute instead of the profile's 1,200,000
    /// (`--project-quota`), shared by every user.
    pub project_quota: Option<u64>,
    pub quota: quota::Rules,
    /// Quota clock speed-up: the per-minute window lasts 60 s / speed.
    pub speed: f64,
    /// Calls in flight per user before "Too many concurrent requests".
    pub concurrency: u32,
    /// Units per user per second of the quota clock, on top of the minute.
    pub per_second: Option<u64>,
    /// Units per user per quota day.
    pub daily_limit: Option<u64>,
    /// Lockout after a per-user quota refusal, on the quota clock.
    pub rate_penalty: Option<Duration>,
    /// Refused calls spend their units.
    pub charge_refused: bool,
    /// Wall-clock spans after start when the service is down.
    pub outages: Vec<faults::Outage>,
    /// New mail for the default user this often (wall clock).
    pub deliver_every: Option<Duration>,
    /// Most parts a batch may hold (100 on Gmail; 50 for some accounts).
    pub max_batch: usize,
    pub faults: faults::FaultSpec,
    pub slow_delay: Duration,
    /// Service time of one call: latency ± jitter (uniform).
    pub latency: Duration,
    pub jitter: Duration,
    /// Extra service time of a batch request as a whole.
    pub batch_latency: Duration,
    /// Load the default user's mailbox from this mbox instead of generating.
    pub mbox: Option<PathBuf>,
    pub token: String,
    pub token_lifetime: Duration,
    pub history_retain: usize,
    /// Start of the simulator's calendar, ms since the epoch (midnight UTC
    /// of `--date`); generated mail is dated in the three years before it.
    pub start_ms: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            port: 0,
            seed: 1,
            messages: 1000,
            users: DEFAULT_USERS.iter().map(|s| s.to_string()).collect(),
            no_gmail: DEFAULT_NO_GMAIL.iter().map(|s| s.to_string()).collect(),
            suspended: Vec::new(),
            suspended_error: SuspendedError::Backend,
            project_quota: None,
            quota: quota::Rules::P2026,
            speed: 1.0,
            concurrency: 50,
            per_second: None,
            daily_limit: None,
            rate_penalty: None,
            charge_refused: false,
            outages: Vec::new(),
            deliver_every: None,
            max_batch: 100,
            faults: faults::FaultSpec::default(),
            slow_delay: Duration::from_secs(3),
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            batch_latency: Duration::ZERO,
            mbox: None,
            token: DEFAULT_TOKEN.to_string(),
            token_lifetime: Duration::from_secs(3600),
            history_retain: 10_000,
            start_ms: DEFAULT_START_MS,
        }
    }
}

/// One account known to the simulator.
#[derive(Debug)]
pub struct User {
    email: String,
    gmail: bool,
    /// In the directory with `suspended: true`; message calls fail.
    suspended: bool,
    /// Index among users, mixed into the generator seed; 0 is the default
    /// user, the domain's administrator.
    index: u64,
    /// Generated on first use, so extra users cost nothing until asked for.
    mailbox: OnceLock<RwLock<mailbox::Mailbox>>,
}

/// Everything the server shares between connections.
#[derive(Debug)]
pub struct Sim {
    pub config: SimConfig,
    users: HashMap<String, Arc<User>>,
    /// Every user in directory order (by address), for `users.list`.
    directory: Vec<Arc<User>>,
    pub(crate) auth: auth::Auth,
    pub quota: quota::Quota,
    pub(crate) faults: faults::Faults,
    pub(crate) stats: stats::Stats,
    /// Open resumable upload sessions.
    pub(crate) uploads: resumable::Uploads,
    /// The calendar for mail dates, searches by age, new mail and history.
    /// Never the wall clock: that would make the mailbox move with the day.
    clock: SimClock,
    /// The server's own base URL (for the token endpoint's `aud` check).
    base_url: OnceLock<String>,
    /// When the server began to listen: `--outage` times count from here,
    /// after the mailbox is built.
    serving_since: OnceLock<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error(transparent)]
    Mbox(#[from] mbox::MboxError),
    #[error("{0}")]
    Config(String),
}

impl Sim {
    fn new(config: SimConfig) -> Result<Sim, SimError> {
        if config.users.is_empty() {
            return Err(SimError::Config(
                "--users needs at least one address".into(),
            ));
        }
        for u in config
            .users
            .iter()
            .chain(&config.no_gmail)
            .chain(&config.suspended)
        {
            if !u.contains('@') || u.contains(char::is_whitespace) {
                return Err(SimError::Config(format!(
                    "--users / --no-gmail-users / --suspended: {u:?} is not an email address"
                )));
            }
        }
        if let Some(s) = config
            .suspended
            .iter()
            .find(|s| s.eq_ignore_ascii_case(&config.users[0]))
        {
            return Err(SimError::Config(format!(
                "--suspended: {s} is the default user (the administrator who lists the domain); suspend another"
            )));
        }
        if let Some(s) = config
            .no_gmail
            .iter()
            .find(|s| s.eq_ignore_ascii_case(&config.users[0]))
        {
            return Err(SimError::Config(format!(
                "--no-gmail-users: {s} is the default user, who needs Gmail"
            )));
        }
        if let Some(n) = config.project_quota {
            let dearest = quota::Rules::DEAREST;
            if n < dearest {
                return Err(SimError::Config(format!(
                    "--project-quota must be at least {dearest} units (messages.batchModify costs {dearest}; a smaller budget could never admit it)"
                )));
            }
        }
        if !(config.speed.is_finite() && config.speed > 0.0) {
            return Err(SimError::Config("--speed must be a positive number".into()));
        }
        if config.max_batch == 0 || config.max_batch > 1000 {
            return Err(SimError::Config(
                "--max-batch must be from 1 to 1000".into(),
            ));
        }
        if config.concurrency == 0 {
            return Err(SimError::Config("--concurrency must be at least 1".into()));
        }
        if let Some(n) = config.per_second {
            let dearest = quota::Rules::DEAREST;
            if n < dearest {
                return Err(SimError::Config(format!(
                    "--per-second must be at least {dearest} (messages.batchModify costs {dearest} units; a smaller budget could never admit it), or off"
                )));
            }
        }
        if config.daily_limit == Some(0) {
            return Err(SimError::Config(
                "--daily-limit must be at least 1 unit, or off".into(),
            ));
        }
        let mut users: HashMap<String, Arc<User>> = HashMap::new();
        let suspended: std::collections::HashSet<String> =
            config.suspended.iter().map(|s| s.to_lowercase()).collect();
        // --no-gmail-users may name one of the domain's users: it wins.
        let no_gmail: std::collections::HashSet<String> =
            config.no_gmail.iter().map(|s| s.to_lowercase()).collect();
        let all = config
            .users
            .iter()
            .chain(&config.no_gmail)
            // A suspended address not named elsewhere is a Gmail user.
            .chain(&config.suspended);
        for email in all {
            let key = email.to_lowercase();
            let gmail = !no_gmail.contains(&key);
            if users.contains_key(&key) {
                continue;
            }
            let index = users.len() as u64;
            users.insert(
                key.clone(),
                Arc::new(User {
                    email: email.clone(),
                    gmail,
                    suspended: suspended.contains(&key),
                    index,
                    mailbox: OnceLock::new(),
                }),
            );
        }
        let mut directory: Vec<Arc<User>> = users.values().cloned().collect();
        directory.sort_by_cached_key(|u| u.email.to_lowercase());
        let default_user = config.users[0].clone();
        let sim = Sim {
            auth: auth::Auth::new(&default_user, &config.token, config.token_lifetime),
            quota: quota::Quota::new(quota::Limits {
                rules: config.quota,
                speed: config.speed,
                concurrency: config.concurrency,
                per_second: config.per_second,
                daily: config.daily_limit,
                penalty: config.rate_penalty.filter(|p| !p.is_zero()),
                charge_refused: config.charge_refused,
                start_ms: config.start_ms,
                project: config.project_quota,
            }),
            faults: faults::Faults::new(config.faults.clone(), config.seed, config.slow_delay),
            stats: stats::Stats::default(),
            uploads: resumable::Uploads::default(),
            users,
            directory,
            clock: SimClock::new(config.start_ms),
            base_url: OnceLock::new(),
            serving_since: OnceLock::new(),
            config,
        };
        // The default user's mailbox is built now, so a bad mbox fails at
        // start and the first request is not slow.
        let first = sim.user(&default_user).expect("default user exists");
        if let Some(path) = &sim.config.mbox {
            let mut mb = mbox::load_mbox(path, &first.email)?;
            mb.history_retain = sim.config.history_retain;
            mb.record_arrivals();
            let _ = first.mailbox.set(RwLock::new(mb));
        } else {
            sim.mailbox(&first);
        }
        Ok(sim)
    }

    /// Whether an `--outage` is on now.
    fn in_outage(&self) -> bool {
        if self.config.outages.is_empty() {
            return false;
        }
        let elapsed = match self.serving_since.get() {
            Some(t) => t.elapsed(),
            None => self.clock.elapsed(),
        };
        self.config.outages.iter().any(|o| o.covers(elapsed))
    }

    pub fn user(&self, email: &str) -> Option<Arc<User>> {
        self.users.get(&email.to_lowercase()).cloned()
    }

    pub fn default_user(&self) -> &str {
        &self.config.users[0]
    }

    /// How many mailboxes have been built so far (they are built on first
    /// use; only the default user's at start).
    fn mailboxes_generated(&self) -> usize {
        self.users
            .values()
            .filter(|u| u.mailbox.get().is_some())
            .count()
    }

    /// The user's mailbox, generated on first use.
    pub fn mailbox<'a>(&self, user: &'a User) -> &'a RwLock<mailbox::Mailbox> {
        user.mailbox.get_or_init(|| {
            let seed = self.config.seed ^ user.index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut mb = generate::generate(
                seed,
                self.config.messages,
                &user.email,
                self.clock.start_ms(),
            );
            mb.history_retain = self.config.history_retain;
            // A message's historyId is a valid startHistoryId: its arrival
            // is on record (generate.rs leaves the log empty).
            mb.record_arrivals();
            RwLock::new(mb)
        })
    }
}

/// New mail arrives: `count` generated messages dated `now_ms`, in INBOX and
/// UNREAD, each recorded in history. Returns their ids.
fn deliver(
    mb: &mut mailbox::Mailbox,
    seed: u64,
    email: &str,
    count: usize,
    now_ms: i64,
) -> Vec<String> {
    let fresh = generate::generate(seed ^ mb.history_id.rotate_left(17), count, email, now_ms);
    let mut ids = Vec::with_capacity(count);
    let mut n = 0u64;
    for mut m in fresh.messages.into_values() {
        let id = loop {
            let id = format!("{:016x}", ((now_ms as u64) << 20) | (n & 0xf_ffff));
            n += 1;
            if !mb.messages.contains_key(&id) {
                break id;
            }
        };
        m.id = id.clone();
        m.thread_id = id.clone();
        m.internal_date_ms = now_ms;
        if let mailbox::Body::Generated(recipe) = &mut m.body {
            if let Some(r) = Arc::get_mut(recipe) {
                r.set_date(now_ms);
                m.size = r.size();
            }
        }
        m.label_ids = vec!["INBOX".into(), "UNREAD".into()];
        mb.insert(m);
        ids.push(id);
    }
    ids
}
