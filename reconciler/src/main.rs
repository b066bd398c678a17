//! The `keel` command.
#![forbid(unsafe_code)]

use clap::Parser;
use keel_reconciler::cli::{Cli, run};
use keel_reconciler::logging;

// keel decodes and encodes many small objects (lists, watches, batches); mimalloc roughly
// halves the time glibc's allocator spends on them (see benches/store.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    std::process::exit(run(cli));
}
