//! Where `require` looks, whatever the working folder: beside the script,
//! then the user's folder (the config directory's `lua/`), then
//! `package.path` as Lua built it (from `LUA_PATH_5_4`/`LUA_PATH`, or
//! Lua's default, which has `./?.lua`). A shipped script finds the other
//! shipped scripts as its neighbours.

use std::path::{Path, PathBuf};

use mlua::{Lua, Table, Value};

/// Registry key of `package.path` as Lua built it, before ours.
const BASE_PATH: &str = "gmailscript.base_path";

/// Records Lua's own `package.path` and puts the user's folder before it.
pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
    let package: Table = lua.globals().get("package")?;
    let base: String = package.get("path")?;
    lua.set_named_registry_value(BASE_PATH, base)?;
    set_path(lua, None)
}

/// The user's module folder: `lua/` in the config directory.
fn user_dir() -> Option<PathBuf> {
    crate::auth::cache::config_dir().map(|d| d.join("lua"))
}

/// `package.path` for a script in `dir` (None: no script, the REPL).
pub(crate) fn set_path(lua: &Lua, dir: Option<&Path>) -> mlua::Result<()> {
    let base: String = lua.named_registry_value(BASE_PATH)?;
    let mut path = String::new();
    let dirs = dir
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf()))
        .into_iter()
        .chain(user_dir());
    for d in dirs {
        let d = d.display().to_string();
        // `;` separates templates and `?` stands for the name: a folder
        // with either cannot be written into package.path.
        if d.contains([';', '?']) {
            tracing::warn!("require cannot look in {d}: its name has ';' or '?'");
            continue;
        }
        let d = d.trim_end_matches('/');
        path.push_str(&format!("{d}/?.lua;{d}/?/init.lua;"));
    }
    path.push_str(&base);
    let package: Table = lua.globals().get("package")?;
    package.set("path", path)
}

/// A searcher, second after `package.preload`, that finds the modules of
/// `set` (name, source) by name: what "beside the script" means for a
/// script that is itself built in.
pub(crate) fn add_shipped_searcher(
    lua: &Lua,
    set: &'static [(&'static str, &'static str)],
) -> mlua::Result<()> {
    let searcher = lua.create_function(move |lua, name: String| {
        let file = format!("{}.lua", name.replace('.', "/"));
        match set.iter().find(|(n, _)| *n == file) {
            Some((n, source)) => {
                let chunk_name = format!("[shipped]/{n}");
                let loader = lua
                    .load(*source)
                    .set_name(format!("@{chunk_name}"))
                    .into_function()?;
                Ok((
                    Value::Function(loader),
                    Value::String(lua.create_string(&chunk_name)?),
                ))
            }
            None => Ok((
                Value::String(lua.create_string(format!("\n\tno shipped script '{file}'"))?),
                Value::Nil,
            )),
        }
    })?;
    let package: Table = lua.globals().get("package")?;
    let searchers: Table = package.get("searchers")?;
    searchers.raw_insert(2, searcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    static SET: &[(&str, &str)] = &[
        ("main.lua", "return require('helper').twice(21)"),
        (
            "helper.lua",
            "return { twice = function(n) return 2 * n end }",
        ),
    ];

    #[test]
    fn a_shipped_script_requires_its_neighbour() {
        let lua = Lua::new();
        register(&lua).unwrap();
        add_shipped_searcher(&lua, SET).unwrap();
        let n: i64 = lua.load(SET[0].1).eval().unwrap();
        assert_eq!(n, 42);
        let e = lua
            .load("require('absent')")
            .exec()
            .unwrap_err()
            .to_string();
        assert!(e.contains("no shipped script 'absent.lua'"), "{e}");
    }

    #[test]
    fn the_script_folder_comes_first_and_lua_path_stays() {
        let lua = Lua::new();
        let package: Table = lua.globals().get("package").unwrap();
        package.set("path", "/from/LUA_PATH/?.lua").unwrap();
        register(&lua).unwrap();
        set_path(&lua, Some(Path::new("/srv/scripts"))).unwrap();
        let path: String = package.get("path").unwrap();
        assert!(
            path.starts_with("/srv/scripts/?.lua;/srv/scripts/?/init.lua;"),
            "{path}"
        );
        assert!(path.ends_with(";/from/LUA_PATH/?.lua"), "{path}");
        set_path(&lua, Some(Path::new("/a;b"))).unwrap();
        let path: String = package.get("path").unwrap();
        assert!(!path.contains("/a;b"), "{path}");
    }
}
