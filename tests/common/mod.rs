//! The one test harness of the integration tests (docs/TESTING.md):
//!
//! - `daemon`: `Daemon::builder()…start()` runs the real binary on a
//!   temporary socket (a redb or PostgreSQL store, `--http`, any flag);
//!   `stop`, `kill9`, `restart`; `Sidecar`; `rgmerge(args)` for the CLI;
//! - `client`: `Client` over a `Transport`, answering `Resp` (status,
//!   headers, body, `json()`), and the one-line set-ups (`standard`,
//!   `composite`, `add`, `put_config`, `team`, `grant`, `token`, …);
//! - `wait`: `wait_for` and `guard`, with one timeout policy, `hang_guard()`;
//! - `json`: partial matching (`check_json`, `assert_json_include!`);
//! - `expect`: expected outputs kept in `fixtures/`, `UPDATE_EXPECT=1` rewrites them;
//! - `dataplane`: a fake Kong data plane in hybrid mode (after Kong's
//!   `data_plane.lua`) for the cluster endpoint;
//! - `postgres`: a throwaway PostgreSQL server; `browser`: headless
//!   Chromium over WebDriver; `openapi`: Konnect's published specs.
#![allow(dead_code, unused_imports)]

pub mod browser;
pub mod client;
pub mod daemon;
pub mod dataplane;
pub mod expect;
#[macro_use]
pub mod json;
pub mod openapi;
pub mod postgres;
pub mod wait;

pub use client::{Client, Resp, Transport, assert_same_snapshot};
pub use daemon::{
    Daemon, DaemonBuilder, Sidecar, rgmerge, rgmerge_exit, rgmerge_ok, serve_accepts,
};
pub use json::{check_json, find_mismatch};
pub use wait::{HANG_GUARD, guard, hang_guard, wait_for, wait_for_some, wait_for_sync};

/// Konnect's Control Planes API.
pub const V2: &str = "/v2/control-planes";

/// A decK 3.0 config: one service with one route.
pub fn service(name: &str, host: &str) -> String {
    format!(
        "_format_version: \"3.0\"\nservices:\n- name: {name}\n  host: {host}\n  routes:\n  - name: {name}-route\n    paths: [/{name}]\n"
    )
}

/// The project's own test data (`fixtures/`).
pub fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}
