//! The daemon's tests: the real `rgmerge` binary on a real socket, each
//! started, called and waited for through the harness in `tests/common`.
//! One test binary (each links the whole crate): `cargo test --test daemon`,
//! `cargo test --test daemon -- history::` for one module.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod access;
mod api;
mod backup;
mod browser;
mod cluster;
mod deck;
mod durability;
mod history;
mod konnect;
mod network;
mod postgres;
mod postgres_tls;
mod sessions;
mod sidecar;
mod slowloris;
mod soak;
mod states;
mod upgrade;
