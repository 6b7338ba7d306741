//! `rgmerge bench`: the engine's key figures. (Being written: see issue 6.)

use crate::batch::BatchError;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {}

pub fn run(_args: &BenchArgs) -> Result<(), BatchError> {
    Err(BatchError::Usage("bench is not implemented yet".into()))
}
