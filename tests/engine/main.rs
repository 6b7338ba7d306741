//! The library's tests, without a daemon: the data-driven engine cases
//! (`fixtures/cases`), the YAML reader (`fixtures/yaml`), Kong's real files
//! (`../shared/fixtures/real`), property tests and robustness.
//! One test binary (each links the whole crate): `cargo test --test engine`,
//! `cargo test --test engine -- cases::` for one module.

#[path = "../common/mod.rs"]
mod common;

mod cases;
mod entity_props;
mod mutations;
mod props;
mod real;
mod registry_props;
mod robustness;
mod yaml;
