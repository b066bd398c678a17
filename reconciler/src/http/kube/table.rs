//! Server-side printing: a `meta.k8s.io/v1` `Table` with kubectl's columns for each kind
//! (the ones `keel get` prints, from `keel_api::columns`), wide columns at priority 1, and
//! each row's object as `includeObject` asks (metadata only by default, as kubectl reads).

use chrono::Utc;
use keel_schema::types::apiextensions::CustomResourceColumnDefinition;
use keel_schema::{Kind, Object};
use serde_json::{Value, json};

use super::query::Include;
use super::view::shown;

/// A Table of `objects` of `kind`.
pub fn table<O: std::borrow::Borrow<Object>>(
    kind: Kind,
    custom: &[CustomResourceColumnDefinition],
    objects: &[O],
    include: Include,
) -> Value {
    let (columns, rows) = keel_api::columns::all_columns(kind, objects, custom, Utc::now());
    let definitions: Vec<Value> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, wide))| {
            json!({
                "name": name,
                "type": "string",
                "format": if i == 0 { "name" } else { "" },
                "description": "",
                "priority": if *wide { 1 } else { 0 },
            })
        })
        .collect();
    let rows: Vec<Value> = rows
        .into_iter()
        .zip(objects)
        .map(|(cells, object)| {
            let object = object.borrow();
            let mut row = json!({"cells": cells});
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial_metadata(object),
                Include::Object => row["object"] = shown(object),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// `PartialObjectMetadata`: an object's metadata alone.
pub fn partial_metadata(object: &Object) -> Value {
    let metadata = serde_json::to_value(object.meta()).unwrap_or_default();
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::{Include, table};
    use keel_schema::types::pod::Pod;
    use keel_schema::{Kind, Object};

    #[test]
    fn a_pod_table_has_kubectls_columns_and_metadata_rows() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web-1".into());
        pod.metadata.namespace = Some("shop".into());
        let t = table(Kind::Pod, &[], &[Object::Pod(pod)], Include::Metadata);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["priority"] == 0)
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        let wide = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["priority"] == 1)
            .count();
        assert!(wide >= 2, "{t}");
        assert_eq!(t["rows"][0]["cells"][0], "web-1");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "shop");
    }
}
