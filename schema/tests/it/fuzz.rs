//! Property tests: no input, however broken, panics the loader, and every error it reports is
//! located in the file.

use keel_schema::{SourceFile, load_sources};
use proptest::prelude::*;
use serde_json::{Map, Value};

const VALID: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  strategy: {rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: web:1\n        ports: [{name: http, containerPort: 80}]\n        resources: {requests: {cpu: 250m, memory: 64Mi}}\n        readinessProbe: {httpGet: {port: http}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: aGk=}\nstringData: {b: x}\n";

/// `KEEL_FUZZ_CASES` cases (512 unless set): CI keeps it small; run it long by hand.
fn cases() -> u32 {
    std::env::var("KEEL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn load(bytes: Vec<u8>) {
    let rev = load_sources(
        &[SourceFile {
            name: "f.yaml".into(),
            bytes,
        }],
        None,
    );
    for e in &rev.errors {
        assert!(e.line >= 1 && e.column >= 1, "unlocated error: {e}");
        assert_eq!(e.file, "f.yaml");
    }
}

/// Field names keel knows, so generated trees reach deep into the decoder and validators.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "spec",
    "status",
    "replicas",
    "selector",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "template",
    "containers",
    "image",
    "ports",
    "containerPort",
    "protocol",
    "targetPort",
    "nodePort",
    "port",
    "type",
    "env",
    "value",
    "valueFrom",
    "secretKeyRef",
    "resources",
    "requests",
    "limits",
    "cpu",
    "memory",
    "livenessProbe",
    "httpGet",
    "tcpSocket",
    "exec",
    "command",
    "volumes",
    "emptyDir",
    "configMap",
    "secret",
    "hostPath",
    "path",
    "volumeMounts",
    "mountPath",
    "strategy",
    "rollingUpdate",
    "maxSurge",
    "maxUnavailable",
    "data",
    "stringData",
    "binaryData",
    "items",
    "restartPolicy",
    "tolerations",
    "clusterIP",
    "sessionAffinity",
    "defaultMode",
    "<<",
    "uid",
];

const KINDS: &[&str] = &[
    "Pod",
    "Service",
    "ReplicationController",
    "ConfigMap",
    "Secret",
    "Namespace",
    "Node",
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "Job",
    "List",
    "Ingress",
    "IngressClass",
    "CronJob",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            "", "~", "0644", "1e3", "250m", "128Mi", "25%", "None", "TCP", "UDP", "Always", "web",
            "Web_1", "-1", "99999", "v1", "apps/v1", "aGk=", "!!", "a=b", "0x1F", "yes",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    (prop::sample::select(KINDS), prop::sample::select(vec!["v1", "apps/v1", "batch/v1", "x"]), tree(), tree())
        .prop_map(|(kind, api, metadata, spec)| {
            serde_json::json!({"apiVersion": api, "kind": kind, "metadata": metadata, "spec": spec, "items": [spec.clone()]})
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        load(bytes);
    }

    #[test]
    fn arbitrary_yaml_trees_never_panic(docs in prop::collection::vec(object(), 1..4)) {
        let text: Vec<String> = docs.iter().map(|d| serde_yaml::to_string(d).unwrap_or_default()).collect();
        load(text.join("---\n").into_bytes());
    }

    #[test]
    fn mutated_manifests_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..8)) {
        let mut bytes = VALID.as_bytes().to_vec();
        for (at, op, byte) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if i < bytes.len() => { bytes.remove(i); }
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ if i < bytes.len() => bytes[i] = byte,
                _ => {}
            }
        }
        load(bytes);
    }
}

#[test]
fn hostile_yaml_is_an_error_not_a_crash() {
    let deep_flow = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {}",
        "[".repeat(100_000)
    );
    let deep_block: String = (0..200)
        .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
        .collect();
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..9 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("b{}", i - 1)
        };
        let refs = vec![format!("*{prev}"); 10].join(", ");
        bomb.push_str(&format!("b{i}: &b{i} [{refs}]\n"));
    }
    for text in [
        deep_flow,
        deep_block,
        bomb,
        "\u{feff}\u{0}\u{1}".to_string(),
        "key: [unclosed".to_string(),
    ] {
        let text_preview: String = text.chars().take(60).collect();
        let rev = load_sources(
            &[SourceFile {
                name: "f.yaml".into(),
                bytes: text.into_bytes(),
            }],
            None,
        );
        assert!(!rev.errors.is_empty(), "no error for {:?}", &text_preview);
    }
}
