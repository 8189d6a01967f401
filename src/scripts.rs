//! The shipped scripts (`scripts/*.lua`, embedded by build.rs) and which
//! script a command line names: a file when there is one, else a shipped
//! script by name, so `gmailscript run backup --sim` works from any folder.

use std::path::{Component, Path, PathBuf};

use crate::exit::UsageError;

include!(concat!(env!("OUT_DIR"), "/shipped_scripts.rs"));

/// A script built into the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shipped {
    /// The file name, e.g. `backup.lua`.
    pub(crate) name: &'static str,
    pub(crate) source: &'static str,
}

impl Shipped {
    /// What Lua calls the chunk, so an error reads `[shipped]/backup.lua:12:`
    /// and is not taken for a file in the working folder.
    pub(crate) fn chunk_name(&self) -> String {
        format!("[shipped]/{}", self.name)
    }

    /// The name without `.lua`, as `run` takes it.
    pub(crate) fn stem(&self) -> &'static str {
        self.name.strip_suffix(".lua").unwrap_or(self.name)
    }

    /// The script's one-line purpose: the first sentence of its opening
    /// comment.
    pub(crate) fn purpose(&self) -> String {
        purpose(self.source)
    }
}

/// Every shipped script, sorted by name.
pub(crate) fn shipped() -> impl Iterator<Item = Shipped> {
    SHIPPED
        .iter()
        .map(|(name, source)| Shipped { name, source })
}

/// The shipped script `name` names: `backup`, `backup.lua`, or the path
/// the README writes, `scripts/backup.lua`.
pub(crate) fn find_shipped(name: &Path) -> Option<Shipped> {
    find_in(SHIPPED, name)
}

fn find_in(set: &'static [(&'static str, &'static str)], name: &Path) -> Option<Shipped> {
    let parts: Vec<&str> = name
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| c.as_os_str().to_str())
        .collect::<Option<_>>()?;
    let file = match parts.as_slice() {
        [file] | ["scripts", file] => *file,
        _ => return None,
    };
    let file = if file.ends_with(".lua") {
        file.to_string()
    } else {
        format!("{file}.lua")
    };
    set.iter()
        .find(|(n, _)| *n == file)
        .map(|(name, source)| Shipped { name, source })
}

/// The first sentence of the comment block a script opens with (the lines
/// up to the first blank comment line, joined).
fn purpose(source: &str) -> String {
    let mut text = String::new();
    for line in source.lines() {
        let Some(comment) = line.trim_start().strip_prefix("--") else {
            break;
        };
        let comment = comment.trim();
        if comment.is_empty() {
            break;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(comment);
    }
    let end = text.find(". ").map(|i| i + 1).unwrap_or(text.len());
    text[..end].trim_end_matches(':').trim().to_string()
}

/// The script a command line names.
#[derive(Debug, Clone)]
pub(crate) enum Script {
    File(PathBuf),
    Shipped(Shipped),
}

impl Script {
    /// A file at `path` if there is one (a real file always wins; `NAME`
    /// also means `NAME.lua`), else the shipped script of that name; else
    /// a usage error that lists them.
    pub(crate) fn resolve(path: &Path) -> Result<Script, UsageError> {
        if path.is_file() {
            return Ok(Script::File(path.to_path_buf()));
        }
        // `run backup` with a backup.lua of one's own here: that one.
        let with_lua = path.with_extension("lua");
        if path.extension().is_none() && with_lua.is_file() {
            return Ok(Script::File(with_lua));
        }
        if let Some(s) = find_shipped(path) {
            return Ok(Script::Shipped(s));
        }
        let names: Vec<&str> = shipped().map(|s| s.stem()).collect();
        let what = if path.is_dir() {
            "is a folder, not a script"
        } else {
            "not found"
        };
        Err(UsageError(format!(
            "script {} {what}; the shipped scripts are {} (`gmailscript scripts` lists them; \
             `gmailscript run backup` runs one from any folder)",
            path.display(),
            names.join(", ")
        )))
    }

    /// What ran, for the logs: the file, or the shipped script and why.
    pub(crate) fn describe(&self) -> String {
        match self {
            Script::File(p) => format!("script file {}", p.display()),
            Script::Shipped(s) => format!(
                "the shipped script {} (built in; no file of that name here)",
                s.name
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_scripts_is_shipped_with_a_purpose() {
        let mut on_disk: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".lua"))
                .collect();
        on_disk.sort();
        let names: Vec<&str> = shipped().map(|s| s.name).collect();
        assert_eq!(names, on_disk);
        for s in shipped() {
            let p = s.purpose();
            assert!(p.len() > 10 && !p.contains("--"), "{}: {p:?}", s.name);
        }
    }

    #[test]
    fn names_find_the_shipped_script() {
        for name in [
            "backup",
            "backup.lua",
            "scripts/backup.lua",
            "./scripts/backup.lua",
        ] {
            assert_eq!(
                find_shipped(Path::new(name)).map(|s| s.name),
                Some("backup.lua"),
                "{name}"
            );
        }
        for name in [
            "nope",
            "other/backup.lua",
            "/scripts/backup.lua",
            "a/scripts/backup.lua",
        ] {
            assert!(find_shipped(Path::new(name)).is_none(), "{name}");
        }
    }

    #[test]
    fn the_purpose_is_the_first_sentence() {
        assert_eq!(
            purpose(
                "-- Label and archive old newsletters. See what it would do first:\n--\n-- x\n"
            ),
            "Label and archive old newsletters."
        );
        assert_eq!(
            purpose("-- A custom rule, for accounts that hit\n-- \"Too many\" or want more.\n--\nlocal x\n"),
            "A custom rule, for accounts that hit \"Too many\" or want more."
        );
        assert_eq!(
            purpose("-- Top senders by count and by size.\n"),
            "Top senders by count and by size."
        );
        assert_eq!(
            purpose("-- Does this and that:\n--\n--   run it\n"),
            "Does this and that"
        );
        assert_eq!(purpose("local x = 1\n"), "");
    }
}
