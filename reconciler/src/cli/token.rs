//! `keel token create|list`: bootstrap tokens a new node joins with
//! (`keel-agent --token T`). Needs the server's admin token.

use serde_json::json;

use super::get::json_answer;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a join token and print it (the only time its secret is shown).
    Create(CreateArgs),
    /// List the live join tokens (ids and expiry; secrets are not kept).
    List(ServerArg),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// How long the token can be used to join (at most 365 days).
    #[arg(long, default_value = "24h")]
    pub ttl: String,
    /// A note kept with the token (who or what it is for).
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, clap::Args)]
pub struct ServerArg {
    /// The keel server's API.
    #[arg(long, env = "KEEL_SERVER", default_value = "http://127.0.0.1:7400")]
    pub server: String,
}

pub fn run(command: &Command) -> i32 {
    let Some(runtime) = super::runtime("token") else {
        return 1;
    };
    let result = match command {
        Command::Create(args) => runtime.block_on(create(args)),
        Command::List(args) => runtime.block_on(list(&args.server)),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("keel token: {e:#}");
            1
        }
    }
}

async fn create(args: &CreateArgs) -> anyhow::Result<()> {
    let server = &args.server.server;
    let url = format!("{}/api/keel/tokens", server.trim_end_matches('/'));
    let body = json_answer(
        server,
        super::http::client_for(server)
            .post(url)
            .json(&json!({"ttl": args.ttl, "description": args.description})),
    )
    .await?;
    let token = body["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the server answered without a token"))?;
    // The token alone on stdout, so that T=$(keel token create) works.
    super::out(&format!("{token}\n"));
    eprintln!(
        "join token {} expires {}; on the new node: keel-agent --server <control plane>:7402 --token <the token above> --name <node>",
        body["id"].as_str().unwrap_or("?"),
        body["expires"].as_str().unwrap_or("?")
    );
    Ok(())
}

async fn list(server: &str) -> anyhow::Result<()> {
    let url = format!("{}/api/keel/tokens", server.trim_end_matches('/'));
    let body = json_answer(server, super::http::client_for(server).get(url)).await?;
    let mut rows = Vec::new();
    for item in body["items"].as_array().into_iter().flatten() {
        rows.push(vec![
            item["id"].as_str().unwrap_or("").to_string(),
            item["expires"].as_str().unwrap_or("").to_string(),
            item["description"].as_str().unwrap_or("").to_string(),
        ]);
    }
    super::out(&super::table::render(
        &["ID", "EXPIRES", "DESCRIPTION"],
        &rows,
    ));
    Ok(())
}
