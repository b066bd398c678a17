//! `keel history`: the revisions the server attempted, newest first.

use crate::store::SyncRecord;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The keel server's API.
    #[arg(long, env = "KEEL_SERVER", default_value = "http://127.0.0.1:7400")]
    pub server: String,
    /// How many revisions to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// `table` (default) or `json`.
    #[arg(short = 'o', long, default_value = "table")]
    pub output: String,
}

pub fn run(args: &Args) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keel history: {e}");
            return 1;
        }
    };
    match runtime.block_on(fetch(args)) {
        Ok(records) => {
            print!("{}", render(&records, &args.output));
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
    let resp = reqwest::get(&url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the keel server at {}: {e}", args.server))?;
    if !resp.status().is_success() {
        anyhow::bail!(
            "{url}: {}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    Ok(resp.json().await?)
}

fn render(records: &[SyncRecord], output: &str) -> String {
    if output == "json" {
        return serde_json::to_string_pretty(records).unwrap_or_default() + "\n";
    }
    let rows: Vec<[String; 5]> = records
        .iter()
        .map(|r| {
            [
                r.commit.chars().take(7).collect(),
                r.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                r.result.clone(),
                r.author.clone().unwrap_or_default(),
                r.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["COMMIT", "TIME", "RESULT", "AUTHOR", "MESSAGE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 4 {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    out
}
