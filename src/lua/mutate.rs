//! `gmail.modify` and `gmail.trash`: label changes and trashing, as
//! engine runs of their own under the built-in policy (batchModify calls of
//! up to 1,000 ids; one trash call per message). A dry run only says what
//! it would do.

use mlua::{Lua, Table, Value};

use crate::gmail::request::Request;
use crate::gmail::runner::{Answer, DefaultPolicy, Item, Report, RunOptions};

use super::batch::{ids_arg, note_outcome, report_table};
use super::labels::resolve_labels;
use super::opts::Opts;

fn preview(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
    if ids.len() > shown.len() {
        format!("{} and {} more", shown.join(", "), ids.len() - shown.len())
    } else {
        shown.join(", ")
    }
}

/// What a dry run reports: the `n` messages as done, `dry_run` set.
fn dry_run_report(lua: &Lua, n: usize) -> mlua::Result<Table> {
    let r = Report {
        ok: n as u64,
        ..Report::default()
    };
    report_table(lua, &r, true)
}

/// Run mutation requests through the runner (paced, retried, reported).
/// Also gives the keys of the items whose answer confirmed success.
async fn mutate(lua: &Lua, items: Vec<Item>) -> mlua::Result<(Report, Vec<String>)> {
    let ctx = crate::lua::ctx(lua);
    let mut policy = DefaultPolicy;
    let mut done = Vec::new();
    let mut sink = |key: &str, _: Answer| {
        done.push(key.to_string());
        Ok(())
    };
    let _running = ctx.running();
    let report = ctx
        .runner
        .run(
            futures_util::stream::iter(items.into_iter().map(Ok)),
            &mut policy,
            &mut sink,
            &RunOptions::default(),
            Some(ctx.cancel.clone()),
        )
        .await;
    note_outcome(lua, &report, None);
    Ok((report, done))
}

pub(crate) async fn modify(lua: Lua, (ids, opts): (Value, Value)) -> mlua::Result<Table> {
    let ids = ids_arg("gmail.modify", ids)?;
    let o = Opts::new("gmail.modify", Some(opts), &["add", "remove"])?;
    let add_names = o.strings("add")?.unwrap_or_default();
    let remove_names = o.strings("remove")?.unwrap_or_default();
    if add_names.is_empty() && remove_names.is_empty() {
        return Err(mlua::Error::runtime(
            "gmail.modify: give labels to 'add' or 'remove'",
        ));
    }
    let add = resolve_labels(&lua, "gmail.modify", &add_names).await?;
    let remove = resolve_labels(&lua, "gmail.modify", &remove_names).await?;
    let ctx = crate::lua::ctx(&lua);
    if ctx.dry_run {
        println!(
            "dry run: would modify {} messages: add [{}] remove [{}]: {}",
            ids.len(),
            add_names.join(", "),
            remove_names.join(", "),
            preview(&ids)
        );
        return dry_run_report(&lua, ids.len());
    }
    let mut sizes = std::collections::HashMap::new();
    let items: Vec<Item> = Request::batch_modify_chunks(&ids, &add, &remove)
        .into_iter()
        .zip(ids.chunks(crate::gmail::request::BATCH_MODIFY_MAX))
        .map(|(request, chunk)| {
            let key = format!(
                "{}..{} ({} ids)",
                chunk[0],
                chunk[chunk.len() - 1],
                chunk.len()
            );
            sizes.insert(key.clone(), chunk.len() as u64);
            Item { key, request }
        })
        .collect();
    let (r, done) = mutate(&lua, items).await?;
    // Count messages, not calls: the ids of the calls whose answer said
    // they succeeded, and no others (a run that stopped early left some
    // calls failed, not done or never sent, and the last call may be short).
    let ok: u64 = done.iter().map(|key| sizes[key]).sum();
    let t = report_table(&lua, &r, false)?;
    t.set("ok", ok)?;
    Ok(t)
}

pub(crate) async fn trash(lua: Lua, ids: Value) -> mlua::Result<Table> {
    let ids = ids_arg("gmail.trash", ids)?;
    let ctx = crate::lua::ctx(&lua);
    if ctx.dry_run {
        println!(
            "dry run: would trash {} messages: {}",
            ids.len(),
            preview(&ids)
        );
        return dry_run_report(&lua, ids.len());
    }
    let items = ids
        .iter()
        .map(|id| Item {
            key: id.clone(),
            request: Request::trash(id),
        })
        .collect();
    let (r, _) = mutate(&lua, items).await?;
    report_table(&lua, &r, false)
}
