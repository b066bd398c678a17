//! `keel token create|list|delete`: join tokens a new node joins with (`keel-agent --token
//! T`), and view tokens for people who should only look (`keel token create --role view`,
//! then `KEEL_TOKEN` or `keel kubeconfig --token`). Needs the server's admin token.

use keel_api::tokens::CreateToken;

use super::ServerArg;
use crate::credentials::{connect, explain};
use crate::output::{out, runtime};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a join token (or, with --role view, a read-only API token) and print it (the
    /// only time its secret is shown).
    Create(CreateArgs),
    /// List the live tokens (ids, roles and expiry; secrets are not kept).
    List(ServerArg),
    /// Delete a token: no node joins with it, or nobody reads with it, any more (nodes
    /// that joined keep their certificates; `keel delete node` revokes a node's).
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The token's id (the part before the dot; `keel token list` shows it).
    pub id: String,
    #[command(flatten)]
    pub server: ServerArg,
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// A new node joins the cluster with it.
    Join,
    /// It reads the API (keel get, kubectl get) and changes nothing.
    View,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Join => "join",
            Role::View => "view",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// What the token is for.
    #[arg(long, value_enum, default_value = "join")]
    pub role: Role,
    /// How long the token can be used (at most 365 days; default 24h for join tokens,
    /// 720h for view tokens).
    #[arg(long)]
    pub ttl: Option<String>,
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
                    eprintln!("token {id} deleted");
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
        ttl: args.ttl.clone(),
        description: args.description.clone(),
        // Only a view token names its role: servers before roles take join tokens only.
        role: (args.role == Role::View).then(|| args.role.name().to_string()),
    };
    let created = client.create_token(&request).await?;
    // The token alone on stdout, so that T=$(keel token create) works.
    out(&format!("{}\n", created.token));
    match args.role {
        Role::Join => eprintln!(
            "join token {} expires {}; on the new node: keel-agent --server <control plane>:7402 --token <the token above> --name <node>",
            created.id, created.expires
        ),
        Role::View => eprintln!(
            "view token {} expires {}; it reads the API and changes nothing: KEEL_TOKEN=<the token above> keel get pods, or keel kubeconfig --token <the token above>",
            created.id, created.expires
        ),
    }
    Ok(())
}

async fn list(client: &keel_api::client::Client) -> Result<(), keel_api::client::ClientError> {
    let rows: Vec<Vec<String>> = client
        .tokens()
        .await?
        .into_iter()
        .map(|t| vec![t.id, t.role, t.expires, t.description.unwrap_or_default()])
        .collect();
    out(&crate::table::render(
        &["ID", "ROLE", "EXPIRES", "DESCRIPTION"],
        &rows,
    ));
    Ok(())
}
