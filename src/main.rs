//! The `rgmerge` binary: the command line (`cli`) over the library.

mod cli;
mod settings_file;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
