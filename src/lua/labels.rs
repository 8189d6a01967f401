//! Gmail labels for the Lua side: labels.list fetched once per host and
//! kept, and label names resolved to ids for the calls that take labels.

use mlua::Lua;

use crate::gmail::request::Request;
use crate::gmail::ApiError;

use super::opts::short;

#[derive(Debug, Clone)]
pub(crate) struct LabelInfo {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) system: bool,
}

/// Label ids for names or ids: system ids and `Label_N` pass as they are;
/// names are looked up (labels.list, once).
pub(crate) async fn resolve_labels(
    lua: &Lua,
    func: &str,
    names: &[String],
) -> mlua::Result<Vec<String>> {
    // Gmail's system label ids. The simulator keeps its own list on
    // purpose (it must not share code with the client).
    const SYSTEM: &[&str] = &[
        "INBOX",
        "SENT",
        "DRAFT",
        "SPAM",
        "TRASH",
        "UNREAD",
        "STARRED",
        "IMPORTANT",
        "CHAT",
        "CATEGORY_PERSONAL",
        "CATEGORY_SOCIAL",
        "CATEGORY_PROMOTIONS",
        "CATEGORY_UPDATES",
        "CATEGORY_FORUMS",
    ];
    let simple = |n: &String| SYSTEM.contains(&n.as_str()) || n.starts_with("Label_");
    if names.iter().all(simple) {
        return Ok(names.to_vec());
    }
    let labels = labels(lua).await.map_err(|e| {
        mlua::Error::runtime(format!("{func}: cannot list labels to resolve names: {e}"))
    })?;
    names
        .iter()
        .map(|n| {
            labels
                .iter()
                .find(|l| l.id == *n || l.name.eq_ignore_ascii_case(n))
                .map(|l| l.id.clone())
                .ok_or_else(|| {
                    let user: Vec<&str> = labels
                        .iter()
                        .filter(|l| !l.system)
                        .map(|l| l.name.as_str())
                        .collect();
                    mlua::Error::runtime(format!(
                        "{func}: unknown label {} (user labels: {})",
                        short(n),
                        user.join(", ")
                    ))
                })
        })
        .collect()
}

/// labels.list, fetched once and kept for name lookups.
pub(crate) async fn labels(lua: &Lua) -> Result<Vec<LabelInfo>, ApiError> {
    let ctx = super::ctx(lua);
    if let Some(l) = ctx.labels.borrow().clone() {
        return Ok(l);
    }
    let v = ctx
        .client()
        .call_json_retrying(&Request::list_labels(), &ctx.backoff)
        .await?;
    let list: Vec<LabelInfo> = v["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| LabelInfo {
            id: l["id"].as_str().unwrap_or("").to_string(),
            name: l["name"].as_str().unwrap_or("").to_string(),
            system: l["type"] == "system",
        })
        .collect();
    *ctx.labels.borrow_mut() = Some(list.clone());
    Ok(list)
}
