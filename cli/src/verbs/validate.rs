//! `keel validate PATH...`: every manifest under the paths, validated as one revision.

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;
use keel_schema::collect_paths;
use keel_schema::load::load_sources_with;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// `FILE:LINE:COL: KIND NAMESPACE/NAME: field.path: message` lines on stderr.
    #[default]
    Text,
    /// A JSON array of `{file, line, column, kind, namespace, name, field, message}` on stdout.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files or directories (directories are searched for *.yaml and *.yml).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub sops: super::SopsArg,
}

pub const EXIT_VALID: i32 = 0;
pub const EXIT_INVALID: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

pub fn run(args: &Args) -> i32 {
    let collected = match collect_paths(&args.paths) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("keel validate: {e}");
            return EXIT_USAGE;
        }
    };
    let (files, config) = (collected.files, collected.config);
    let keys = match args.sops.keys() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("keel validate: {e}");
            return EXIT_USAGE;
        }
    };
    let decrypt = keys
        .as_deref()
        .map(|k| k as &dyn keel_schema::encrypted::Decrypt);
    let reader = keel_schema::load::DiskFiles::new(".");
    let mut revision = load_sources_with(&files, config.as_ref(), &reader, decrypt);
    revision.errors.extend(collected.problems);
    keel_schema::error::sort_errors(&mut revision.errors);
    if revision.manifests.is_empty() && revision.errors.is_empty() {
        let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "keel validate: no objects in {} ({}): the files hold only comments or empty documents",
            paths.join(" "),
            plural(files.len(), "file")
        );
        return EXIT_USAGE;
    }
    tracing::debug!(
        files = files.len(),
        objects = revision.manifests.len(),
        errors = revision.errors.len(),
        "validated"
    );
    match args.format {
        Format::Json => {
            let json =
                serde_json::to_string_pretty(&revision.errors).unwrap_or_else(|_| "[]".into());
            crate::output::out(&format!("{json}\n"));
        }
        Format::Text => {
            let mut err = std::io::stderr().lock();
            for e in &revision.errors {
                let _ = writeln!(err, "{e}");
            }
            if revision.is_valid() {
                let verb = if revision.manifests.len() == 1 {
                    "is"
                } else {
                    "are"
                };
                crate::output::out(&format!(
                    "{} in {} {verb} valid\n",
                    plural(revision.manifests.len(), "object"),
                    plural(files.len(), "file")
                ));
            } else {
                let _ = writeln!(
                    err,
                    "{} in {}; the revision is rejected until all are fixed",
                    plural(revision.errors.len(), "error"),
                    plural(files.len(), "file")
                );
            }
        }
    }
    if revision.is_valid() {
        EXIT_VALID
    } else {
        EXIT_INVALID
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
