//! The engine: talks HTTP and Gmail, knows nothing of Lua.
//!
//! [`client::Client`] sends one request or one batch; [`runner::Runner`]
//! drives many requests through batches with pacing ([`quota::Pacer`]),
//! adaptive chunk sizes ([`chunk::ChunkSizer`]), per-part retry
//! ([`backoff::Backoff`]) and a [`runner::Policy`] deciding each failure.

pub mod backoff;
pub mod batch;
pub mod chunk;
pub mod client;
mod delivery;
pub(crate) mod directory;
mod error;
pub(crate) mod history;
mod html;
pub mod message;
pub mod quota;
pub mod request;
mod rfc822;
pub mod runner;
pub(crate) mod watch;

pub use client::Client;
pub use error::{ApiError, ErrorClass};
pub(crate) use request::Request;
