//! Embeds the shipped scripts: every `scripts/*.lua` becomes an entry of
//! `SHIPPED` (name, source), so `gmailscript run backup` works from any
//! folder and `gmailscript scripts` lists them. A script added to the
//! folder is in the next build without a list to keep by hand.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=scripts");
    let dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("scripts");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.ends_with(".lua").then_some(name)
        })
        .collect();
    names.sort();
    let mut out = String::from("/// The shipped scripts, by file name, sorted.\n");
    out.push_str("pub static SHIPPED: &[(&str, &str)] = &[\n");
    for name in &names {
        let path = dir.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("shipped_scripts.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("cannot write {}: {e}", dest.display()));
}
