//! `rgmerge gen` (module `synth`: `gen` is a reserved word in Rust 2024): synthetic member configs. (Being written: see issue 6.)

use crate::batch::BatchError;

#[derive(clap::Args, Debug, Clone)]
pub struct GenArgs {}

pub fn run(_args: &GenArgs) -> Result<(), BatchError> {
    Err(BatchError::Usage("gen is not implemented yet".into()))
}
