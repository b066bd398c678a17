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
}

pub fn run(args: &Args) -> i32 {
    let Some(runtime) = runtime("history") else {
        return 1;
    };
    let server = &args.server.server;
    let fetched = connect(server).and_then(|c| runtime.block_on(c.history(args.limit)));
    match fetched {
        Ok(records) => {
            out(&render(&records, args.output));
            0
        }
        Err(e) => {
            eprintln!("keel history: {}", explain(&e, server));
            1
        }
    }
}

fn render(records: &[SyncRecord], output: TableOrJson) -> String {
    if output == TableOrJson::Json {
        return serde_json::to_string_pretty(records).unwrap_or_default() + "\n";
    }
    let rows: Vec<[String; 6]> = records
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
                r.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                r.result.to_string(),
                r.author.clone().unwrap_or_default(),
                r.message.clone().unwrap_or_default(),
                error,
            ]
        })
        .collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    crate::table::render(
        &["COMMIT", "TIME", "RESULT", "AUTHOR", "MESSAGE", "ERROR"],
        &rows,
    )
}
