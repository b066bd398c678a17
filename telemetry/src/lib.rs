//! Logging for keel's binaries (`keel`, `keel-agent`), through `tracing`: `RUST_LOG` picks
//! what is logged (default `info`), `--log-format` picks text for people or JSON for log
//! collectors.
//!
//! # Guarantees
//! - Clients that log whole HTTP or Docker exchanges at debug level (bollard, hyper, h2) are
//!   held at info whatever `RUST_LOG` says: the Docker engine's answers carry container
//!   environments, Secret values included.
//! - Colours only for a person at a terminal, never into files or pipes.
#![forbid(unsafe_code)]

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Targets held at info at most (see the crate docs).
const QUIET: &[&str] = &["bollard=info", "hyper=info", "hyper_util=info", "h2=info"];

fn filter() -> EnvFilter {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,notify=warn"));
    for quiet in QUIET {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the global subscriber, writing to stderr. Safe to call more than once (later
/// calls do nothing).
pub fn init(format: LogFormat) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Installs the global subscriber writing to `path` (appending), for a command whose
/// terminal output is for people (`keel up` keeps the control plane's log in its data dir).
pub fn init_file(path: &std::path::Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}
