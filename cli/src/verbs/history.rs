//! `keel history`: the revisions the server attempted, newest first.

use keel_schema::SyncRecord;

use super::ServerArg;
use crate::credentials::{connect, explain};
use crate::output::{TableOrJson, out, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArg,
    /// How many revisions to show (1–1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// A table shows a failed revision's first error; JSON its full error text.
    #[arg(short = 'o', long, value_enum, default_value_t = TableOrJson::Table)]
    pub output: TableOrJson,
    /// Only the records of this app (keel.yaml `apps:`; `(root)` for the files under no
    /// app's folder, and for revisions that failed whole).
    #[arg(long)]
    pub app: Option<String>,
}

/// How many records are read to find `--limit` of one app's.
const SCAN_FOR_APP: u16 = 1000;

pub fn run(args: &Args) -> i32 {
    let Some(runtime) = runtime("history") else {
        return 1;
    };
    let server = &args.server.server;
    let read = if args.app.is_some() {
        SCAN_FOR_APP
    } else {
        args.limit
    };
    let fetched = connect(server).and_then(|c| runtime.block_on(c.history(read)));
    match fetched {
        Ok(records) => {
            let records: Vec<SyncRecord> = records
                .into_iter()
                .filter(|r| args.app.as_deref().is_none_or(|app| is_of(r, app)))
                .take(usize::from(args.limit))
                .collect();
            out(&render(&records, args.output));
            0
        }
        Err(e) => {
            eprintln!("keel history: {}", explain(&e, server));
            1
        }
    }
}

/// Whether `record` is about `app`: the root app's records have none.
fn is_of(record: &SyncRecord, app: &str) -> bool {
    match &record.app {
        Some(name) => name == app,
        None => app == keel_schema::load::apps::ROOT_APP,
    }
}

fn render(records: &[SyncRecord], output: TableOrJson) -> String {
    if output == TableOrJson::Json {
        return serde_json::to_string_pretty(records).unwrap_or_default() + "\n";
    }
    let with_apps = records.iter().any(|r| r.app.is_some());
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            let error = r
                .error
                .as_deref()
                .and_then(|e| e.lines().next())
                .unwrap_or("");
            let more = r
                .error
                .as_deref()
                .map_or(0, |e| e.lines().count().saturating_sub(1));
            let error = if more > 0 {
                format!("{error} (+{more} more)")
            } else {
                error.to_string()
            };
            [
                r.commit.chars().take(7).collect(),
                r.app
                    .clone()
                    .unwrap_or_else(|| keel_schema::load::apps::ROOT_APP.to_string()),
                r.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                r.result.to_string(),
                r.author.clone().unwrap_or_default(),
                r.message.clone().unwrap_or_default(),
                error,
            ]
        })
        .collect();
    // The APP column only when the repository has apps.
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(Vec::from)
        .map(|mut row| {
            if !with_apps {
                row.remove(1);
            }
            row
        })
        .collect();
    let mut headers = vec![
        "COMMIT", "APP", "TIME", "RESULT", "AUTHOR", "MESSAGE", "ERROR",
    ];
    if !with_apps {
        headers.remove(1);
    }
    crate::table::render(&headers, &rows)
}
