//! Command-line definitions (clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::duration::parse_duration;

#[derive(Debug, Parser)]
#[command(
    name = "gmailscript",
    version,
    about = "Move a lot of Gmail reliably: a fast, lossless engine driven by Lua policies",
    long_about = "Move a lot of Gmail reliably: a fast, lossless engine driven by Lua policies.\n\n\
        Try it offline with the built-in Gmail API simulator: `gmailscript sim` serves one on \
        127.0.0.1 and prints its base URL."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Lua script (the policy) against Gmail or a simulator.
    Run(RunArgs),
    /// An interactive Lua prompt with the same modules as `run`: explore a
    /// mailbox and try a policy line by line.
    Repl(ReplArgs),
    /// Serve a local Gmail API simulator (REST subset, batch endpoint, OAuth
    /// token endpoint, quota, latency and injected faults).
    Sim(SimArgs),
    /// Google accounts: log in, add a service account, list them, log out.
    Auth(AuthArgs),
    /// List the scripts built into gmailscript, or print one (to copy and
    /// change): `gmailscript run NAME` runs one from any folder.
    Scripts(ScriptsArgs),
    /// Print a shell completion script for bash, zsh, fish, elvish or
    /// powershell.
    #[command(after_help = "Examples:
  gmailscript completions bash > ~/.local/share/bash-completion/completions/gmailscript
  gmailscript completions zsh > ~/.zfunc/_gmailscript       # with fpath+=(~/.zfunc) before compinit
  gmailscript completions fish > ~/.config/fish/completions/gmailscript.fish")]
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command to a folder.
    #[command(after_help = "Examples:
  gmailscript man | man -l -
  gmailscript man --dir ~/.local/share/man/man1              # gmailscript.1, gmailscript-run.1, ...")]
    Man(ManArgs),
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  gmailscript scripts                        # names and what each does
  gmailscript scripts backup > my-backup.lua # a copy to change
  gmailscript run backup --sim               # runs the shipped one, unless ./backup is a file")]
pub struct ScriptsArgs {
    /// Print this shipped script's source instead of the list.
    #[arg(value_name = "NAME")]
    pub(crate) name: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write gmailscript.1 and a page per subcommand (gmailscript-run.1, ...)
    /// into this folder instead of printing gmailscript.1.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// Where to connect: the built-in simulator, a running one, or an account.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnArgs {
    /// Start a simulator in this process and run against it (no Google
    /// account needed). Its quota clock runs --sim-speed times faster.
    #[arg(long, conflicts_with_all = ["endpoint", "account"])]
    pub(crate) sim: bool,
    /// Messages in the simulated mailbox.
    #[arg(long, default_value_t = 1000, requires = "sim")]
    pub(crate) sim_messages: usize,
    /// Seed of the simulated mailbox and its faults.
    #[arg(long, default_value_t = 1, requires = "sim")]
    pub(crate) sim_seed: u64,
    /// Faults to inject, e.g. 500:0.02,503:0.01,429:0.03,reset:0.005,truncate:0.002
    /// (default none; --sim-realism gmail sets 502:0.002,504:0.001).
    #[arg(long, value_parser = parse_faults, requires = "sim")]
    sim_faults: Option<crate::sim::faults::FaultSpec>,
    /// The simulator's --realism: `gmail` turns on the plausible worst of
    /// Gmail together (see `gmailscript sim --help`); the other --sim-*
    /// options override its values.
    #[arg(long, value_enum, value_name = "PRESET", requires = "sim")]
    sim_realism: Option<Realism>,
    /// The simulator's --rate-penalty: a user refused for quota is locked
    /// out this long (quota clock), e.g. 15m; 0s: none.
    #[arg(long, value_name = "DURATION", value_parser = parse_penalty, requires = "sim")]
    sim_rate_penalty: Option<Duration>,
    /// The simulator's --per-second: units per user per second of the quota
    /// clock, on top of the minute's budget (at least 50), or off.
    #[arg(long, value_name = "UNITS", value_parser = parse_per_second, requires = "sim")]
    sim_per_second: Option<Limit>,
    /// The simulator's --charge-refused: refused calls spend their units
    /// (=false turns off the preset's).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", requires = "sim")]
    sim_charge_refused: Option<bool>,
    /// The simulator's --daily-limit: units per user per quota day, or off.
    #[arg(long, value_name = "UNITS", value_parser = parse_daily_limit, requires = "sim")]
    sim_daily_limit: Option<Limit>,
    /// The simulator's --outage AT+FOR[,AT+FOR...]: from AT to AT+FOR after
    /// start (wall clock) every call answers 503 or its exchange is reset.
    #[arg(long, value_name = "AT+FOR", value_parser = parse_outages, requires = "sim")]
    sim_outage: Option<Outages>,
    /// The simulator's --deliver-every: new mail for the default user this
    /// often (wall clock), e.g. 5s, for trying gmail.watch offline.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "sim")]
    sim_deliver_every: Option<Duration>,
    /// The simulator's --domain: serve admin@DOMAIN (the default user, whom
    /// the run acts as) and user1@DOMAIN ... (--sim-domain-users).
    #[arg(long, value_name = "DOMAIN", value_parser = parse_domain, requires = "sim")]
    sim_domain: Option<String>,
    /// The simulator's --domain-users: user1 ... userN besides admin@.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = parse_domain_users, requires = "sim_domain")]
    sim_domain_users: usize,
    /// The simulator's --suspended: suspended users, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "EMAIL,...",
        requires = "sim"
    )]
    sim_suspended: Vec<String>,
    /// The simulator's --project-quota: units per project per minute
    /// (quota clock) shared by every user; default 1,200,000.
    #[arg(long, value_name = "UNITS", value_parser = parse_project_quota, requires = "sim")]
    sim_project_quota: Option<u64>,
    /// The simulator's quota profile: 2026, legacy or off.
    #[arg(long, default_value = "2026", value_parser = parse_profile, requires = "sim")]
    pub(crate) sim_quota: crate::sim::quota::Rules,
    /// How many times faster the simulator's quota clock runs (the pacing
    /// follows it), so a demo of minutes of quota takes seconds.
    #[arg(long, default_value_t = 30.0, requires = "sim")]
    pub(crate) sim_speed: f64,
    /// How late the simulator's `slow` fault answers, e.g. 30s.
    #[arg(long, default_value = "3s", value_parser = parse_duration, requires = "sim")]
    pub(crate) sim_slow_delay: Duration,
    /// The simulator's today (YYYY-MM-DD, UTC): its mail is dated over the
    /// three years before it. Default 2026-06-01, whatever the real date.
    #[arg(long, value_name = "YYYY-MM-DD", default_value = DEFAULT_SIM_DATE, value_parser = parse_sim_date, requires = "sim")]
    pub(crate) sim_date: i64,
    /// A running Gmail API (a `gmailscript sim`, say) to talk to; the access
    /// token comes from the GMAILSCRIPT_TOKEN environment variable (removed
    /// before the script runs), or from --account if given: then only an
    /// https:// URL, or http:// to this machine (127.0.0.1, ::1, localhost).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint: Option<String>,
    /// Quota to pace for with --endpoint or an account. auto: start at the
    /// 2026 pace (6,000 units a minute), raise it while no call is refused,
    /// settle just under the first refusal and remember that for this
    /// account (or endpoint) and mailbox in the data directory
    /// (GMAILSCRIPT_DATA_DIR overrides it), so later runs start there.
    /// 2026, legacy or a number of units per window: pace to that, learn
    /// nothing. off: no pacing.
    #[arg(long, default_value = "auto", value_parser = parse_client_profile)]
    pub(crate) quota: crate::gmail::quota::Profile,
    /// The quota window to pace for. Default: 60s (Gmail's), or, with an
    /// --endpoint that is a gmailscript simulator on this machine, the
    /// window it announces (60s divided by its --speed).
    #[arg(long, value_parser = parse_duration)]
    pub(crate) quota_window: Option<Duration>,
    /// A saved account (see `gmailscript auth status`); default: the account
    /// named `default`, if there is one.
    #[arg(long, value_name = "NAME")]
    pub(crate) account: Option<String>,
    /// The mailbox to act on (default: the token's own, `me`). With a
    /// service account, the user it acts for (instead of its saved
    /// subject), so one key serves many mailboxes.
    #[arg(long, value_name = "EMAIL")]
    pub(crate) user: Option<String>,
    /// The longest wait for Gmail before a retry (a Retry-After, a quota
    /// penalty). A longer one stops the run cleanly (state saved, exit 3),
    /// saying when to run again. Up to 30 days.
    #[arg(long, default_value = "15m", value_parser = parse_max_wait, value_name = "DURATION")]
    pub(crate) max_wait: Duration,
    /// A call or batch that receives no byte for this long is broken off
    /// and retried as a network error (1s to 1h).
    #[arg(long, default_value = "60s", value_parser = parse_idle_timeout, value_name = "DURATION")]
    pub(crate) idle_timeout: Duration,
}

/// For `run` with a script argument before `--` (`run export.lua --sim
/// 'is:unread' u.jsonl`), the command line that works: the arguments clap
/// did not take moved after `--`, in their order. None for other errors,
/// and for a misspelt option (clap suggests the right one).
pub fn script_args_tip(argv: &[String]) -> Option<String> {
    if argv.get(1).map(String::as_str) != Some("run") || argv.iter().any(|a| a == "--") {
        return None;
    }
    let mut kept = argv.to_vec();
    let mut moved = Vec::new();
    // Each round takes out one argument: at most as many rounds as there are.
    for _ in 0..argv.len() {
        let e = match Cli::try_parse_from(&kept) {
            Ok(_) => break,
            Err(e) => e,
        };
        if e.kind() != clap::error::ErrorKind::UnknownArgument
            || e.get(clap::error::ContextKind::SuggestedArg).is_some()
        {
            return None;
        }
        let Some(clap::error::ContextValue::String(bad)) =
            e.get(clap::error::ContextKind::InvalidArg)
        else {
            return None;
        };
        // The first occurrence after the script's name.
        let at = kept.iter().skip(3).position(|a| a == bad)? + 3;
        moved.push(kept.remove(at));
    }
    if moved.is_empty() || Cli::try_parse_from(&kept).is_err() {
        return None;
    }
    let line: Vec<String> = std::iter::once("gmailscript".to_string())
        .chain(kept[1..].iter().map(|a| shell_quote(a)))
        .chain(std::iter::once("--".to_string()))
        .chain(moved.iter().map(|a| shell_quote(a)))
        .collect();
    Some(format!(
        "the script's own arguments go after `--`:\n\n  {}\n",
        line.join(" ")
    ))
}

/// `s` as a POSIX shell word.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn parse_bounded(s: &str, min: Duration, max: Duration, range: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < min || d > max {
        return Err(format!("{s:?} is out of range: {range}"));
    }
    Ok(d)
}

fn parse_max_wait(s: &str) -> Result<Duration, String> {
    parse_bounded(
        s,
        Duration::ZERO,
        Duration::from_secs(30 * 86400),
        "from 0s to 30 days (720h)",
    )
}

fn parse_idle_timeout(s: &str) -> Result<Duration, String> {
    parse_bounded(
        s,
        Duration::from_secs(1),
        Duration::from_secs(3600),
        "from 1s to 1h",
    )
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  gmailscript run scripts/backup.lua --sim
  gmailscript run scripts/backup.lua                       # the default account (gmailscript auth login)
  gmailscript run scripts/stats.lua --account corp --user alice@example.com
  gmailscript run scripts/cleanup.lua --sim --dry-run
  GMAILSCRIPT_TOKEN=sim-token gmailscript run scripts/export.lua --endpoint http://127.0.0.1:41234 -- 'older_than:1y' out.jsonl
  gmailscript run scripts/backup.lua --account corp --users all --report report.jsonl -- /backups
  gmailscript run scripts/stats.lua --sim --sim-domain example.com --users all

Exit codes: 0 all done (with --users: every mailbox ok); 1 some items failed (recorded), or with --users some mailboxes failed or were skipped; 2 usage or script error; 3 stopped (the policy's abort, a listing or storage failure, a wait longer than --max-wait); 130 interrupted.")]
pub struct RunArgs {
    /// The Lua script to run.
    pub(crate) script: PathBuf,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Mutations print what they would change and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// No progress display and no info logs.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Write a summary of the run to FILE when it ends: one JSON line
    /// (user, status, counts, exit code, error, times; docs/report.md).
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) domain: DomainArgs,
    /// Arguments for the script (after --), in its `arg` table.
    #[arg(last = true)]
    pub(crate) args: Vec<String>,
}

/// A run over many mailboxes of a Workspace domain (docs/scaling.md).
#[derive(Debug, Clone, Args)]
pub(crate) struct DomainArgs {
    /// Run the script once per mailbox, each in its own Lua state with
    /// `gmail.user` set to its address: `all` (the domain's users, listed
    /// through the Admin SDK Directory as the service account's subject),
    /// `a@x,b@x`, or `@FILE` (one address a line; blank lines and # comments
    /// ignored). Needs a service account with domain-wide delegation
    /// (--account) or --sim.
    #[arg(long, value_name = "all|EMAIL,...|@FILE", value_parser = parse_users, conflicts_with = "user")]
    pub(crate) users: Option<UsersArg>,
    /// With --users all: suspended users too (left out by default, as GAM
    /// does; their message calls fail).
    #[arg(long, requires = "users")]
    pub(crate) include_suspended: bool,
    /// With --users all: a Directory query, e.g. orgUnitPath=/Sales or
    /// "email:sales*" (Google's users.list `query`).
    #[arg(long, value_name = "QUERY", requires = "users")]
    pub(crate) users_query: Option<String>,
    /// Mailboxes processed at once (1 to 1000). Each waits on its own
    /// per-user quota without holding back the others; GAM users keep about
    /// 20.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000), requires = "users")]
    pub(crate) parallel_users: u32,
    /// Units per minute the whole Cloud project may spend, shared by every
    /// mailbox of the run (Gmail's per-project limit: 1,200,000); with
    /// --shard, each shard takes its share. off: no project budget.
    #[arg(long, value_name = "UNITS", default_value = "1200000", value_parser = parse_project_budget, requires = "users")]
    pub(crate) project_quota: ProjectQuota,
    /// Take shard I of N (1-based): the users whose address hashes to it
    /// (stable across runs and machines) and 1/N of --project-quota, so N
    /// processes cover a domain with no coordinator. Default: from
    /// JOB_COMPLETION_INDEX (a Kubernetes Indexed Job, 0-based) when
    /// --shards N is given.
    #[arg(long, value_name = "I/N", value_parser = parse_shard, requires = "users")]
    pub(crate) shard: Option<Shard>,
    /// The number of shards, for a shard index taken from
    /// JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000), requires = "users", conflicts_with = "shard")]
    pub(crate) shards: Option<u32>,
}

/// What `--users` names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum UsersArg {
    All,
    List(Vec<String>),
    File(PathBuf),
}

/// `--project-quota`: units per minute, or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProjectQuota(pub Option<u64>);

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shard {
    pub(crate) index: u32,
    pub(crate) count: u32,
}

/// Why `s` is not an address a mailbox can have; None when it is one.
pub(crate) fn bad_address(s: &str) -> Option<&'static str> {
    let Some((local, domain)) = s.split_once('@') else {
        return Some("no @");
    };
    if local.is_empty() || domain.is_empty() {
        return Some("nothing before or after the @");
    }
    if domain.contains('@') {
        return Some("more than one @");
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '/')
    {
        return Some("a space, comma, slash or control character in it");
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Some("its domain is not a domain name");
    }
    if s.len() > 254 {
        return Some("longer than an address can be (254)");
    }
    None
}

fn parse_users(s: &str) -> Result<UsersArg, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("all") {
        return Ok(UsersArg::All);
    }
    if let Some(file) = t.strip_prefix('@') {
        if file.is_empty() {
            return Err("@ needs a file name: --users @users.txt".into());
        }
        return Ok(UsersArg::File(PathBuf::from(file)));
    }
    let mut list = Vec::new();
    for a in t.split(',').map(str::trim) {
        if a.is_empty() {
            continue;
        }
        if let Some(why) = bad_address(a) {
            return Err(format!(
                "{a:?} is not an email address ({why}); write all, a@example.com,b@example.com or @FILE"
            ));
        }
        list.push(a.to_lowercase());
    }
    if list.is_empty() {
        return Err("no address given; write all, a@example.com,b@example.com or @FILE".into());
    }
    Ok(UsersArg::List(list))
}

fn parse_project_budget(s: &str) -> Result<ProjectQuota, String> {
    if s.trim() == "off" {
        return Ok(ProjectQuota(None));
    }
    let n: u64 = s
        .trim()
        .replace(['_', ','], "")
        .parse()
        .map_err(|_| format!("{s:?} is not a number of units per minute (or off)"))?;
    if n < 100 {
        return Err(format!(
            "{n} units a minute is less than one batchModify and one get (100 units); give at least 100, or off"
        ));
    }
    Ok(ProjectQuota(Some(n)))
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let err = || format!("{s:?} is not a shard; write I/N with 1 <= I <= N, e.g. 2/4");
    let (i, n) = s.trim().split_once('/').ok_or_else(err)?;
    let index: u32 = i.trim().parse().map_err(|_| err())?;
    let count: u32 = n.trim().parse().map_err(|_| err())?;
    if index == 0 || count == 0 || index > count {
        return Err(err());
    }
    Ok(Shard { index, count })
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  gmailscript repl --sim
  gmailscript repl --sim -i scripts/stats.lua
  echo 'gmail.profile()' | gmailscript repl --sim

Type Lua: an expression prints its value. :help lists the modules and commands,
:help gmail.batch shows a function's reference. Tab completes; Ctrl-C stops a
batch cleanly (twice: at once) or cancels any other call; Ctrl-D quits. With standard input not a terminal, statements are
read from it; the exit code is then 2 if any failed, else 0.")]
pub struct ReplArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Mutations print what they would change and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Run this script first, then prompt with its globals.
    #[arg(short = 'i', value_name = "SCRIPT")]
    pub(crate) script: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  gmailscript auth login --client-secret client_secret.json   # opens the browser; read-only
  gmailscript auth login --account tidy --scope modify        # another account, may label and trash
  gmailscript auth service-account --key sa-key.json --subject admin@example.com --account corp
  gmailscript auth status                                     # accounts, scopes, email, token expiry
  gmailscript auth logout --account tidy                      # revoke and delete its tokens

Accounts live in the user's config directory (~/.config/gmailscript on Linux; \
GMAILSCRIPT_CONFIG_DIR overrides it), readable only by the user. See docs/accounts.md.")]
pub struct AuthArgs {
    #[command(subcommand)]
    pub(crate) command: AuthCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum AuthCommand {
    /// Log in to a Google account in the browser and save its tokens.
    #[command(
        after_help = "Needs an OAuth client of type Desktop app: in the Google Cloud console \
(APIs & Services > Credentials) create an OAuth client ID of type Desktop app and download its JSON. \
The browser must run on this computer: Google sends it back to http://localhost:PORT, where the login waits."
    )]
    Login(LoginArgs),
    /// Save a service account with domain-wide delegation, acting for a
    /// user of the domain (Google Workspace).
    #[command(
        after_help = "The service account's client ID must be granted the same scopes in the \
Admin console (Security > Access and data control > API controls > Manage Domain Wide Delegation): \
https://www.googleapis.com/auth/gmail.readonly for --scope readonly, \
https://www.googleapis.com/auth/gmail.modify for modify, https://mail.google.com/ for full; \
and, for `run --users all` (the domain's users, listed as the subject, who must be an administrator), \
https://www.googleapis.com/auth/admin.directory.user.readonly as well. \
A service account without a subject has no mailbox: Gmail answers `400 Precondition check failed`."
    )]
    ServiceAccount(ServiceAccountArgs),
    /// List the saved accounts: kind, scopes, email and token expiry (never
    /// a token).
    Status,
    /// Forget an account: revoke its login at Google (best effort) and
    /// delete its saved tokens.
    Logout(LogoutArgs),
}

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ScopeArg {
    /// Read mail and labels (gmail.readonly).
    Readonly,
    /// Also label, archive and trash (gmail.modify).
    Modify,
    /// Everything, permanent delete included (mail.google.com).
    Full,
}

impl ScopeArg {
    pub(crate) fn url(self) -> &'static str {
        match self {
            ScopeArg::Readonly => crate::auth::SCOPE_READONLY,
            ScopeArg::Modify => crate::auth::SCOPE_MODIFY,
            ScopeArg::Full => crate::auth::SCOPE_FULL,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct LoginArgs {
    /// Name to save the account under.
    #[arg(long, value_name = "NAME", default_value = crate::auth::cache::DEFAULT_ACCOUNT)]
    pub(crate) account: String,
    /// The OAuth client's JSON (Desktop app). Default: the file this
    /// account used before, else client_secret.json in the config directory.
    #[arg(long, value_name = "FILE")]
    pub(crate) client_secret: Option<PathBuf>,
    /// What gmailscript may do with the mailbox.
    #[arg(long, value_enum, default_value = "readonly")]
    pub(crate) scope: ScopeArg,
    /// Only print the address; open no browser (tests).
    #[arg(long, hide = true)]
    pub(crate) no_browser: bool,
    /// Gmail API base URL to read the profile from (a simulator's, in tests).
    #[arg(long, hide = true, value_name = "URL")]
    pub(crate) endpoint: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ServiceAccountArgs {
    /// The service account's key (JSON, from the Cloud console).
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
    /// The user of the domain to act for (a run's --user overrides it).
    #[arg(long, value_name = "USER")]
    pub(crate) subject: Option<String>,
    /// Name to save the account under.
    #[arg(long, value_name = "NAME", default_value = crate::auth::cache::DEFAULT_ACCOUNT)]
    pub(crate) account: String,
    /// What gmailscript may do; the same scopes must be delegated.
    #[arg(long, value_enum, default_value = "readonly")]
    pub(crate) scope: ScopeArg,
    /// Gmail API base URL to read the profile from (a simulator's, in tests).
    #[arg(long, hide = true, value_name = "URL")]
    pub(crate) endpoint: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct LogoutArgs {
    /// The account to forget.
    #[arg(long, value_name = "NAME", default_value = crate::auth::cache::DEFAULT_ACCOUNT)]
    pub(crate) account: String,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  gmailscript sim                                   # 1,000 messages per user, seed 1, a free port
  gmailscript sim --messages 5000 --seed 7 --speed 30
  gmailscript sim --realism gmail --port 8080       # lockouts, a per-second limit, HTML 502s, latency
  gmailscript sim --mbox takeout.mbox               # your own mail, exported by Google Takeout
  GMAILSCRIPT_TOKEN=sim-token gmailscript run backup --endpoint http://127.0.0.1:8080

The first line of standard output is the base URL, e.g. \
http://127.0.0.1:41234. Point a client at it with the token `sim-token` (or --token): \
GET {base}/gmail/v1/users/me/messages with `Authorization: Bearer sim-token`. \
The batch endpoint is {base}/batch/gmail/v1 (also {base}/batch), the OAuth token \
endpoint {base}/token, and {base}/_sim/stats reports calls, quota units and rate errors. \
With --domain, the Directory's users.list is GET {base}/admin/directory/v1/users?customer=my_customer \
(the sim-token's user is the administrator; scope admin.directory.user.readonly). \
Stop with Ctrl-C.")]
pub struct SimArgs {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seed for the generated mailboxes and for fault decisions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Messages generated for each user.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Users with Gmail, comma-separated; the first is the default user (`me`).
    /// Default me@example.com,alice@example.com,bob@example.com; with
    /// --domain, more users besides the domain's.
    #[arg(long, value_delimiter = ',', value_name = "EMAIL,...")]
    users: Option<Vec<String>>,
    /// Users who exist but have no Gmail: their calls answer 400
    /// failedPrecondition "Mail service not enabled"; in the directory with
    /// isMailboxSetup false. Default nogmail@example.com; none with --domain.
    #[arg(long, value_delimiter = ',', value_name = "EMAIL,...")]
    no_gmail_users: Option<Vec<String>>,
    /// Serve a Workspace domain: admin@DOMAIN (the default user, the
    /// domain's administrator: the only one the Directory answers) and
    /// user1@DOMAIN ... userN@DOMAIN (--domain-users), each with --messages
    /// messages built on first use, so thousands of users start at once.
    /// Directory: GET {base}/admin/directory/v1/users (users.list) and
    /// /users/{userKey} (users.get). Service-account (JWT) grants with any
    /// of them as `sub` get a token for that mailbox; another `sub`
    /// answers 400 invalid_grant "Invalid email or User ID".
    #[arg(long, value_name = "DOMAIN", value_parser = parse_domain)]
    domain: Option<String>,
    /// Users of --domain besides admin@: user1 ... userN. Org units go round
    /// by number: user1 /Sales, user2 /Engineering, user3 /Support, user4
    /// /Sales ...; admin@ is in /.
    #[arg(long, value_name = "N", default_value_t = 10, requires = "domain", value_parser = parse_domain_users)]
    domain_users: usize,
    /// Suspended users, comma-separated (added if not among the users):
    /// in the directory with suspended true; tokens are still issued and
    /// ids, labels, history and the profile still answer, but every call
    /// that reads a message (messages.get, threads.get, attachments) or
    /// changes anything fails, as --suspended-error says.
    #[arg(long, value_delimiter = ',', value_name = "EMAIL,...")]
    suspended: Vec<String>,
    /// How a suspended user's message calls fail: backend (500
    /// backendError, which looks transient and never heals, as
    /// got-your-back#114 saw) or forbidden (403 "The caller does not have
    /// permission", got-your-back#258). Either costs the call's units.
    #[arg(long, value_enum, value_name = "KIND", default_value = "backend")]
    suspended_error: SuspendedErrorArg,
    /// Units per project per minute (quota clock), shared by every user:
    /// default 1,200,000 (Gmail's); lower it so a test or benchmark with a
    /// few users meets the project's limit (429 or 403 rateLimitExceeded
    /// "... limit 'Queries per minute' ..." with Retry-After). At least 50.
    #[arg(long, value_name = "UNITS", value_parser = parse_project_quota)]
    project_quota: Option<u64>,
    /// Quota profile: 2026 (6,000 units/user/min; get costs 20), legacy
    /// (15,000; get costs 5), or off (no quota limit at all, per-second and
    /// daily included).
    #[arg(long, default_value = "2026", value_parser = parse_profile)]
    quota: crate::sim::quota::Rules,
    /// Run the quota clock N times faster: the per-minute window lasts 60/N
    /// seconds, so utilisation figures stay comparable. The per-second
    /// window, a --rate-penalty and the quota day shrink likewise.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Calls in flight per user (batch parts count one each) before
    /// "429 Too many concurrent requests for user".
    #[arg(long, default_value_t = 50)]
    concurrency: u32,
    /// Most calls in one batch request (Gmail: 100; some accounts see 50).
    #[arg(long, default_value_t = 100)]
    max_batch: usize,
    /// Injected faults, e.g. 500:0.02,503:0.01,429:0.03,reset:0.005,truncate:0.002,slow:0.01
    /// (KIND:PROBABILITY; KIND is an HTTP status 400-599, reset, truncate or slow).
    /// 502 and 504 answer Google's front-end HTML page, other statuses JSON.
    /// Default none.
    #[arg(long, value_parser = parse_faults)]
    faults: Option<crate::sim::faults::FaultSpec>,
    /// How late a `slow` fault answers.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    slow_delay: Duration,
    /// Service time of each call (batch parts run in parallel), e.g. 20ms:
    /// Gmail answers in tens of milliseconds, so a pipeline that waits on
    /// each answer is slower than on loopback. Default 0ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    latency: Option<Duration>,
    /// Uniform jitter around --latency, e.g. 10ms. Default 0ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    jitter: Option<Duration>,
    /// Extra service time of a batch request as a whole, on top of its
    /// slowest part, e.g. 150ms: Google's batch endpoint answers only once
    /// every part is done and the answer assembled, slower than one call.
    /// Default 0ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    batch_latency: Option<Duration>,
    /// Once a user is refused for quota (per minute or per second), lock
    /// that user out for DURATION on the quota clock (divided by --speed):
    /// every call answers "User-rate limit exceeded.  Retry after <time>"
    /// with a Retry-After header, as Gmail's lockouts do (reported ~15
    /// minutes, sometimes hours). 0s: none (default).
    #[arg(long, value_name = "DURATION", value_parser = parse_penalty)]
    rate_penalty: Option<Duration>,
    /// A per-user budget of UNITS per second of the quota clock, on top of
    /// the per-minute one (the legacy documentation's 250/s moving
    /// average). At least 50; off (default) for none.
    #[arg(long, value_name = "UNITS", value_parser = parse_per_second)]
    per_second: Option<Limit>,
    /// Refused calls (quota, concurrency, injected 429) spend their units,
    /// so a refused batch leaves the budget spent, as one public report of
    /// Gmail describes: a client that retries at once only digs deeper.
    /// --charge-refused=false turns off the preset's.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    charge_refused: Option<bool>,
    /// A per-user budget of UNITS per quota day (midnight to midnight
    /// Pacific time on the quota clock); past it, 403 dailyLimitExceeded,
    /// as Google answers a spent daily quota: nothing more goes through
    /// until the day ends, so a run must stop and resume. Off (default)
    /// for none.
    #[arg(long, value_name = "UNITS", value_parser = parse_daily_limit)]
    daily_limit: Option<Limit>,
    /// Outages, e.g. 2s+10s or 0s+1m,5m+30s: from AT to AT+FOR after it
    /// starts serving (wall clock, not scaled by --speed) every call and batch part
    /// answers 503, or (about 3 exchanges in 10, drawn from the seed) the
    /// whole exchange is reset: Gmail's outages last minutes, not one call
    /// (one user saw 502 on every call for days), so retries that each
    /// spend an id's tries would turn the outage into failures.
    #[arg(long, value_name = "AT+FOR[,AT+FOR...]", value_parser = parse_outages)]
    outage: Option<Outages>,
    /// Deliver one new message to the default user this often (wall clock),
    /// e.g. 5s: mail arriving, for trying gmail.watch; the same as POST
    /// /_sim/users/EMAIL/deliver.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    deliver_every: Option<Duration>,
    /// A preset: `gmail` turns on the plausible worst of Gmail together:
    /// --rate-penalty 15m --per-second 250 --charge-refused
    /// --faults 502:0.002,504:0.001 --latency 40ms --jitter 20ms
    /// --batch-latency 150ms. Options given explicitly override its values.
    #[arg(long, value_enum, value_name = "PRESET")]
    realism: Option<Realism>,
    /// Load the default user's mailbox from an mbox file (Google Takeout's
    /// format; X-Gmail-Labels gives labels) instead of generating it.
    #[arg(long)]
    mbox: Option<PathBuf>,
    /// Access token always accepted for the default user.
    #[arg(long, default_value = crate::sim::DEFAULT_TOKEN)]
    token: String,
    /// Lifetime of tokens issued by the token endpoint, e.g. 3600s or 2s.
    #[arg(long, default_value = "3600s", value_parser = parse_duration)]
    token_lifetime: Duration,
    /// History records kept (the newest messages' arrivals among them, so a
    /// message's historyId is a valid start); a startHistoryId older than
    /// those answers 404.
    #[arg(long, default_value_t = 10_000)]
    history_retain: usize,
    /// The simulator's today (YYYY-MM-DD, UTC). Its clock starts at that
    /// midnight and runs with real time; mail is dated over the three years
    /// before it, and older_than:/newer_than:, new mail and internalDate
    /// follow it. The real date never matters, so a seed gives the same
    /// mailbox on any day.
    #[arg(long, value_name = "YYYY-MM-DD", default_value = DEFAULT_SIM_DATE, value_parser = parse_sim_date)]
    date: i64,
}

/// `--suspended-error` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SuspendedErrorArg {
    /// 500 backendError.
    Backend,
    /// 403 forbidden.
    Forbidden,
}

impl From<SuspendedErrorArg> for crate::sim::SuspendedError {
    fn from(a: SuspendedErrorArg) -> Self {
        match a {
            SuspendedErrorArg::Backend => crate::sim::SuspendedError::Backend,
            SuspendedErrorArg::Forbidden => crate::sim::SuspendedError::Forbidden,
        }
    }
}

fn parse_domain(s: &str) -> Result<String, String> {
    let d = s.trim().to_lowercase();
    if d.is_empty()
        || d.contains(['@', '/', ','])
        || d.contains(char::is_whitespace)
        || !d.contains('.')
    {
        return Err(format!(
            "{s:?} is not a domain name; write e.g. example.com"
        ));
    }
    Ok(d)
}

fn parse_domain_users(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of users"))?;
    let max = crate::sim::MAX_DOMAIN_USERS;
    if n > max {
        return Err(format!(
            "{n} is more than the {max} users the simulator serves"
        ));
    }
    Ok(n)
}

fn parse_project_quota(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a number of units"))?;
    let dearest = crate::sim::quota::Rules::DEAREST;
    if n < dearest {
        return Err(format!(
            "{n} is less than {dearest} units (messages.batchModify costs {dearest}; a smaller budget could never admit it)"
        ));
    }
    Ok(n)
}

/// Presets of `--realism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Realism {
    /// The plausible worst of Gmail at once.
    Gmail,
}

/// What `--realism gmail` sets, as the options it stands for. The help
/// texts and README list the same; a test checks they agree.
const REALISM_GMAIL: &[(&str, &str)] = &[
    ("rate-penalty", "15m"),
    ("per-second", "250"),
    ("charge-refused", "true"),
    ("faults", "502:0.002,504:0.001"),
    ("latency", "40ms"),
    ("jitter", "20ms"),
    ("batch-latency", "150ms"),
];

/// A budget of units, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limit(pub Option<u64>);

/// `--outage` spans.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outages(pub Vec<crate::sim::faults::Outage>);

/// The simulator options a preset sets and explicit options override; None
/// where neither says.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tuning {
    faults: Option<crate::sim::faults::FaultSpec>,
    latency: Option<Duration>,
    jitter: Option<Duration>,
    batch_latency: Option<Duration>,
    rate_penalty: Option<Duration>,
    per_second: Option<Limit>,
    charge_refused: Option<bool>,
    daily_limit: Option<Limit>,
    outages: Option<Outages>,
    deliver_every: Option<Duration>,
    /// `--sim-domain` and its number of users.
    domain: Option<(String, usize)>,
    suspended: Option<Vec<String>>,
    project_quota: Option<u64>,
}

impl Tuning {
    /// The preset's values.
    fn preset(realism: Realism) -> Tuning {
        match realism {
            Realism::Gmail => {
                let mut t = Tuning::default();
                for (name, value) in REALISM_GMAIL {
                    fn must<T>(r: Result<T, String>, name: &str, value: &str) -> T {
                        r.unwrap_or_else(|e| panic!("REALISM_GMAIL --{name} {value}: {e}"))
                    }
                    match *name {
                        "rate-penalty" => {
                            t.rate_penalty = Some(must(parse_penalty(value), name, value))
                        }
                        "per-second" => {
                            t.per_second = Some(must(parse_per_second(value), name, value))
                        }
                        "charge-refused" => t.charge_refused = Some(*value == "true"),
                        "faults" => t.faults = Some(must(parse_faults(value), name, value)),
                        "latency" => t.latency = Some(must(parse_duration(value), name, value)),
                        "jitter" => t.jitter = Some(must(parse_duration(value), name, value)),
                        "batch-latency" => {
                            t.batch_latency = Some(must(parse_duration(value), name, value))
                        }
                        other => panic!("REALISM_GMAIL names an unknown option {other}"),
                    }
                }
                t
            }
        }
    }

    /// These values where given, else `under`'s.
    fn over(self, under: Tuning) -> Tuning {
        Tuning {
            faults: self.faults.or(under.faults),
            latency: self.latency.or(under.latency),
            jitter: self.jitter.or(under.jitter),
            batch_latency: self.batch_latency.or(under.batch_latency),
            rate_penalty: self.rate_penalty.or(under.rate_penalty),
            per_second: self.per_second.or(under.per_second),
            charge_refused: self.charge_refused.or(under.charge_refused),
            daily_limit: self.daily_limit.or(under.daily_limit),
            outages: self.outages.or(under.outages),
            deliver_every: self.deliver_every.or(under.deliver_every),
            domain: self.domain.or(under.domain),
            suspended: self.suspended.or(under.suspended),
            project_quota: self.project_quota.or(under.project_quota),
        }
    }

    /// Explicit values over the preset's, if any.
    fn resolve(self, realism: Option<Realism>) -> Tuning {
        match realism {
            Some(r) => self.over(Tuning::preset(r)),
            None => self,
        }
    }

    /// Set what is given on `c`; leave the rest.
    pub(crate) fn apply(&self, c: &mut crate::sim::SimConfig) {
        if let Some(f) = &self.faults {
            c.faults = f.clone();
        }
        if let Some(d) = self.latency {
            c.latency = d;
        }
        if let Some(d) = self.jitter {
            c.jitter = d;
        }
        if let Some(d) = self.batch_latency {
            c.batch_latency = d;
        }
        if let Some(d) = self.rate_penalty {
            c.rate_penalty = (!d.is_zero()).then_some(d);
        }
        if let Some(Limit(n)) = self.per_second {
            c.per_second = n;
        }
        if let Some(b) = self.charge_refused {
            c.charge_refused = b;
        }
        if let Some(Limit(n)) = self.daily_limit {
            c.daily_limit = n;
        }
        if let Some(Outages(o)) = &self.outages {
            c.outages = o.clone();
        }
        if let Some(d) = self.deliver_every {
            c.deliver_every = (!d.is_zero()).then_some(d);
        }
        if let Some((domain, n)) = &self.domain {
            c.users = crate::sim::domain_users(domain, *n);
            c.no_gmail = Vec::new();
        }
        if let Some(s) = &self.suspended {
            c.suspended = s.clone();
        }
        if let Some(n) = self.project_quota {
            c.project_quota = Some(n);
        }
    }
}

impl ConnArgs {
    /// The in-process simulator's `--sim-*` tuning, the preset resolved.
    pub(crate) fn sim_tuning(&self) -> Tuning {
        Tuning {
            faults: self.sim_faults.clone(),
            rate_penalty: self.sim_rate_penalty,
            per_second: self.sim_per_second,
            charge_refused: self.sim_charge_refused,
            daily_limit: self.sim_daily_limit,
            outages: self.sim_outage.clone(),
            deliver_every: self.sim_deliver_every,
            domain: self.sim_domain.clone().map(|d| (d, self.sim_domain_users)),
            suspended: (!self.sim_suspended.is_empty()).then(|| self.sim_suspended.clone()),
            project_quota: self.sim_project_quota,
            ..Tuning::default()
        }
        .resolve(self.sim_realism)
    }
}

impl SimArgs {
    /// The tuning options as given, the preset resolved.
    fn tuning(&self) -> Tuning {
        Tuning {
            faults: self.faults.clone(),
            latency: self.latency,
            jitter: self.jitter,
            batch_latency: self.batch_latency,
            rate_penalty: self.rate_penalty,
            per_second: self.per_second,
            charge_refused: self.charge_refused,
            daily_limit: self.daily_limit,
            outages: self.outage.clone(),
            deliver_every: self.deliver_every,
            // The domain, suspended users and project quota are in
            // base_config (with --users and --no-gmail-users).
            ..Tuning::default()
        }
        .resolve(self.realism)
    }

    pub fn config(&self) -> crate::sim::SimConfig {
        let mut c = self.base_config();
        self.tuning().apply(&mut c);
        c
    }

    /// The Gmail users: the domain's (admin@ first) and any --users, or
    /// --users, or the defaults.
    fn sim_users(&self) -> Vec<String> {
        match (&self.domain, &self.users) {
            (Some(d), extra) => {
                let mut u = crate::sim::domain_users(d.trim(), self.domain_users);
                u.extend(extra.iter().flatten().cloned());
                u
            }
            (None, Some(u)) => u.clone(),
            (None, None) => crate::sim::DEFAULT_USERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    fn base_config(&self) -> crate::sim::SimConfig {
        crate::sim::SimConfig {
            port: self.port,
            seed: self.seed,
            messages: self.messages,
            users: self.sim_users(),
            no_gmail: match (&self.no_gmail_users, &self.domain) {
                (Some(u), _) => u.clone(),
                (None, Some(_)) => Vec::new(),
                (None, None) => crate::sim::DEFAULT_NO_GMAIL
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            },
            suspended: self.suspended.clone(),
            suspended_error: self.suspended_error.into(),
            project_quota: self.project_quota,
            quota: self.quota,
            speed: self.speed,
            concurrency: self.concurrency,
            max_batch: self.max_batch,
            slow_delay: self.slow_delay,
            mbox: self.mbox.clone(),
            token: self.token.clone(),
            token_lifetime: self.token_lifetime,
            history_retain: self.history_retain,
            start_ms: self.date,
            ..crate::sim::SimConfig::default()
        }
    }
}

/// The simulator's default calendar start (`crate::sim::DEFAULT_START_MS`).
const DEFAULT_SIM_DATE: &str = "2026-06-01";

/// `YYYY-MM-DD` to ms since the epoch at that midnight, UTC. The range
/// keeps three years of mail before it after 1970 and ids within 64 bits.
fn parse_sim_date(s: &str) -> Result<i64, String> {
    let date = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("{s:?} is not a date ({e}); write YYYY-MM-DD, e.g. 2026-06-01"))?;
    let ms = date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(i64::MIN);
    let (min, max) = ("1980-01-01", "2199-12-31");
    if !(min..=max).contains(&date.format("%Y-%m-%d").to_string().as_str()) {
        return Err(format!("{s:?} is out of range: from {min} to {max}"));
    }
    Ok(ms)
}

fn parse_profile(s: &str) -> Result<crate::sim::quota::Rules, String> {
    crate::sim::quota::Rules::parse(s)
        .ok_or_else(|| format!("unknown quota profile {s:?}; use 2026, legacy or off"))
}

fn parse_client_profile(s: &str) -> Result<crate::gmail::quota::Profile, String> {
    crate::gmail::quota::Profile::parse(s).ok_or_else(|| {
        format!("unknown quota profile {s:?}; use auto, 2026, legacy, off or a number of units")
    })
}

fn parse_faults(s: &str) -> Result<crate::sim::faults::FaultSpec, String> {
    crate::sim::faults::FaultSpec::parse(s)
}

/// A lockout length: a duration up to 30 days, `0s` or `off` for none.
fn parse_penalty(s: &str) -> Result<Duration, String> {
    if s.trim() == "off" {
        return Ok(Duration::ZERO);
    }
    parse_bounded(
        s,
        Duration::ZERO,
        Duration::from_secs(30 * 86400),
        "from 0s (none) to 30 days (720h)",
    )
}

/// Units, or `off`; at least `min`.
fn parse_limit(s: &str, min: u64, why: &str) -> Result<Limit, String> {
    let s = s.trim();
    if s == "off" {
        return Ok(Limit(None));
    }
    let n: u64 = s
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a number of units; write e.g. 250, or off"))?;
    if n < min {
        return Err(format!("{n} is too small: at least {min}{why}, or off"));
    }
    Ok(Limit(Some(n)))
}

fn parse_per_second(s: &str) -> Result<Limit, String> {
    let dearest = crate::sim::quota::Rules::DEAREST;
    parse_limit(
        s,
        dearest,
        &format!(
            " (messages.batchModify costs {dearest} units; a smaller budget could never admit it)"
        ),
    )
}

fn parse_daily_limit(s: &str) -> Result<Limit, String> {
    parse_limit(s, 1, "")
}

/// `AT+FOR[,AT+FOR...]`, e.g. `2s+10s` or `0s+1m,5m+30s`.
fn parse_outages(s: &str) -> Result<Outages, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (at, length) = item
            .split_once('+')
            .ok_or_else(|| format!("outage {item:?} has no length; write AT+FOR, e.g. 2s+10s"))?;
        let at = parse_duration(at).map_err(|e| format!("outage {item:?}: start {e}"))?;
        let length = parse_duration(length).map_err(|e| format!("outage {item:?}: length {e}"))?;
        if length.is_zero() {
            return Err(format!("outage {item:?} lasts no time; give FOR above 0s"));
        }
        out.push(crate::sim::faults::Outage { at, length });
    }
    if out.is_empty() {
        return Err("no outage given; write AT+FOR, e.g. 2s+10s".into());
    }
    Ok(Outages(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_users_are_the_simulators_and_shown_as_typed() {
        let c = sim_args(&[]).unwrap().config();
        assert_eq!(c.users, crate::sim::DEFAULT_USERS);
        assert_eq!(c.no_gmail, crate::sim::DEFAULT_NO_GMAIL);
        use clap::CommandFactory as _;
        let help = Cli::command()
            .find_subcommand_mut("sim")
            .unwrap()
            .render_long_help()
            .to_string();
        // The default as it would be typed: comma-separated.
        let typed = crate::sim::DEFAULT_USERS.join(",");
        assert!(help.contains(&format!("Default {typed}")), "{help}");
    }

    #[test]
    fn script_arguments_before_the_dashes_get_the_command_that_works() {
        let argv = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let tip = |s: &[&str]| script_args_tip(&argv(s));
        assert_eq!(
            tip(&[
                "gmailscript",
                "run",
                "scripts/export.lua",
                "--sim",
                "is:unread",
                "u.jsonl"
            ])
            .unwrap(),
            "the script's own arguments go after `--`:\n\n  \
             gmailscript run scripts/export.lua --sim -- 'is:unread' u.jsonl\n"
        );
        // Options after the script's arguments stay before `--`.
        let t = tip(&[
            "gmailscript",
            "run",
            "s.lua",
            "it's",
            "--sim",
            "--limit",
            "5",
        ])
        .unwrap();
        assert!(
            t.contains("gmailscript run s.lua --sim -- 'it'\\''s' --limit 5"),
            "{t}"
        );
        // A misspelt option is clap's to point out; a right line needs none.
        assert_eq!(
            tip(&["gmailscript", "run", "s.lua", "--sim-mesages", "5"]),
            None
        );
        assert_eq!(
            tip(&["gmailscript", "run", "s.lua", "--sim", "--", "x"]),
            None
        );
        assert_eq!(tip(&["gmailscript", "sim", "x"]), None);
    }

    /// Every command line under "Examples:" in every help text parses.
    #[test]
    fn the_help_examples_are_command_lines_that_parse() {
        use clap::CommandFactory as _;
        fn walk(cmd: &mut clap::Command, found: &mut Vec<String>) {
            let help = cmd.render_long_help().to_string();
            if let Some((_, rest)) = help.split_once("Examples:\n") {
                for line in rest.lines().take_while(|l| !l.trim().is_empty()) {
                    found.push(line.to_string());
                }
            }
            for sub in cmd.get_subcommands_mut() {
                walk(sub, found);
            }
        }
        let mut lines = Vec::new();
        walk(&mut Cli::command(), &mut lines);
        assert!(lines.len() > 20, "{lines:?}");
        for line in &lines {
            // The pipeline's gmailscript part, up to a comment or a
            // redirection; no VAR=value.
            let cmd = line.split('#').next().unwrap();
            let cmd = cmd
                .split('|')
                .find(|part| part.contains("gmailscript"))
                .unwrap_or(cmd);
            let cmd = cmd.split('>').next().unwrap();
            let mut words = Vec::new();
            let mut quoted = false;
            let mut word = String::new();
            for c in cmd.chars() {
                match c {
                    '\'' => quoted = !quoted,
                    ' ' if !quoted => {
                        if !word.is_empty() {
                            words.push(std::mem::take(&mut word));
                        }
                    }
                    c => word.push(c),
                }
            }
            if !word.is_empty() {
                words.push(word);
            }
            let words: Vec<String> = words.into_iter().skip_while(|w| w.contains('=')).collect();
            assert_eq!(words[0], "gmailscript", "{line}");
            if let Err(e) = Cli::try_parse_from(&words) {
                panic!("example {line:?} does not parse: {e}");
            }
        }
    }

    #[test]
    fn sim_dates() {
        assert_eq!(
            parse_sim_date(DEFAULT_SIM_DATE).unwrap(),
            crate::sim::DEFAULT_START_MS
        );
        assert_eq!(parse_sim_date("1980-01-01").unwrap(), 315_532_800_000);
        for bad in [
            "2026-13-01",
            "tomorrow",
            "",
            "1979-12-31",
            "2200-01-01",
            "26-06-01",
        ] {
            assert!(parse_sim_date(bad).is_err(), "{bad}");
        }
    }

    fn sim_args(args: &[&str]) -> Result<SimArgs, clap::Error> {
        let argv = ["gmailscript", "sim"].iter().chain(args).copied();
        match Cli::try_parse_from(argv)?.command {
            Command::Sim(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_domain_on_sim_and_on_run() {
        let c = sim_args(&[]).unwrap().config();
        assert_eq!(c.users, crate::sim::DEFAULT_USERS);
        assert_eq!(c.no_gmail, crate::sim::DEFAULT_NO_GMAIL);
        let c = sim_args(&[
            "--domain",
            "Corp.Example",
            "--domain-users",
            "3",
            "--users",
            "x@other.org",
            "--suspended",
            "user2@corp.example",
            "--suspended-error",
            "forbidden",
            "--project-quota",
            "12_000",
        ])
        .unwrap()
        .config();
        assert_eq!(
            c.users,
            [
                "admin@corp.example",
                "user1@corp.example",
                "user2@corp.example",
                "user3@corp.example",
                "x@other.org"
            ]
        );
        assert!(c.no_gmail.is_empty());
        assert_eq!(c.suspended, ["user2@corp.example"]);
        assert_eq!(c.suspended_error, crate::sim::SuspendedError::Forbidden);
        assert_eq!(c.project_quota, Some(12_000));
        for bad in [
            &["--domain", "a@b.com"][..],
            &["--domain", "nodot"],
            &["--domain-users", "5"],
            &["--domain", "x.com", "--domain-users", "100001"],
            &["--project-quota", "49"],
        ] {
            assert!(sim_args(bad).is_err(), "{bad:?}");
        }
        let mut c = crate::sim::SimConfig::default();
        run_conn(&[
            "--sim-domain",
            "example.com",
            "--sim-domain-users",
            "2",
            "--sim-suspended",
            "user1@example.com",
            "--sim-project-quota",
            "5000",
        ])
        .unwrap()
        .sim_tuning()
        .apply(&mut c);
        assert_eq!(c.users, crate::sim::domain_users("example.com", 2));
        assert!(c.no_gmail.is_empty());
        assert_eq!(c.suspended, ["user1@example.com"]);
        assert_eq!(c.project_quota, Some(5000));
        assert!(run_conn(&["--sim-domain-users", "2"]).is_err());
    }
    fn run_conn(args: &[&str]) -> Result<ConnArgs, clap::Error> {
        let argv = ["gmailscript", "run", "x.lua", "--sim"]
            .iter()
            .chain(args)
            .copied();
        match Cli::try_parse_from(argv)?.command {
            Command::Run(a) => Ok(a.conn),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_gmail_preset_sets_what_it_says_and_explicit_options_win() {
        let kind = sim_args(&[]).unwrap().config();
        assert_eq!(kind.rate_penalty, None);
        assert_eq!(kind.per_second, None);
        assert!(!kind.charge_refused && kind.faults.is_empty());
        assert_eq!(kind.latency, Duration::ZERO);

        let c = sim_args(&["--realism", "gmail"]).unwrap().config();
        assert_eq!(c.rate_penalty, Some(Duration::from_secs(900)));
        assert_eq!(c.per_second, Some(250));
        assert!(c.charge_refused);
        assert_eq!(
            c.faults,
            crate::sim::faults::FaultSpec::parse("502:0.002,504:0.001").unwrap()
        );
        assert_eq!(c.latency, Duration::from_millis(40));
        assert_eq!(c.jitter, Duration::from_millis(20));
        assert_eq!(c.batch_latency, Duration::from_millis(150));
        assert_eq!(c.daily_limit, None);
        assert!(c.outages.is_empty());
        assert_eq!(c.quota, crate::sim::quota::Rules::P2026);

        let c = sim_args(&[
            "--realism",
            "gmail",
            "--rate-penalty",
            "0s",
            "--per-second",
            "off",
            "--charge-refused=false",
            "--faults",
            "",
            "--latency",
            "5ms",
        ])
        .unwrap()
        .config();
        assert_eq!(c.rate_penalty, None);
        assert_eq!(c.per_second, None);
        assert!(!c.charge_refused && c.faults.is_empty());
        assert_eq!(c.latency, Duration::from_millis(5));
        assert_eq!(c.jitter, Duration::from_millis(20), "not overridden");

        // The same through run's --sim-* options.
        let t = run_conn(&["--sim-realism", "gmail", "--sim-per-second", "500"])
            .unwrap()
            .sim_tuning();
        assert_eq!(t.per_second, Some(Limit(Some(500))));
        assert_eq!(t.rate_penalty, Some(Duration::from_secs(900)));
        assert_eq!(t.latency, Some(Duration::from_millis(40)));
        let t = run_conn(&["--sim-charge-refused"]).unwrap().sim_tuning();
        assert_eq!(t.charge_refused, Some(true));
        assert_eq!(t.per_second, None);
    }

    #[test]
    fn the_help_lists_the_preset_as_it_is() {
        use clap::CommandFactory as _;
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("sim")
            .unwrap()
            .render_long_help()
            .to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for (name, value) in REALISM_GMAIL {
            let shown = if *value == "true" {
                format!("--{name}")
            } else {
                format!("--{name} {value}")
            };
            assert!(help.contains(&shown), "sim --help lacks {shown}");
        }
        let readme = include_str!("../README.md");
        for (name, value) in REALISM_GMAIL {
            let shown = if *value == "true" {
                format!("`--{name}`")
            } else {
                format!("`--{name} {value}`")
            };
            assert!(readme.contains(&shown), "README lacks {shown}");
        }
    }

    #[test]
    fn bad_values_name_the_option() {
        for (args, needle) in [
            (&["--per-second", "10"][..], "at least 50"),
            (&["--per-second", "lots"], "not a number of units"),
            (&["--daily-limit", "0"], "at least 1"),
            (&["--rate-penalty", "soon"], "not a duration"),
            (&["--rate-penalty", "1000h"], "out of range"),
            (&["--outage", "2s"], "has no length"),
            (&["--outage", "2s+0s"], "lasts no time"),
            (&["--outage", "x+1s"], "start"),
            (&["--outage", ""], "no outage given"),
            (&["--realism", "harsh"], "gmail"),
            (&["--charge-refused=maybe"], "maybe"),
            (&["--batch-latency", "1 fortnight"], "fortnight"),
        ] {
            let e = sim_args(args).unwrap_err().to_string();
            assert!(
                e.contains(args[0].split('=').next().unwrap()),
                "{args:?}: {e}"
            );
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        let e = run_conn(&["--sim-per-second", "10"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--sim-per-second") && e.contains("at least 50"),
            "{e}"
        );
        let o = sim_args(&["--outage", "2s+10s, 1m+30s"])
            .unwrap()
            .config()
            .outages;
        assert_eq!(
            o,
            [
                crate::sim::faults::Outage {
                    at: Duration::from_secs(2),
                    length: Duration::from_secs(10)
                },
                crate::sim::faults::Outage {
                    at: Duration::from_secs(60),
                    length: Duration::from_secs(30)
                }
            ]
        );
    }
}
