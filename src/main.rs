//! Thin entry point: parse arguments, dispatch, map errors to exit codes and
//! one readable line.

use std::process::ExitCode;

use clap::Parser;
use gmailscript::cli::{Cli, Command};

use gmailscript::exit::EXIT_USAGE;

fn main() -> ExitCode {
    // The token for --endpoint is the engine's alone: out of the
    // environment before a script could read it (os.getenv) or pass it on
    // to a program it starts. Removing a variable is only sound while no
    // other thread reads the environment (edition 2024 makes remove_var
    // unsafe for that reason): here, before the runtime, the logger or
    // anything else has started a thread, the process has one thread.
    let token = std::env::var_os(gmailscript::app::TOKEN_VAR);
    std::env::remove_var(gmailscript::app::TOKEN_VAR);
    gmailscript::app::set_env_token(token.and_then(|t| t.into_string().ok()));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let argv: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let tip = (e.kind() == clap::error::ErrorKind::UnknownArgument)
                .then(|| gmailscript::cli::script_args_tip(&argv))
                .flatten();
            let _ = e.print();
            if let Some(tip) = tip {
                eprintln!("\ntip: {tip}");
            }
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gmailscript: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sim(args) => sim(args).await,
            Command::Run(args) => gmailscript::app::run(args, cli.verbose)
                .await
                .map(ExitCode::from),
            Command::Repl(args) => gmailscript::repl::run(args, cli.verbose)
                .await
                .map(ExitCode::from),
            Command::Auth(args) => gmailscript::app_auth::auth(args).await.map(ExitCode::from),
            Command::Scripts(args) => gmailscript::app_info::scripts(args).map(ExitCode::from),
            Command::Completions(args) => {
                gmailscript::app_info::completions(args).map(ExitCode::from)
            }
            Command::Man(args) => gmailscript::app_info::man(args).map(ExitCode::from),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gmailscript: {}", gmailscript::exit::one_line(&e));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::prelude::*;
    // gmailscript's own events; the libraries' (hyper, reqwest, h2,
    // rustls: connection-pool chatter) only when RUST_LOG asks for them.
    let default = match verbose {
        0 => "warn",
        1 => "warn,gmailscript=info",
        2 => "warn,gmailscript=debug",
        _ => "warn,gmailscript=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // yup-oauth2 logs access and refresh tokens, codes and client secrets
    // at debug level: only its warnings get through, whatever RUST_LOG says.
    let no_secrets = tracing_subscriber::filter::filter_fn(|meta| {
        !meta.target().starts_with("yup_oauth2") || *meta.level() <= tracing::Level::WARN
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_filter(no_secrets),
        )
        .init();
}

async fn sim(args: gmailscript::cli::SimArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let handle = gmailscript::sim::start(args.config()).await?;
    // The base URL is the first line of stdout, for scripts to read.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", handle.base_url)?;
    out.flush()?;
    drop(out);
    let sim = &handle.sim;
    let users = sim.config.users.len();
    let mailboxes = match &sim.config.mbox {
        // What was loaded, not --messages (which only the others get).
        Some(path) => {
            let loaded = sim
                .user(sim.default_user())
                .map(|u| {
                    let mb = sim.mailbox(&u).read();
                    mb.unwrap_or_else(std::sync::PoisonError::into_inner)
                        .messages
                        .len()
                })
                .unwrap_or(0);
            let others = match users {
                1 => String::new(),
                _ => format!(", the others {} generated each", sim.config.messages),
            };
            format!(
                "{} has the {loaded} messages of {}{others}",
                sim.default_user(),
                path.display()
            )
        }
        None => format!("{} messages each", sim.config.messages),
    };
    eprintln!(
        "gmailscript sim: serving {users} users ({mailboxes}) at {}; token {:?}; Ctrl-C stops",
        handle.base_url, sim.config.token
    );
    // Ctrl-C or SIGTERM: stop serving and exit 0.
    if gmailscript::app::Signals::new().next().await.is_none() {
        anyhow::bail!("cannot listen for Ctrl-C");
    }
    handle.stop().await;
    Ok(ExitCode::SUCCESS)
}
