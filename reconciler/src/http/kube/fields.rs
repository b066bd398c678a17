//! Field selectors (`?fieldSelector=spec.nodeName=node-1,status.phase!=Failed`), on the
//! fields Kubernetes lets each kind be selected by; any other field is a 400, as there.

use keel_schema::Kind;
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
