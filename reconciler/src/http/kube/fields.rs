//! Field selectors (`?fieldSelector=spec.nodeName=node-1,status.phase!=Failed`), on the
//! fields Kubernetes lets each kind be selected by; any other field is a 400, as there.

use keel_schema::{Kind, Object};
use serde_json::Value;

/// One requirement: a field equal (`=`, `==`) or not equal (`!=`) to a value.
#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    field: String,
    equal: bool,
    value: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector {
    requirements: Vec<Requirement>,
}

/// The fields each kind may be selected by, besides `metadata.name` and
/// `metadata.namespace` (kube-apiserver's field label conversions).
fn selectable(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Pod => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Kind::Event => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        Kind::Secret => &["type"],
        Kind::Node => &["spec.unschedulable"],
        Kind::Namespace => &["status.phase"],
        Kind::ReplicationController | Kind::ReplicaSet => &["status.replicas"],
        Kind::Job => &["status.successful"],
        _ => &[],
    }
}

/// What a field reads as when the object leaves it out (an unset boolean is `false`).
fn unset_value(field: &str) -> &'static str {
    match field {
        "spec.hostNetwork" | "spec.unschedulable" => "false",
        _ => "",
    }
}

impl FieldSelector {
    /// Parses `text` for `kind`; the error names the requirement or field at fault.
    pub fn parse(text: &str, kind: Kind) -> Result<FieldSelector, String> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            // The leftmost operator splits, as Kubernetes reads it (`a=b!=c` is a == "b!=c").
            let malformed = || {
                format!(
                    "invalid selector: {part:?}: expected FIELD=VALUE, FIELD==VALUE or FIELD!=VALUE"
                )
            };
            let at = part.find(['=', '!']).ok_or_else(malformed)?;
            let (field, rest) = part.split_at(at);
            let (equal, value) = if let Some(v) = rest.strip_prefix("!=") {
                (false, v)
            } else if let Some(v) = rest.strip_prefix("==") {
                (true, v)
            } else if let Some(v) = rest.strip_prefix('=') {
                (true, v)
            } else {
                return Err(malformed());
            };
            let field = field.trim();
            let known = matches!(field, "metadata.name" | "metadata.namespace")
                || selectable(kind).contains(&field);
            if !known {
                return Err(format!(
                    "field label not supported: {field} (for {}: metadata.name, \
                     metadata.namespace{})",
                    kind.info().resource(),
                    selectable(kind)
                        .iter()
                        .map(|f| format!(", {f}"))
                        .collect::<String>()
                ));
            }
            requirements.push(Requirement {
                field: field.to_string(),
                equal,
                value: value.trim().to_string(),
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `object` (as the API shows it) meets every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let found = field_text(object, &r.field);
            let found = found.as_deref().unwrap_or_else(|| unset_value(&r.field));
            (found == r.value) == r.equal
        })
    }

    /// [`FieldSelector::matches`] on the object itself: the fields lists of many objects
    /// select by are read straight from it, and it is turned into JSON (`shown`) only for
    /// the others. `kubectl describe node` lists a node's pods by `spec.nodeName`: among
    /// 100,000 pods that is a pass over pointers, not 100,000 conversions.
    pub fn matches_object(&self, object: &Object, shown: impl Fn(&Object) -> Value) -> bool {
        let mut json = None;
        self.requirements.iter().all(|r| {
            let found = match typed_text(object, &r.field) {
                Some(text) => text.map(str::to_string),
                None => field_text(json.get_or_insert_with(|| shown(object)), &r.field),
            };
            let found = found.as_deref().unwrap_or_else(|| unset_value(&r.field));
            (found == r.value) == r.equal
        })
    }
}

/// A text field read from the typed object (`Some(None)`: unset), for the fields selected
/// by most often; `None` for any other field.
fn typed_text<'o>(object: &'o Object, field: &str) -> Option<Option<&'o str>> {
    let meta = object.meta();
    Some(match (object, field) {
        (_, "metadata.name") => meta.name.as_deref(),
        (_, "metadata.namespace") => meta.namespace.as_deref(),
        (Object::Pod(p), "spec.nodeName") => p.spec.node_name.as_deref(),
        (Object::Event(e), "involvedObject.kind") => e.involved_object.kind.as_deref(),
        (Object::Event(e), "involvedObject.namespace") => e.involved_object.namespace.as_deref(),
        (Object::Event(e), "involvedObject.name") => e.involved_object.name.as_deref(),
        (Object::Event(e), "involvedObject.uid") => e.involved_object.uid.as_deref(),
        _ => return None,
    })
}

/// The text of a dotted field (`source` of an Event is its component, as in Kubernetes).
fn field_text(object: &Value, field: &str) -> Option<String> {
    let path = if field == "source" {
        "source.component"
    } else {
        field
    };
    let mut at = object;
    for step in path.split('.') {
        at = at.get(step)?;
    }
    match at {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::FieldSelector;
    use keel_schema::Kind;
    use serde_json::json;

    #[test]
    fn selects_pods_as_kubectl_describe_node_does() {
        let s = FieldSelector::parse(
            "spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed",
            Kind::Pod,
        )
        .unwrap();
        let pod = |node: &str, phase: &str| json!({"spec": {"nodeName": node}, "status": {"phase": phase}});
        assert!(s.matches(&pod("n1", "Running")));
        assert!(!s.matches(&pod("n2", "Running")));
        assert!(!s.matches(&pod("n1", "Failed")));
    }

    /// Read from the typed object or from its JSON, every field gives the same answer.
    #[test]
    fn typed_fields_agree_with_the_shown_object() {
        let pod = |node: Option<&str>, phase: &str| {
            let mut spec = json!({"containers": [{"name": "c", "image": "i"}]});
            if let Some(node) = node {
                spec["nodeName"] = json!(node);
            }
            keel_schema::Object::from_json(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns"},
                "spec": spec, "status": {"phase": phase}
            }))
            .unwrap()
        };
        let selectors = [
            "spec.nodeName=n1",
            "spec.nodeName!=n1",
            "spec.nodeName=",
            "spec.nodeName=n1,status.phase!=Failed",
            "metadata.name=p,metadata.namespace=ns",
            "metadata.namespace!=ns",
            "status.phase=Running",
        ];
        let shown = |o: &keel_schema::Object| serde_json::to_value(o).unwrap();
        for text in selectors {
            let s = FieldSelector::parse(text, Kind::Pod).unwrap();
            for object in [
                pod(Some("n1"), "Running"),
                pod(Some("n2"), "Failed"),
                pod(None, "Pending"),
            ] {
                assert_eq!(
                    s.matches_object(&object, shown),
                    s.matches(&shown(&object)),
                    "{text} on {object:?}"
                );
            }
        }
        let on_n1 = FieldSelector::parse("spec.nodeName=n1", Kind::Pod).unwrap();
        assert!(on_n1.matches_object(&pod(Some("n1"), "Running"), |_| unreachable!("typed")));
        let event = keel_schema::Object::from_json(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns", "uid": "u"}
        }))
        .unwrap();
        let about = FieldSelector::parse(
            "involvedObject.kind=Pod,involvedObject.name=p,involvedObject.namespace=ns,involvedObject.uid=u",
            Kind::Event,
        )
        .unwrap();
        assert!(about.matches_object(&event, |_| unreachable!("typed")));
        let other = FieldSelector::parse("involvedObject.name=q", Kind::Event).unwrap();
        assert!(!other.matches_object(&event, shown));
    }

    #[test]
    fn unset_fields_read_as_kubernetes_reads_them() {
        let unscheduled = FieldSelector::parse("spec.nodeName=", Kind::Pod).unwrap();
        assert!(unscheduled.matches(&json!({"spec": {}})));
        let host = FieldSelector::parse("spec.hostNetwork=false", Kind::Pod).unwrap();
        assert!(host.matches(&json!({"spec": {}})));
        let event = FieldSelector::parse("source=keel-agent", Kind::Event).unwrap();
        assert!(event.matches(&json!({"source": {"component": "keel-agent"}})));
    }

    #[test]
    fn unknown_fields_and_malformed_requirements_are_refused() {
        let e = FieldSelector::parse("spec.replicas=3", Kind::Deployment).unwrap_err();
        assert!(
            e.contains("field label not supported: spec.replicas"),
            "{e}"
        );
        let e = FieldSelector::parse("metadata.name", Kind::Pod).unwrap_err();
        assert!(e.contains("expected FIELD=VALUE"), "{e}");
        let e = FieldSelector::parse("metadata.name!x", Kind::Pod).unwrap_err();
        assert!(e.contains("expected FIELD=VALUE"), "{e}");
        // The leftmost operator splits.
        let odd = FieldSelector::parse("metadata.name=a!=b", Kind::Pod).unwrap();
        assert!(odd.matches(&json!({"metadata": {"name": "a!=b"}})));
    }
}
