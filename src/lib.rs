//! gmailscript: move a lot of Gmail reliably. The engine (`gmail`) fetches,
//! batches, retries and paces; Lua scripts decide the policy; `sim` is a
//! local Gmail API simulator to try everything offline.
//!
//! Only what `main.rs`, the tests, benches and fuzz targets name is `pub`;
//! the rest is crate-private so the compiler reports dead code.

// Its docs are read with `--document-private-items`: links into the crate's
// private items are meant.
#![allow(rustdoc::private_intra_doc_links)]

pub mod app;
pub mod app_auth;
mod app_domain;
pub mod app_info;
pub mod auth;
pub mod cli;
mod duration;
mod endpoint;
pub mod exit;
pub mod gmail;
pub mod lua;
pub mod output;
mod quota_memory;
pub mod repl;
mod scripts;
pub mod sim;
pub mod store;
