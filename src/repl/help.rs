//! `:help`: the modules and commands, and sections of the Lua API
//! reference. The reference is docs/lua-api.md built in, so the help
//! says what the docs say.

use mlua::{Lua, Value};

const REFERENCE: &str = include_str!("../../docs/lua-api.md");

struct Heading {
    level: usize,
    title: &'static str,
    /// Line index in REFERENCE.
    line: usize,
}

/// Headings of level 2 and deeper, outside code blocks.
fn headings() -> Vec<Heading> {
    let mut out = Vec::new();
    let mut in_code = false;
    for (i, line) in REFERENCE.lines().enumerate() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if in_code || level < 2 || !line[level..].starts_with(' ') {
            continue;
        }
        out.push(Heading {
            level,
            title: line[level..].trim(),
            line: i,
        });
    }
    out
}

/// Every topic `:help TOPIC` knows, in the reference's order.
pub(crate) fn topics() -> Vec<&'static str> {
    headings().into_iter().map(|h| h.title).collect()
}

/// The reference's section on `topic`: a heading, its last dotted part
/// (`batch` for gmail.batch) or one of its words (`sleep`), any case. A
/// module's section gives its introduction and the topics under it.
pub(crate) fn section(topic: &str) -> Option<String> {
    let t = topic.trim().trim_end_matches("()").to_lowercase();
    let hs = headings();
    let found = hs
        .iter()
        .position(|h| h.title.to_lowercase() == t)
        .or_else(|| {
            hs.iter()
                .position(|h| h.title.to_lowercase().rsplit('.').next() == Some(&t))
        })
        .or_else(|| {
            hs.iter()
                .position(|h| h.title.to_lowercase().split_whitespace().any(|w| w == t))
        })?;
    let h = &hs[found];
    let rest = &hs[found + 1..];
    let end = rest
        .iter()
        .find(|n| n.level <= h.level)
        .map_or(usize::MAX, |n| n.line);
    let subs: Vec<&Heading> = rest
        .iter()
        .take_while(|n| n.level > h.level)
        .filter(|n| n.level == h.level + 1)
        .collect();
    let lines: Vec<&str> = REFERENCE.lines().collect();
    let (upto, see) = match subs.first() {
        Some(first) if h.level == 2 => (
            first.line,
            Some(
                subs.iter()
                    .map(|s| format!(":help {}", s.title))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ),
        _ => (end.min(lines.len()), None),
    };
    let mut body: Vec<&str> = lines[h.line..upto].to_vec();
    while body
        .last()
        .is_some_and(|l| l.trim().is_empty() || l.trim() == "---")
    {
        body.pop();
    }
    let mut out = strip_links(&body.join("\n"));
    if let Some(see) = see {
        out.push_str("\n\nSee ");
        out.push_str(&see);
    }
    Some(out)
}

/// `[text](target)` as `text`.
fn strip_links(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let link = after.find("](").and_then(|close| {
            let text = &after[..close];
            let target = &after[close + 2..];
            let end = target.find(')')?;
            (!text.contains(['[', '\n'])).then_some((text, close + 2 + end + 1))
        });
        match link {
            Some((text, used)) => {
                out.push_str(&rest[..open]);
                out.push_str(text);
                rest = &after[used..];
            }
            None => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The globals the host adds to plain Lua, with their members: what
/// `:help` lists as the modules.
pub(crate) fn modules(lua: &Lua) -> Vec<(String, String)> {
    let plain = Lua::new();
    let mut out: Vec<(String, String)> = lua
        .globals()
        .pairs::<String, Value>()
        .filter_map(Result::ok)
        .filter(|(name, _)| !plain.globals().contains_key(name.as_str()).unwrap_or(true))
        .map(|(name, v)| {
            let what = match v {
                Value::Table(t) => {
                    // With the fields a read-only member keeps in `__index`.
                    let hidden = match t.metatable().map(|mt| mt.raw_get("__index")) {
                        Some(Ok(Value::Table(fields))) => Some(fields),
                        _ => None,
                    };
                    let mut keys: Vec<String> = std::iter::once(t)
                        .chain(hidden)
                        .flat_map(|t| {
                            t.pairs::<String, Value>()
                                .filter_map(|kv| kv.ok().map(|(k, _)| k))
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    keys.sort();
                    keys.join(", ")
                }
                Value::Function(_) => "function".to_string(),
                other => other.to_string().unwrap_or_default(),
            };
            (name, what)
        })
        .collect();
    out.sort();
    out
}

/// `:help` alone.
pub(crate) fn overview(modules: &[(String, String)]) -> String {
    let mut out = String::from(
        "Type Lua: a statement runs, an expression prints its value.\n\
         Globals last the session; a `local` lasts one entry.\n\n\
         Modules and globals (Tab completes their members):\n",
    );
    for (name, what) in modules {
        out.push_str(&format!("  {name:<9} {what}\n"));
    }
    out.push_str(
        "\nCommands:\n\
         \x20 :help          this overview\n\
         \x20 :help TOPIC    a section of the Lua API reference, e.g. :help gmail.batch, :help errors\n\
         \x20 :quit          leave (also Ctrl-D, or Ctrl-C twice on an empty line)\n\
         \nKeys: Tab completes; Up/Down and Ctrl-R search the history; Ctrl-C cancels the running\n\
         call, or clears the line.\n\nTopics: ",
    );
    let mut width = 8;
    let topics = topics();
    for (i, t) in topics.iter().enumerate() {
        let item = if i + 1 < topics.len() {
            format!("{t}, ")
        } else {
            t.to_string()
        };
        if width + item.len() > 78 {
            out.push_str("\n  ");
            width = 2;
        }
        out.push_str(&item);
        width += item.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_by_name_part_or_word() {
        let batch = section("gmail.batch").unwrap();
        assert!(batch.starts_with("### gmail.batch\n"), "{batch}");
        assert!(
            batch.contains("#### BatchReport"),
            "its subsections come along"
        );
        assert!(!batch.contains("### gmail.history"));
        assert_eq!(section("batch"), Some(batch));
        assert!(section("SLEEP").unwrap().starts_with("## time and sleep"));
        assert!(section("no such thing").is_none());
    }

    #[test]
    fn a_module_lists_its_topics() {
        let output = section("output").unwrap();
        assert!(output.starts_with("## output\n"));
        assert!(output.ends_with("See :help output.jsonl, :help output.mbox, :help output.maildir, :help output.eml, :help Output methods"), "{output}");
    }

    #[test]
    fn links_keep_their_text() {
        assert_eq!(
            strip_links("see [gmail.fetch](#gmailfetch) and `string[]` [x]"),
            "see gmail.fetch and `string[]` [x]"
        );
    }
}
