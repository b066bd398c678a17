//! `keel get KIND [NAME]`: objects from a running server's API, as kubectl prints them.

use chrono::{DateTime, Utc};
use keel_schema::kinds::custom::CustomKind;
use keel_schema::types::apiextensions::CustomResourceColumnDefinition;
use keel_schema::{Kind, Object};
use serde::Serialize;

use super::ServerArg;
use crate::credentials::{connect, explain};
use crate::output::{out, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kind: name, plural or short form (po, svc, deploy, rs, rc, ds, no, ep, cm, ns, …).
    pub kind: String,
    /// One object by name (all of the kind when absent).
    pub name: Option<String>,
    /// The namespace (namespaced kinds).
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_namespaces: bool,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// More columns (pod IP and node, say).
    Wide,
    Yaml,
    /// A list prints as Kubernetes' `{"apiVersion":"v1","kind":"List","items":[...]}`.
    Json,
}

pub fn run(args: &Args) -> i32 {
    let Some(runtime) = runtime("get") else {
        return 1;
    };
    let server = &args.server.server;
    let fetched = connect(server).and_then(|client| {
        runtime.block_on(async {
            let Some(Named { kind, columns }) = kind_named(&client, &args.kind).await? else {
                return Ok(None);
            };
            let objects = match &args.name {
                Some(name) => vec![client.object(kind, &args.namespace, name).await?],
                None => {
                    let namespace = (!args.all_namespaces).then_some(args.namespace.as_str());
                    client.list(kind, namespace).await?
                }
            };
            Ok(Some((kind, columns, objects)))
        })
    });
    let (kind, columns, objects) = match fetched {
        Ok(Some(found)) => found,
        Ok(None) => {
            eprintln!(
                "keel get: the server doesn't have a resource type {:?} (try po, svc, deploy, rs, rc, ds, job, no, ep, cm, secret, ns, ev, crd)",
                args.kind
            );
            return 2;
        }
        Err(e) => {
            eprintln!("{}", explain(&e, server));
            return 1;
        }
    };
    match render(args, kind, &columns, objects, Utc::now()) {
        Ok(text) => {
            out(&text);
            0
        }
        Err(e) => {
            eprintln!("keel get: {e}");
            1
        }
    }
}

/// A kind as a user named it, with the columns its definition gives (a custom kind's).
pub(crate) struct Named {
    pub kind: Kind,
    pub columns: Vec<CustomResourceColumnDefinition>,
}

/// The kind a user typed: one keel builds in, or one the server's
/// CustomResourceDefinitions declare.
pub(crate) async fn kind_named(
    client: &keel_api::client::Client,
    typed: &str,
) -> keel_api::client::Result<Option<Named>> {
    if let Some(kind) = Kind::lookup(typed) {
        return Ok(Some(Named {
            kind,
            columns: Vec::new(),
        }));
    }
    let definitions = client.list(Kind::CustomResourceDefinition, None).await?;
    Ok(custom_kind(&definitions, typed))
}

/// The custom kind a user typed (its plural, singular, kind or short name, any case, or
/// `PLURAL.GROUP`) among `definitions`, as served at its stored version.
fn custom_kind(definitions: &[Object], typed: &str) -> Option<Named> {
    let typed = typed.to_ascii_lowercase();
    definitions.iter().find_map(|o| {
        let Object::CustomResourceDefinition(crd) = o else {
            return None;
        };
        let names = &crd.spec.names;
        let named = typed == names.plural
            || typed == names.kind.to_ascii_lowercase()
            || names.singular.as_deref() == Some(typed.as_str())
            || names.short_names.iter().flatten().any(|s| *s == typed)
            || typed == crd.metadata.name();
        let versions = &crd.spec.versions;
        let version = versions
            .iter()
            .find(|v| v.served && v.storage)
            .or_else(|| versions.iter().find(|v| v.served))?;
        named.then(|| Named {
            kind: Kind::Custom(CustomKind::of_definition(crd, &version.name)),
            columns: version
                .additional_printer_columns
                .clone()
                .unwrap_or_default(),
        })
    })
}

/// A list as `-o json|yaml` prints it (keys in kubectl's order).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct List {
    api_version: &'static str,
    items: Vec<Object>,
    kind: &'static str,
}

fn render(
    args: &Args,
    kind: Kind,
    columns: &[CustomResourceColumnDefinition],
    objects: Vec<Object>,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let one = args.name.is_some();
    match args.output {
        Some(Output::Json) if one => return Ok(serde_json::to_string_pretty(&objects[0])? + "\n"),
        Some(Output::Yaml) if one => return Ok(serde_yaml::to_string(&objects[0])?),
        Some(Output::Json) => {
            let list = List {
                api_version: "v1",
                kind: "List",
                items: objects,
            };
            return Ok(serde_json::to_string_pretty(&list)? + "\n");
        }
        Some(Output::Yaml) => {
            let list = List {
                api_version: "v1",
                kind: "List",
                items: objects,
            };
            return Ok(serde_yaml::to_string(&list)?);
        }
        Some(Output::Wide) | None => {}
    }
    let info = kind.info();
    if objects.is_empty() {
        return Ok(if info.namespaced && !args.all_namespaces {
            format!("No resources found in {} namespace.\n", args.namespace)
        } else {
            "No resources found\n".to_string()
        });
    }
    let wide = args.output == Some(Output::Wide);
    let (mut header, mut rows) = match kind {
        Kind::Custom(_) => keel_api::columns::custom_table(&objects, columns, wide, now),
        _ => {
            let (header, rows) = keel_api::columns::table(kind, &objects, wide, now);
            (header.into_iter().map(str::to_string).collect(), rows)
        }
    };
    if args.all_namespaces && info.namespaced {
        header.insert(0, "NAMESPACE".to_string());
        for (row, object) in rows.iter_mut().zip(&objects) {
            row.insert(0, object.namespace().to_string());
        }
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    Ok(crate::table::render(&header, &rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_print_as_kubectl_does() {
        let now = Utc::now();
        let created = (now - chrono::Duration::seconds(30)).to_rfc3339();
        let pod = Object::from_json(serde_json::json!({
            "kind": "Pod",
            "metadata": {"name": "web-abc", "namespace": "default", "creationTimestamp": created},
            "spec": {"containers": [{"name": "web"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "172.17.0.2", "containerStatuses": [
                {"name": "web", "ready": false, "restartCount": 2,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        }))
        .unwrap();
        let args = Args {
            kind: "po".into(),
            name: None,
            namespace: "default".into(),
            all_namespaces: false,
            output: Some(Output::Wide),
            server: ServerArg {
                server: String::new(),
            },
        };
        let out = render(&args, Kind::Pod, &[], vec![pod.clone()], now).unwrap();
        assert_eq!(
            out,
            "NAME      READY   STATUS             RESTARTS   AGE   IP           NODE\n\
             web-abc   0/1     CrashLoopBackOff   2          30s   172.17.0.2   n1\n"
        );
        let args = Args {
            output: Some(Output::Json),
            ..args
        };
        let json: serde_json::Value =
            serde_json::from_str(&render(&args, Kind::Pod, &[], vec![pod], now).unwrap()).unwrap();
        assert_eq!(json["kind"], "List");
        assert_eq!(json["apiVersion"], "v1");
        assert_eq!(json["items"][0]["metadata"]["name"], "web-abc");
    }
}
