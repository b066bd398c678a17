//! How the API shows an object, and whether it is one a list or watch asked for.

use keel_schema::{Kind, Object};
use serde_json::{Value, json};

use super::query::ListOptions;

/// An object as the API shows it: Secret values replaced by a marker (base64 in `data`, as
/// clients decode it), and a Job's selector as Kubernetes defaults it (its pods'
/// `controller-uid`), which `kubectl logs job/NAME` and `describe` select its pods by.
/// [`write_shown`] must change with this.
pub fn shown(object: &Object) -> Value {
    let mut v = serde_json::to_value(object).unwrap_or_default();
    if let Object::Job(job) = object
        && let Some(uid) = job.metadata.uid.as_deref()
        && let Some(Value::Object(spec)) = v.get_mut("spec")
    {
        spec.entry("selector")
            .or_insert_with(|| json!({"matchLabels": {"controller-uid": uid}}));
    }
    if object.kind() == Kind::Secret {
        for (field, marker) in [
            ("data", keel_api::REDACTED_DATA),
            ("stringData", keel_api::REDACTED),
        ] {
            if let Some(Value::Object(data)) = v.get_mut(field) {
                for value in data.values_mut() {
                    *value = json!(marker);
                }
            }
        }
    }
    v
}

/// `object` as [`shown`], written as JSON into `out`. Only Jobs and Secrets are shown other
/// than as stored; every other object is written straight from its fields, without the
/// JSON tree `shown` builds.
pub fn write_shown(out: &mut Vec<u8>, object: &Object) -> serde_json::Result<()> {
    match object.kind() {
        Kind::Job | Kind::Secret => serde_json::to_writer(out, &shown(object)),
        _ => serde_json::to_writer(out, object),
    }
}

/// Whether `object` passes the list's selectors (labels, then fields on its shown form).
pub fn selected(options: &ListOptions, object: &Object) -> bool {
    options
        .labels
        .as_ref()
        .is_none_or(|s| s.matches(object.meta().labels()))
        && (options.fields.is_empty() || options.fields.matches_object(object, shown))
}

#[cfg(test)]
mod tests {
    use keel_schema::Object;

    #[test]
    fn a_job_shows_the_selector_its_pods_are_found_by() {
        let job = Object::from_json(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "default", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "x:1"}]}}}
        }))
        .unwrap();
        let shown = super::shown(&job);
        assert_eq!(
            shown["spec"]["selector"]["matchLabels"]["controller-uid"],
            "u-1"
        );
    }
}
