//! The `keel` command.
#![forbid(unsafe_code)]

use clap::Parser;
use keel_cli::{Cli, Command, run};

// keel decodes and encodes many small objects (lists, watches, batches); mimalloc roughly
// halves the time glibc's allocator spends on them (see the store's benchmark).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    small_pages_only();
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

/// mimalloc asks the kernel for transparent huge pages on its arenas, and a 2 MiB page stays
/// resident whole while any object on it lives. A control plane's many small objects that
/// come and go (pods, watches, connections) leave such pages partly used: the scale bench's
/// control plane held 9% more memory at 10,000 pods with them than without, for no CPU
/// measured. Best effort: a kernel without the flag keeps its default.
fn small_pages_only() {
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}
