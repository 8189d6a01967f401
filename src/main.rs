//! Thin entry point: parse arguments, dispatch, map errors to exit codes and
//! one readable line.

use std::process::ExitCode;

use clap::Parser;
use gmailscript::cli::{Cli, Command};

use gmailscript::app::EXIT_USAGE;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gmailscript: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::prelude::*;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
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
    eprintln!(
        "gmailscript sim: serving {} users ({} messages each) at {}; token {:?}; Ctrl-C stops",
        handle.sim.config.users.len(),
        handle.sim.config.messages,
        handle.base_url,
        handle.sim.config.token
    );
    tokio::signal::ctrl_c().await?;
    handle.stop().await;
    Ok(ExitCode::SUCCESS)
}
