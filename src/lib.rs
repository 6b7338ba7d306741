//! rgmerge: merge the Kong configurations of runtime groups into composite
//! runtime groups, detect every conflict between them, and serve immutable,
//! versioned snapshots of the result.
//!
//! Layers, each knowing only the ones above it in this list: [`intern`],
//! [`report`], [`config`], [`member`], [`compose`], then the daemon's
//! registry, store and server. See ARCHITECTURE.md.

pub mod batch;
pub mod bench;
pub mod compose;
pub mod config;
pub mod engine;
pub mod intern;
pub mod member;
pub mod metrics;
pub mod registry;
pub mod report;
pub mod server;
pub mod sidecar;
pub mod store;
pub mod synth;
pub mod transfer;
