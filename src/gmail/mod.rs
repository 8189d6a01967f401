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
pub mod directory;
pub mod error;
pub mod history;
pub mod html;
pub mod message;
pub mod quota;
pub mod request;
pub mod rfc822;
pub mod runner;
pub mod watch;

pub use client::Client;
pub use error::{ApiError, ErrorClass};
pub use request::Request;
