//! `keel render [DIR | --repo R --rev X]`: exactly the objects keel would apply, rendered
//! (kustomizations built), decoded and defaulted, as YAML or JSON. Secret values are
//! redacted unless `--show-secrets`.

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;
use keel_reconciler::plan::{diff::comparable, display};
use keel_reconciler::source::RepoTree;
use keel_schema::load::{DiskFiles, load_sources_with};
use keel_schema::{Revision, collect_paths};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Objects as a YAML stream, `---` between them.
    #[default]
    Yaml,
    /// A `v1` `List` of the objects.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder on disk: a kustomization, or a tree of manifests and kustomizations as a
    /// repository holds them (default: the current folder).
    #[arg(value_name = "DIR", conflicts_with = "repo")]
    pub dir: Option<PathBuf>,
    /// Render a committed revision of this repository instead (a working copy, a bare
    /// repository or a file:// URL).
    #[arg(long)]
    pub repo: Option<String>,
    /// The revision to render, with --repo.
    #[arg(long, default_value = "HEAD", requires = "repo")]
    pub rev: String,
    /// Only the folder of the repository keel follows (as the server's --path), with --repo.
    #[arg(long, requires = "repo")]
    pub path: Option<String>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// Print Secret values as committed (they are `<redacted>` otherwise).
    #[arg(long)]
    pub show_secrets: bool,
    #[command(flatten)]
    pub sops: super::SopsArg,
}

/// Exit status: 0 rendered, 1 the revision is invalid (its errors on stderr), 2 usage or I/O.
pub const EXIT_RENDERED: i32 = 0;
pub const EXIT_INVALID: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

pub fn run(args: &Args) -> i32 {
    let revision = match load(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keel render: {e}");
            return EXIT_USAGE;
        }
    };
    if !revision.is_valid() {
        let mut err = std::io::stderr().lock();
        for e in &revision.errors {
            let _ = writeln!(err, "{e}");
        }
        let _ = writeln!(
            err,
            "keel render: {} errors; nothing rendered",
            revision.errors.len()
        );
        return EXIT_INVALID;
    }
    let objects: Vec<_> = revision.manifests.iter().map(|m| &m.object).collect();
    let text = match args.output {
        Format::Yaml => objects
            .iter()
            .map(|o| {
                if args.show_secrets {
                    serde_yaml::to_string(&comparable(o)).unwrap_or_default()
                } else {
                    display::yaml(o, None)
                }
            })
            .collect::<Vec<_>>()
            .join("---\n"),
        Format::Json => {
            let items: Vec<serde_json::Value> = objects
                .iter()
                .map(|o| {
                    if args.show_secrets {
                        comparable(o)
                    } else {
                        serde_yaml::from_str(&display::yaml(o, None)).unwrap_or_default()
                    }
                })
                .collect();
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            format!(
                "{}\n",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            )
        }
    };
    crate::output::out(&text);
    EXIT_RENDERED
}

fn load(args: &Args) -> anyhow::Result<Revision> {
    let keys = args.sops.keys()?;
    let decrypt = keys
        .clone()
        .map(|k| k as std::sync::Arc<dyn keel_schema::encrypted::Decrypt>);
    if let Some(repo) = &args.repo {
        let tree = RepoTree::open(repo)?.with_decrypt(decrypt);
        let (_, revision) = tree.load(&args.rev, args.path.as_deref())?;
        return Ok(revision);
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let collected = collect_paths(std::slice::from_ref(&dir))?;
    let reader = DiskFiles::new(".");
    let decrypt = keys
        .as_deref()
        .map(|k| k as &dyn keel_schema::encrypted::Decrypt);
    let mut revision = load_sources_with(
        &collected.files,
        collected.config.as_ref(),
        &reader,
        decrypt,
    );
    revision.errors.extend(collected.problems);
    keel_schema::error::sort_errors(&mut revision.errors);
    Ok(revision)
}
