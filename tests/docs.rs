//! Every Lua example in the docs runs, as a reader would paste it, against
//! the built-in simulator (which delivers new mail every 300 ms, so the
//! gmail.watch examples have something to see), and exits 0.

use std::path::PathBuf;
use std::process::Command;

mod common;

/// The ```lua blocks of a Markdown file, with the line each starts on.
fn examples(doc: &str) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(doc))
        .unwrap_or_else(|e| panic!("{doc}: {e}"));
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == "```lua" => current = Some((n + 1, String::new())),
            None => {}
            Some(_) if line.trim_start() == "```" => out.extend(current.take()),
            Some((_, code)) => {
                code.push_str(line);
                code.push('\n');
            }
        }
    }
    out
}

#[test]
fn every_lua_example_in_the_docs_runs() {
    let mut ran = 0;
    let mut failed = Vec::new();
    for doc in ["README.md", "docs/lua-api.md", "docs/watch.md"] {
        for (line, code) in examples(doc) {
            let dir = tempfile::tempdir().unwrap();
            let script = dir.path().join("example.lua");
            std::fs::write(&script, &code).unwrap();
            let out = Command::new(common::BIN)
                .args([
                    "run",
                    "example.lua",
                    "--sim",
                    "--sim-deliver-every",
                    "300ms",
                    "-q",
                ])
                .current_dir(dir.path())
                .output()
                .unwrap();
            ran += 1;
            if !out.status.success() {
                failed.push(format!(
                    "{doc}:{line}: exit {:?}\n{}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(ran >= 30, "only {ran} examples found");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
