//! The commands that print and touch no mailbox: `scripts`, `completions`
//! and `man`, all from the same clap definitions as the rest.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs, ManArgs, ScriptsArgs};
use crate::exit::{UsageError, EXIT_OK};
use crate::scripts;

/// `gmailscript scripts [NAME]`: the list, or one script's source.
pub fn scripts(args: ScriptsArgs) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    if let Some(name) = &args.name {
        let s = scripts::find_shipped(name).ok_or_else(|| {
            let names: Vec<&str> = scripts::shipped().map(|s| s.stem()).collect();
            UsageError(format!(
                "no shipped script {}; they are {}",
                name.display(),
                names.join(", ")
            ))
        })?;
        out.write_all(s.source.as_bytes())?;
        return Ok(EXIT_OK);
    }
    let width = scripts::shipped()
        .map(|s| s.stem().len())
        .max()
        .unwrap_or(0);
    for s in scripts::shipped() {
        writeln!(out, "{:width$}  {}", s.stem(), s.purpose())?;
    }
    writeln!(
        out,
        "\nRun one from any folder with `gmailscript run NAME --sim` (a file of that name \
         in the working folder wins); `gmailscript scripts NAME` prints it."
    )?;
    Ok(EXIT_OK)
}

/// `gmailscript completions SHELL`.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<u8> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "gmailscript", &mut std::io::stdout());
    Ok(EXIT_OK)
}

/// `gmailscript man [--dir DIR]`.
pub fn man(args: ManArgs) -> anyhow::Result<u8> {
    let cmd = Cli::command();
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, dir).map_err(|e| {
                UsageError(format!(
                    "cannot write the man pages into {}: {e}",
                    dir.display()
                ))
            })?;
            eprintln!("gmailscript: man pages written to {}", dir.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()?;
        }
    }
    Ok(EXIT_OK)
}
