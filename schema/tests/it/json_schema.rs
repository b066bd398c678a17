//! The exported JSON Schema accepts what keel accepts and flags what editors should flag.

use keel_schema::jsonschema::{manifest_schema, repo_config_schema};
use serde_json::Value;

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("test YAML parses")
}

#[test]
fn schema_accepts_valid_manifests_and_rejects_broken_ones() {
    let schema = manifest_schema();
    let validator = jsonschema::draft7::new(&schema).expect("the schema compiles");
    let valid = [
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  strategy: {rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n        image: web:1\n        ports: [{name: http, containerPort: 80}]\n        resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: 1}}\n        readinessProbe: {httpGet: {port: http, path: /}}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http, nodePort: 30080}]\n",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: aGk=}\nstringData: {b: x}\n",
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: j, image: 'j:1'}]\n",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n",
    ];
    for text in valid {
        let doc = yaml(text);
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{text}\n{errors:?}");
    }
    let invalid = [
        // A misspelt field.
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: p, imagee: 'p:1'}]\n",
        // A kind served elsewhere.
        "apiVersion: v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n",
        // A kind keel does not support.
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: i}\n",
        // A live-only kind.
        "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n",
        // An enum value outside the supported set.
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  restartPolicy: Sometimes\n  containers: [{name: p, image: 'p:1'}]\n",
        // A broken item inside a List.
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n  dta: {}\n",
    ];
    for text in invalid {
        assert!(
            !validator.is_valid(&yaml(text)),
            "schema should reject:\n{text}"
        );
    }
}

#[test]
fn repo_config_schema_is_strict() {
    let schema = repo_config_schema();
    let validator = jsonschema::draft7::new(&schema).expect("the schema compiles");
    assert!(validator.is_valid(&yaml("allowEmpty: true\n")));
    assert!(!validator.is_valid(&yaml("allowEmpty: true\nprune: no\n")));
}
