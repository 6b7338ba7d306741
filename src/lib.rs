//! rgmerge: merge the Kong configurations of runtime groups into composite
//! runtime groups, detect every conflict between them, and serve immutable,
//! versioned snapshots of the result.
//!
//! The layers, lowest first (ARCHITECTURE.md has the table a test checks):
//! - the engine's pure core: [`intern`], [`report`], [`config`], [`member`],
//!   [`compose`];
//! - the daemon: [`registry`] (state, rules, transactions, published views),
//!   [`store`] (durability), [`engine`] (the single writer), [`server`]
//!   (HTTP), with [`metrics`] beside them;
//! - the batch tools in [`commands`]: validate/merge, gen, bench,
//!   export/import, the sidecar.
//!
//! The public API is what the binary, the tests, the benches and the fuzz
//! targets use; everything else is `pub(crate)`.

pub mod cluster;
pub mod commands;
pub mod compose;
pub mod config;
pub mod engine;
pub mod entities;
pub mod intern;
pub mod member;
pub mod metrics;
pub mod registry;
pub mod report;
pub mod server;
pub mod store;

pub use commands::{batch, bench, sidecar, synth, transfer};
