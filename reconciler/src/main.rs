//! The `keel` command.
#![forbid(unsafe_code)]

use clap::Parser;
use keel_reconciler::cli::{Cli, run};
use keel_reconciler::logging;

fn main() {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    std::process::exit(run(cli));
}
