//! The `keel` command.
#![forbid(unsafe_code)]

use clap::Parser;
use keel_cli::{Cli, Command, run};

// keel decodes and encodes many small objects (lists, watches, batches); mimalloc roughly
// halves the time glibc's allocator spends on them (see the store's benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                // `keel plan` exits 2 for "changes": a usage error must not look like one.
                _ if std::env::args().nth(1).as_deref() == Some("plan") => 1,
                _ => 2,
            };
            std::process::exit(code);
        }
    };
    // `keel up` talks to a person on the terminal; it keeps its logs in its data dir.
    if !matches!(cli.command, Command::Up(_)) {
        keel_telemetry::init(cli.log_format);
    }
    std::process::exit(run(cli));
}
