//! What a read asks for: the list options of its query, and the shape of the answer its
//! `Accept` header names (objects, a Table, or metadata only).

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use keel_schema::Kind;
use keel_schema::selector::Selector;

use super::fields::FieldSelector;

/// The longest a watch runs when the client names no `timeoutSeconds` (clients reconnect).
pub const MAX_WATCH: Duration = Duration::from_secs(30 * 60);

/// A list's or watch's options, checked.
#[derive(Debug, Default)]
pub struct ListOptions {
    pub labels: Option<Selector>,
    pub fields: FieldSelector,
    /// Items per page (`limit`); `None`: all of them.
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    /// `resourceVersion`: `None` when unset or empty (the newest state), `Some(0)` for
    /// "any", else the revision the answer must not be older than.
    pub resource_version: Option<u64>,
    /// `resourceVersionMatch=Exact`: the answer must be at exactly that revision.
    pub exact: bool,
    pub watch: bool,
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: a watch starts with the current objects, then a bookmark.
    pub initial_events: bool,
    pub timeout: Option<Duration>,
    /// `includeObject` of a Table's rows.
    pub include: Include,
}

/// What each row of a Table carries (`includeObject`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    #[default]
    Metadata,
    Object,
}

fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, String> {
    match q.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(format!("{name}: {other:?} is not true or false")),
    }
}

impl ListOptions {
    /// Reads the query of a read of `kind`; the error says which parameter is wrong.
    pub fn parse(q: &HashMap<String, String>, kind: Kind) -> Result<ListOptions, String> {
        let labels = match q.get("labelSelector").filter(|s| !s.trim().is_empty()) {
            Some(text) => Some(
                Selector::parse(text)
                    .map_err(|e| format!("unable to parse requirement: labelSelector: {e}"))?,
            ),
            None => None,
        };
        let fields = match q.get("fieldSelector") {
            Some(text) => FieldSelector::parse(text, kind)?,
            None => FieldSelector::default(),
        };
        let limit = match q.get("limit").filter(|s| !s.is_empty()) {
            Some(text) => match text.parse::<i64>() {
                Ok(n) if n > 0 => Some(n as usize),
                // Kubernetes reads zero or a negative limit as none.
                Ok(_) => None,
                Err(_) => return Err(format!("limit: {text:?} is not a number")),
            },
            None => None,
        };
        let resource_version = match q.get("resourceVersion").filter(|s| !s.is_empty()) {
            Some(text) => Some(text.parse::<u64>().map_err(|_| {
                format!("resourceVersion: {text:?} is not a resource version this server gave")
            })?),
            None => None,
        };
        let exact = match q.get("resourceVersionMatch").map(String::as_str) {
            None | Some("") | Some("NotOlderThan") => false,
            Some("Exact") => true,
            Some(other) => {
                return Err(format!(
                    "resourceVersionMatch: {other:?} is not Exact or NotOlderThan"
                ));
            }
        };
        if exact && resource_version.is_none_or(|rv| rv == 0) {
            return Err("resourceVersionMatch=Exact needs a resourceVersion other than 0".into());
        }
        // 0 is unset, as kube-apiserver reads it.
        let timeout = match q.get("timeoutSeconds").filter(|s| !s.is_empty()) {
            Some(text) => match text.parse::<u64>() {
                Ok(0) => None,
                Ok(n) => Some(Duration::from_secs(n)),
                Err(_) => return Err(format!("timeoutSeconds: {text:?} is not a number")),
            },
            None => None,
        };
        let include = match q.get("includeObject").map(String::as_str) {
            None | Some("") | Some("Metadata") => Include::Metadata,
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            Some(other) => {
                return Err(format!(
                    "includeObject: {other:?} is not None, Metadata or Object"
                ));
            }
        };
        Ok(ListOptions {
            labels,
            fields,
            limit,
            continue_token: q.get("continue").filter(|s| !s.is_empty()).cloned(),
            resource_version,
            exact,
            watch: flag(q, "watch")?,
            bookmarks: flag(q, "allowWatchBookmarks")?,
            initial_events: flag(q, "sendInitialEvents")?,
            timeout,
            include,
        })
    }
}

/// The answer's shape, from the first media range of `Accept` keel serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The objects themselves.
    Objects,
    /// `meta.k8s.io/v1` `Table`: kubectl's columns, printed by the server.
    Table,
    /// `PartialObjectMetadata`: metadata only.
    Metadata,
}

impl Shape {
    pub fn of(headers: &HeaderMap) -> Shape {
        let ranges = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|r| r.split(';').map(str::trim).collect::<Vec<_>>());
        for params in ranges {
            let meta = params.contains(&"g=meta.k8s.io")
                && (params.contains(&"v=v1") || params.contains(&"v=v1beta1"));
            if meta && params.contains(&"as=Table") {
                return Shape::Table;
            }
            if meta
                && (params.contains(&"as=PartialObjectMetadata")
                    || params.contains(&"as=PartialObjectMetadataList"))
            {
                return Shape::Metadata;
            }
            if matches!(params.first(), Some(&"application/json") | Some(&"*/*")) {
                return Shape::Objects;
            }
        }
        Shape::Objects
    }
}

#[cfg(test)]
mod tests {
    use super::{Include, ListOptions, Shape};
    use axum::http::{HeaderMap, HeaderValue, header};
    use keel_schema::Kind;
    use std::collections::HashMap;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_what_kubectl_and_client_go_send() {
        let o = ListOptions::parse(
            &query(&[
                ("limit", "500"),
                ("watch", "true"),
                ("resourceVersion", "42"),
                ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", "300"),
                ("fieldSelector", "spec.nodeName=n1"),
                ("labelSelector", "app=web"),
            ]),
            Kind::Pod,
        )
        .unwrap();
        assert_eq!(o.limit, Some(500));
        assert!(o.watch && o.bookmarks);
        assert_eq!(o.resource_version, Some(42));
        assert_eq!(o.include, Include::Metadata);
        assert!(!o.fields.is_empty() && o.labels.is_some());
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (pairs, says) in [
            (&[("limit", "many")][..], "limit"),
            (&[("resourceVersion", "abc")][..], "resourceVersion"),
            (&[("resourceVersionMatch", "Exact")][..], "Exact"),
            (&[("watch", "maybe")][..], "watch"),
            (&[("labelSelector", "a in (")][..], "labelSelector"),
        ] {
            let e = ListOptions::parse(&query(pairs), Kind::Pod).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn shapes_follow_the_first_range_served() {
        let shape = |accept: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(accept));
            Shape::of(&h)
        };
        assert_eq!(
            shape(
                "application/json;as=Table;v=v1;g=meta.k8s.io,\
                 application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Shape::Table
        );
        assert_eq!(shape("application/json, */*"), Shape::Objects);
        assert_eq!(
            shape("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            Shape::Metadata
        );
        assert_eq!(
            shape("application/vnd.kubernetes.protobuf, application/json"),
            Shape::Objects
        );
    }
}
