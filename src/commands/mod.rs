//! The batch tools, apart from the daemon's layers: validate and merge
//! (`batch`), `gen` (`synth`), `bench`, `export`/`import` (`transfer`), the
//! data-plane `sidecar`, the access-control client `admin` and `cluster-cert`. Each takes a plain options struct; the flags that
//! fill it live in the binary's `cli` module.

pub mod admin;
pub mod batch;
pub mod bench;
pub mod cluster_cert;
pub mod pg_write_rate;
pub mod sidecar;
pub mod synth;
pub mod transfer;
