//! `keel token create|list|delete`: bootstrap tokens a new node joins with
//! (`keel-agent --token T`). Needs the server's admin token.

use keel_api::tokens::CreateToken;

use super::ServerArg;
use crate::credentials::{connect, explain};
use crate::output::{out, runtime};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a join token and print it (the only time its secret is shown).
    Create(CreateArgs),
    /// List the live join tokens (ids and expiry; secrets are not kept).
    List(ServerArg),
    /// Delete a join token: no node joins with it any more (nodes that joined keep their
    /// certificates; `keel delete node` revokes a node's).
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The token's id (the part before the dot; `keel token list` shows it).
    pub id: String,
    #[command(flatten)]
    pub server: ServerArg,
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

pub fn run(command: &Command) -> i32 {
    let Some(runtime) = runtime("token") else {
        return 1;
    };
    let server = match command {
        Command::Create(args) => &args.server.server,
        Command::List(args) => &args.server,
        Command::Delete(args) => &args.server.server,
    };
    let result = connect(server).and_then(|client| {
        runtime.block_on(async {
            match command {
                Command::Create(args) => create(&client, args).await,
                Command::List(_) => list(&client).await,
                Command::Delete(args) => {
                    // The whole token pasted works too: its id is before the dot.
                    let id = args.id.rsplit(':').next().unwrap_or(&args.id);
                    let id = id.split('.').next().unwrap_or(id);
                    client.delete_token(id).await?;
                    eprintln!("join token {id} deleted");
                    Ok(())
                }
            }
        })
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("keel token: {}", explain(&e, server));
            1
        }
    }
}

async fn create(
    client: &keel_api::client::Client,
    args: &CreateArgs,
) -> Result<(), keel_api::client::ClientError> {
    let request = CreateToken {
        ttl: Some(args.ttl.clone()),
        description: args.description.clone(),
    };
    let created = client.create_token(&request).await?;
    // The token alone on stdout, so that T=$(keel token create) works.
    out(&format!("{}\n", created.token));
    eprintln!(
        "join token {} expires {}; on the new node: keel-agent --server <control plane>:7402 --token <the token above> --name <node>",
        created.id, created.expires
    );
    Ok(())
}

async fn list(client: &keel_api::client::Client) -> Result<(), keel_api::client::ClientError> {
    let rows: Vec<Vec<String>> = client
        .tokens()
        .await?
        .into_iter()
        .map(|t| vec![t.id, t.expires, t.description.unwrap_or_default()])
        .collect();
    out(&crate::table::render(
        &["ID", "EXPIRES", "DESCRIPTION"],
        &rows,
    ));
    Ok(())
}
