//! Strategic merge patches, as `kubectl patch --type strategic` and kustomize apply them:
//! mappings merge key by key, a null removes a key, lists of objects with a merge key
//! (containers by `name`, container ports by `containerPort`, …) merge item by item, other
//! lists are replaced; `$patch: replace|delete|merge` directives are honoured.

use crate::yaml::{Node, Style, Value};

/// What a patch did to the object at its root.
pub enum Outcome {
    Patched,
    /// `$patch: delete` at the root: the object goes away.
    Deleted,
}

/// Merges `patch` into `object`. `Err` names a patch that is not a mapping where one is
/// needed, or a directive keel does not know.
pub fn merge(object: &mut Node, patch: &Node) -> Result<Outcome, String> {
    if directive(patch) == Some("delete") {
        return Ok(Outcome::Deleted);
    }
    merge_map(object, patch, &mut Vec::new())?;
    Ok(Outcome::Patched)
}

fn directive(node: &Node) -> Option<&str> {
    node.get("$patch").and_then(Node::as_str)
}

fn merge_map(dst: &mut Node, patch: &Node, path: &mut Vec<String>) -> Result<(), String> {
    let Value::Map(entries) = &patch.value else {
        *dst = patch.clone();
        return Ok(());
    };
    match directive(patch) {
        Some("replace") => {
            let mut replaced = patch.clone();
            strip_directives(&mut replaced);
            *dst = replaced;
            return Ok(());
        }
        None | Some("merge") => {}
        Some(other) => return Err(format!("unknown $patch directive {other:?}")),
    }
    if !matches!(dst.value, Value::Map(_)) {
        dst.value = Value::Map(Vec::new());
    }
    for (key, value) in entries {
        let Some(name) = key.as_str() else { continue };
        if name == "$patch" || name.starts_with("$setElementOrder/") || name == "$retainKeys" {
            continue;
        }
        if let Some(field) = name.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Value::Seq(gone)) = (super::node::get_mut(dst, field), &value.value)
                && let Value::Seq(items) = &mut list.value
            {
                items.retain(|i| !gone.iter().any(|g| g.as_str() == i.as_str()));
            }
            continue;
        }
        if value.is_null() {
            super::node::remove(dst, name);
            continue;
        }
        if matches!(value.value, Value::Map(_)) && directive(value) == Some("delete") {
            super::node::remove(dst, name);
            continue;
        }
        path.push(name.to_string());
        let existing = super::node::get_mut(dst, name);
        match (existing, &value.value) {
            (Some(d), Value::Map(_)) => merge_map(d, value, path)?,
            (Some(d), Value::Seq(items)) => merge_list(d, items, path)?,
            (Some(d), _) => *d = value.clone(),
            (None, _) => {
                let mut added = value.clone();
                strip_directives(&mut added);
                let key = Node {
                    mark: key.mark,
                    value: Value::Scalar(name.to_string(), Style::Plain),
                };
                if let Value::Map(dst_entries) = &mut dst.value {
                    dst_entries.push((key, added));
                }
            }
        }
        path.pop();
    }
    Ok(())
}

fn merge_list(dst: &mut Node, items: &[Node], path: &mut Vec<String>) -> Result<(), String> {
    let replace = items.iter().any(|i| directive(i) == Some("replace"));
    let patch_items: Vec<&Node> = items
        .iter()
        .filter(|i| !(is_directive_only(i) && directive(i) == Some("replace")))
        .collect();
    let Value::Seq(current) = &mut dst.value else {
        dst.value = Value::Seq(patch_items.into_iter().cloned().collect());
        strip_directives(dst);
        return Ok(());
    };
    if replace {
        *current = patch_items.into_iter().cloned().collect();
        strip_directives(dst);
        return Ok(());
    }
    let field = path.last().map(String::as_str).unwrap_or("");
    if PRIMITIVE_MERGE.contains(&field) {
        for item in patch_items {
            if !current.iter().any(|c| same_scalar(c, item)) {
                current.push(item.clone());
            }
        }
        return Ok(());
    }
    if field == "ports" && in_container(path) {
        merge_container_ports(current, &patch_items, path)?;
        return Ok(());
    }
    let Some(key) = merge_key(path, current, &patch_items) else {
        let mut replaced: Vec<Node> = patch_items.into_iter().cloned().collect();
        replaced.iter_mut().for_each(strip_directives);
        *current = replaced;
        return Ok(());
    };
    // Items the patch names come first, in the patch's order, then the others in theirs:
    // the order kustomize gives a merged list.
    let mut rest: Vec<Option<Node>> = std::mem::take(current).into_iter().map(Some).collect();
    let mut merged = Vec::new();
    for item in patch_items {
        let id = item.get(key).and_then(Node::as_str);
        let at = id.and_then(|id| {
            rest.iter().position(|c| {
                c.as_ref().and_then(|c| c.get(key)).and_then(Node::as_str) == Some(id)
            })
        });
        let found = at.and_then(|i| rest[i].take());
        match (directive(item), found) {
            (Some("delete"), _) => {}
            (_, Some(mut existing)) => {
                merge_map(&mut existing, item, path)?;
                merged.push(existing);
            }
            (_, None) => {
                let mut added = item.clone();
                strip_directives(&mut added);
                merged.push(added);
            }
        }
    }
    merged.extend(rest.into_iter().flatten());
    *current = merged;
    Ok(())
}

/// Lists of scalars whose items are kept as a set.
const PRIMITIVE_MERGE: [&str; 1] = ["finalizers"];

/// The key a list's items merge by: Kubernetes' `patchMergeKey` for the fields keel knows;
/// otherwise, as kustomize does for kinds it has no schema for, the first of its usual keys
/// that every item has.
fn merge_key(path: &[String], current: &[Node], patch: &[&Node]) -> Option<&'static str> {
    let field = path.last().map(String::as_str).unwrap_or("");
    let in_container = in_container(path);
    let known = match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "ports" if in_container => Some("containerPort"),
        "ports" if path.len() == 2 && path[0] == "spec" => Some("port"),
        _ => None,
    };
    if known.is_some() {
        return known;
    }
    if matches!(
        field,
        "args" | "command" | "tolerations" | "envFrom" | "rules" | "subjects"
    ) {
        return None;
    }
    let all: Vec<&Node> = current.iter().chain(patch.iter().copied()).collect();
    if all.is_empty() || !all.iter().all(|n| matches!(n.value, Value::Map(_))) {
        return None;
    }
    ASSOCIATIVE_KEYS
        .into_iter()
        .find(|key| all.iter().all(|n| n.get(key).is_some()))
}

/// Whether the list at `path` is a container's field.
fn in_container(path: &[String]) -> bool {
    path.iter().rev().nth(1).is_some_and(|f| {
        matches!(
            f.as_str(),
            "containers" | "initContainers" | "ephemeralContainers"
        )
    })
}

/// A container's ports merge on `containerPort` and `protocol` together, as kustomize merges
/// them: a matched port keeps its place, new ports go first; a patch port whose number
/// matches but whose protocol is left out is dropped (kustomize v5 does so; keel renders
/// what kustomize renders).
fn merge_container_ports(
    current: &mut Vec<Node>,
    patch: &[&Node],
    path: &mut Vec<String>,
) -> Result<(), String> {
    let key = |n: &Node| {
        (
            n.get("containerPort")
                .and_then(Node::as_str)
                .map(str::to_string),
            n.get("protocol").and_then(Node::as_str).map(str::to_string),
        )
    };
    let mut added = Vec::new();
    for item in patch {
        let (port, protocol) = key(item);
        let exact = current
            .iter()
            .position(|c| key(c) == (port.clone(), protocol.clone()));
        match (directive(item), exact) {
            (Some("delete"), Some(i)) => {
                current.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => merge_map(&mut current[i], item, path)?,
            (_, None) if current.iter().any(|c| key(c).0 == port) => {}
            (_, None) => {
                let mut new = (*item).clone();
                strip_directives(&mut new);
                added.push(new);
            }
        }
    }
    added.append(current);
    *current = added;
    Ok(())
}

const ASSOCIATIVE_KEYS: [&str; 7] = [
    "mountPath",
    "devicePath",
    "ip",
    "type",
    "topologyKey",
    "name",
    "containerPort",
];

fn is_directive_only(node: &Node) -> bool {
    matches!(&node.value, Value::Map(entries) if entries.len() == 1) && directive(node).is_some()
}

fn same_scalar(a: &Node, b: &Node) -> bool {
    a.as_str().is_some() && a.as_str() == b.as_str()
}

/// Removes `$…` directive keys everywhere under `node` (in what a patch adds, rather than
/// merges).
pub fn strip_directives(node: &mut Node) {
    match &mut node.value {
        Value::Map(entries) => {
            entries.retain(|(k, _)| !k.as_str().is_some_and(|k| k.starts_with('$')));
            entries.iter_mut().for_each(|(_, v)| strip_directives(v));
        }
        Value::Seq(items) => {
            items.retain(|i| !(is_directive_only(i)));
            items.iter_mut().for_each(strip_directives);
        }
        Value::Scalar(..) => {}
    }
}
