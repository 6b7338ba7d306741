//! The batch tools, apart from the daemon's layers: validate and merge
//! (`batch`), `gen` (`synth`), `bench`, `export`/`import` (`transfer`) and the
//! data-plane `sidecar`. Each takes a plain options struct; the flags that
//! fill it live in the binary's `cli` module.

pub mod batch;
pub mod bench;
pub mod sidecar;
pub mod synth;
pub mod transfer;
