//! Where a batch's ids come from: a list, a `gmail.list{...}` iterator
//! (its stream taken as it is) or an iterator function. Here they become
//! the stream the runner pulls from, less the ids a resume state has done,
//! each with the request that fetches it.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;

use futures_util::{Stream, StreamExt};
use mlua::{Function, MetaMethod, UserData, UserDataMethods, Value};

use crate::gmail::client::MessageRef;
use crate::gmail::runner::Item;
use crate::gmail::ApiError;

use super::options::Fetch;
use super::Raised;
use crate::lua::opts::display;
use crate::lua::store::LuaState;

type RefStream = Pin<Box<dyn Stream<Item = Result<MessageRef, ApiError>>>>;

/// `gmail.list{...}`: a callable iterator; `gmail.batch` takes its stream
/// A batch's ids as the runner pulls them.
type IdStream = Pin<Box<dyn Stream<Item = Result<String, ApiError>>>>;

/// directly, so a listing feeds a batch page by page.
pub(crate) struct IdIter {
    stream: RefCell<Option<RefStream>>,
    left: RefCell<Option<u64>>,
}

impl IdIter {
    /// `stream`, of which `limit` refs at the most are given.
    pub(crate) fn new(
        stream: impl Stream<Item = Result<MessageRef, ApiError>> + 'static,
        limit: Option<u64>,
    ) -> IdIter {
        IdIter {
            stream: RefCell::new(Some(Box::pin(stream))),
            left: RefCell::new(limit),
        }
    }

    fn take(&self) -> Option<RefStream> {
        let stream = self.stream.borrow_mut().take()?;
        Some(match self.left.borrow_mut().take() {
            Some(n) => Box::pin(stream.take(n as usize)),
            None => stream,
        })
    }
}

impl UserData for IdIter {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_async_meta_method(
            MetaMethod::Call,
            |lua, this, _: mlua::MultiValue| async move {
                if *this.left.borrow() == Some(0) {
                    return Ok((Value::Nil, Value::Nil));
                }
                let Some(mut stream) = this.stream.borrow_mut().take() else {
                    return Ok((Value::Nil, Value::Nil));
                };
                let next = stream.next().await;
                *this.stream.borrow_mut() = Some(stream);
                match next {
                    None => Ok((Value::Nil, Value::Nil)),
                    Some(Ok(r)) => {
                        if let Some(n) = this.left.borrow_mut().as_mut() {
                            *n -= 1;
                        }
                        Ok((
                            Value::String(lua.create_string(&r.id)?),
                            Value::String(lua.create_string(&r.thread_id)?),
                        ))
                    }
                    Some(Err(e)) => Err(mlua::Error::runtime(format!("gmail.list: {e}"))),
                }
            },
        );
    }
}

/// Where a batch's ids come from.
pub(crate) enum Ids {
    List(Vec<String>),
    Stream(RefStream),
    Func(Function),
}
impl Ids {
    /// How many ids there are, when that is known before the run.
    pub(crate) fn count(&self) -> Option<u64> {
        match self {
            Ids::List(l) => Some(l.len() as u64),
            _ => None,
        }
    }
}

pub(crate) fn ids_of(func: &str, v: Value) -> mlua::Result<Ids> {
    match v {
        Value::Table(t) => {
            let mut ids = Vec::with_capacity(t.raw_len());
            for (i, v) in t.sequence_values::<Value>().enumerate() {
                match v? {
                    Value::String(s) => ids.push(s.to_str()?.to_string()),
                    other => {
                        return Err(mlua::Error::runtime(format!(
                            "{func}: ids[{}] must be a message id string, got {}",
                            i + 1,
                            display(&other)
                        )))
                    }
                }
            }
            Ok(Ids::List(ids))
        }
        Value::UserData(ud) => {
            let it = ud.borrow::<IdIter>().map_err(|_| {
                mlua::Error::runtime(format!(
                    "{func}: ids must be a list of ids, gmail.list{{...}}, or an iterator function"
                ))
            })?;
            let stream = it.take().ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "{func}: this gmail.list iterator was already used up"
                ))
            })?;
            Ok(Ids::Stream(stream))
        }
        Value::Function(f) => Ok(Ids::Func(f)),
        other => Err(mlua::Error::runtime(format!(
            "{func}: ids must be a list of ids, gmail.list{{...}}, or an iterator function, got {}",
            display(&other)
        ))),
    }
}

pub(crate) fn ids_arg(func: &str, v: Value) -> mlua::Result<Vec<String>> {
    match ids_of(func, v)? {
        Ids::List(l) => Ok(l),
        _ => Err(mlua::Error::runtime(format!(
            "{func}: ids must be a list of message ids"
        ))),
    }
}

/// The ids as a stream. An error of the iterator function, or a value
/// from it that is not an id, is kept in `raised`; the stream then ends
/// with an error that stops the run.
pub(crate) fn stream(ids: Ids, raised: &Raised) -> IdStream {
    let iter_error = raised.clone();
    match ids {
        Ids::List(v) => Box::pin(futures_util::stream::iter(v.into_iter().map(Ok))),
        Ids::Stream(s) => Box::pin(s.map(|r| r.map(|m| m.id))),
        Ids::Func(f) => Box::pin(futures_util::stream::unfold(Some(f), move |f| {
            let iter_error = iter_error.clone();
            async move {
                let func = f?;
                let failed = |e: mlua::Error| {
                    iter_error.keep(e);
                    Some((Err(ApiError::network("the ids iterator failed")), None))
                };
                match func.call::<Value>(()) {
                    Ok(Value::String(s)) => Some((Ok(s.to_string_lossy()), Some(func))),
                    Ok(Value::Nil) => None,
                    Ok(other) => failed(mlua::Error::runtime(format!(
                        "gmail.batch: the ids iterator gave {} instead of an id string",
                        display(&other)
                    ))),
                    Err(e) => failed(e),
                }
            }
        })),
    }
}

/// The resume filter: `ids` less the ones `state` has marked done, and
/// the count of those left out (the report's `already_done`).
pub(crate) fn skip_done(
    ids: IdStream,
    state: Option<LuaState>,
) -> (impl Stream<Item = Result<String, ApiError>>, Rc<Cell<u64>>) {
    let skipped = Rc::new(Cell::new(0u64));
    let counter = skipped.clone();
    let ids = ids.filter(move |r| {
        let keep = match (r, &state) {
            (Ok(id), Some(s)) => !s.is_done(id).unwrap_or(false),
            _ => true,
        };
        if !keep {
            counter.set(counter.get() + 1);
        }
        futures_util::future::ready(keep)
    });
    (ids, skipped)
}

/// Each id with the request that fetches it. An error of the format
/// function is kept in `raised`; the item then fails with an error that
/// stops the run.
pub(crate) fn items(
    ids: impl Stream<Item = Result<String, ApiError>>,
    fetch: Fetch,
    raised: Raised,
) -> impl Stream<Item = Result<Item, ApiError>> {
    ids.map(move |r| {
        let id = r?;
        match fetch.request(&id) {
            Ok(request) => Ok(Item { key: id, request }),
            Err(e) => {
                raised.keep(e);
                Err(ApiError::network("the format function failed"))
            }
        }
    })
}
