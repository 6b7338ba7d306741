//! The `rgmerge` binary: the command line (`cli`) over the library.

mod cli;
mod settings_file;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // One TLS provider for the process (ring), so any TLS client or server
    // in it, ours or a library's, finds it.
    let _ = (*rgmerge::cluster::provider()).clone().install_default();
    cli::main()
}
