//! `keel history`: the revisions the server attempted, newest first.

use keel_store::SyncRecord;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The keel server's API.
    #[arg(long, env = "KEEL_SERVER", default_value = "http://127.0.0.1:7400")]
    pub server: String,
    /// How many revisions to show (1–1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns; a failed revision shows its first error.
    Table,
    /// Every record, with the full error text.
    Json,
}

pub fn run(args: &Args) -> i32 {
    let Some(runtime) = super::runtime("history") else {
        return 1;
    };
    match runtime.block_on(fetch(args)) {
        Ok(records) => {
            super::out(&render(&records, args.output));
            0
        }
        Err(e) => {
            eprintln!("keel history: {e:#}");
            1
        }
    }
}

async fn fetch(args: &Args) -> anyhow::Result<Vec<SyncRecord>> {
    let url = format!(
        "{}/api/keel/history?limit={}",
        args.server.trim_end_matches('/'),
        args.limit
    );
    let body = super::get::json_answer(
        &args.server,
        super::http::client_for(&args.server).get(&url),
    )
    .await?;
    serde_json::from_value(body)
        .map_err(|e| anyhow::anyhow!("{url}: the server's answer is not a history: {e}"))
}

fn render(records: &[SyncRecord], output: Output) -> String {
    if output == Output::Json {
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
                r.result.clone(),
                r.author.clone().unwrap_or_default(),
                r.message.clone().unwrap_or_default(),
                error,
            ]
        })
        .collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    super::table::render(
        &["COMMIT", "TIME", "RESULT", "AUTHOR", "MESSAGE", "ERROR"],
        &rows,
    )
}
