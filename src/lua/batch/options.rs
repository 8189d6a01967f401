//! gmail.batch's options, read from its table in one place and checked
//! before anything is fetched; a wrong one raises, naming it.

use mlua::{Function, Value};

use crate::gmail::backoff::Backoff;
use crate::gmail::request::{Format, Request};
use crate::gmail::runner::RunOptions;
use crate::lua::opts::Opts;
use crate::lua::request::{fetch_request, parse_format, FORMATS};
use crate::lua::store::LuaState;

use super::policy::ChunkRule;

/// The options gmail.batch knows.
pub(crate) const NAMES: &[&str] = &[
    "format",
    "headers",
    "chunk",
    "max_chunk",
    "parallel",
    "on_error",
    "on_message",
    "resume",
    "max_attempts",
    "backoff",
    "progress",
    "total",
];

pub(crate) struct BatchOptions {
    pub(crate) fetch: Fetch,
    pub(crate) chunk: Option<ChunkRule>,
    pub(crate) max_chunk: Option<usize>,
    pub(crate) parallel: usize,
    /// None: the built-in policy (DefaultPolicy), straight from Rust.
    pub(crate) on_error: Option<Function>,
    pub(crate) on_message: Option<Function>,
    /// `resume`: the state that marks ids done.
    pub(crate) state: Option<LuaState>,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) backoff: Backoff,
    pub(crate) progress: bool,
    /// The bar's length: `total`, else the length of a list of ids.
    pub(crate) total: Option<u64>,
}

/// What each id is fetched with.
pub(crate) struct Fetch {
    format: Fmt,
    headers: Vec<String>,
}

enum Fmt {
    Fixed(Format),
    /// The script's function(id), returning a request table.
    Func(Function),
}

impl Fetch {
    /// The request for message `id`.
    pub(crate) fn request(&self, id: &str) -> mlua::Result<Request> {
        match &self.format {
            Fmt::Fixed(f) => Ok(Request::get_message(id, *f, &self.headers)),
            Fmt::Func(func) => func
                .call::<Value>(id)
                .and_then(|v| fetch_request("gmail.batch format function", v)),
        }
    }
}

impl BatchOptions {
    /// The options in `o` (whose keys are checked already), in the order
    /// they are reported when wrong; `defaults` is the host's backoff,
    /// `count` how many ids there are when that is known.
    pub(crate) fn parse(
        o: &Opts,
        defaults: &Backoff,
        count: Option<u64>,
    ) -> mlua::Result<BatchOptions> {
        let format = match o.raw("format")? {
            Value::Nil => Fmt::Fixed(Format::Metadata),
            Value::String(s) => Fmt::Fixed(parse_format("gmail.batch", &s.to_str()?)?),
            Value::Function(f) => Fmt::Func(f),
            other => {
                return Err(o.error(
                    "format",
                    &format!("one of {FORMATS}, or a function(id) returning a request"),
                    &other,
                ))
            }
        };
        let headers = o
            .strings("headers")?
            .unwrap_or_else(|| ["From", "To", "Subject", "Date"].map(String::from).to_vec());
        let chunk = match o.raw("chunk")? {
            Value::Nil => None,
            Value::Function(f) => Some(ChunkRule::Func(f)),
            Value::Integer(_) | Value::Number(_) => Some(ChunkRule::Fixed(
                o.integer("chunk", 1, 100)?.unwrap_or(50) as usize,
            )),
            other => {
                return Err(o.error(
                    "chunk",
                    "a number from 1 to 100 or a function(stats)",
                    &other,
                ))
            }
        };
        let max_chunk = o.integer("max_chunk", 1, 100)?.map(|n| n as usize);
        let parallel = o.integer("parallel", 1, 16)?.unwrap_or(1) as usize;
        let on_error = o.function("on_error")?;
        let on_message = o.function("on_message")?;
        let state = LuaState::option(o, "resume")?;
        let mut max_attempts = o.integer("max_attempts", 1, 1000)?.map(|n| n as u32);
        let backoff = match o.raw("backoff")? {
            Value::Nil => defaults.clone(),
            v @ Value::Table(_) => {
                let b = Opts::nested(
                    "gmail.batch",
                    "backoff",
                    v,
                    &["attempts", "base", "max", "jitter"],
                )?;
                let (backoff, attempts_given) = crate::lua::retry::backoff_options(&b, defaults)?;
                // backoff.attempts caps the tries too, unless max_attempts says.
                if attempts_given {
                    max_attempts = max_attempts.or(Some(backoff.attempts));
                }
                backoff
            }
            other => {
                return Err(o.error("backoff", "a table {attempts, base, max, jitter}", &other))
            }
        };
        let progress = o.boolean("progress")?.unwrap_or(true);
        let total = o
            .integer("total", 0, u32::MAX.into())?
            .map(|n| n as u64)
            .or(count);
        Ok(BatchOptions {
            fetch: Fetch { format, headers },
            chunk,
            max_chunk,
            parallel,
            on_error,
            on_message,
            state,
            max_attempts,
            backoff,
            progress,
            total,
        })
    }

    /// The engine's options for this batch: chunk sizes from `chunk` and
    /// `max_chunk` (a chunk function may go up to 100), `parallel`, the
    /// backoff and the tries.
    pub(crate) fn run_options(&self) -> RunOptions {
        let chunk_max = self.max_chunk.unwrap_or(match &self.chunk {
            Some(ChunkRule::Fixed(n)) => *n,
            _ => 50,
        });
        RunOptions {
            chunk_start: chunk_max.min(50),
            chunk_max: chunk_max.max(match &self.chunk {
                Some(ChunkRule::Func(_)) => 100,
                _ => 1,
            }),
            parallel: self.parallel,
            backoff: self.backoff.clone(),
            max_attempts: self
                .max_attempts
                .unwrap_or(RunOptions::default().max_attempts),
        }
    }
}
