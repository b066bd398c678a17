//! Invalid whole files and documents: YAML syntax, kinds and API versions, decoding
//! (unknown fields, wrong types, octal) and problems that span objects.

use super::Case;

pub(super) const CASES: &[Case] = &[
    Case {
        name: "unknown field with suggestion, no repeated required error",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    imagee: nginx:1
"#,
        errors: &[(
            8,
            "spec.containers[0].imagee",
            "unknown field \"imagee\" (did you mean \"image\"?)",
        )],
    },
    Case {
        name: "replicas not a number",
        yaml: r#"
apiVersion: v1
kind: ReplicationController
metadata: {name: worker}
spec:
  replicas: three
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers: [{name: worker, image: "worker:1"}]
"#,
        errors: &[(
            5,
            "spec.replicas",
            "expected an integer, found string \"three\"",
        )],
    },
    Case {
        name: "quoted replicas are a string, as in Kubernetes",
        yaml: r#"
apiVersion: v1
kind: ReplicationController
metadata: {name: worker}
spec:
  replicas: "3"
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers: [{name: worker, image: "worker:1"}]
"#,
        errors: &[(
            5,
            "spec.replicas",
            "expected an integer, found string \"3\"",
        )],
    },
    Case {
        name: "unknown kind",
        yaml: r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: web}
"#,
        errors: &[(2, "kind", "Unsupported value: \"Widget\"")],
    },
    Case {
        name: "wrong apiVersion for a kind",
        yaml: r#"
apiVersion: extensions/v1beta1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(1, "apiVersion", "Deployment is served as \"apps/v1\"")],
    },
    Case {
        name: "live-only kind in git",
        yaml: r#"
apiVersion: v1
kind: Node
metadata: {name: node-1}
"#,
        errors: &[(2, "kind", "Node objects are kept by the cluster")],
    },
    Case {
        name: "missing kind and apiVersion",
        yaml: r#"
metadata: {name: web}
spec: {}
"#,
        errors: &[
            (1, "apiVersion", "Required value"),
            (1, "kind", "Required value"),
        ],
    },
    Case {
        name: "status copied from kubectl",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  resourceVersion: "12345"
spec:
  containers: [{name: web, image: "web:1"}]
status:
  phase: Running
"#,
        errors: &[
            (5, "metadata.resourceVersion", "set by the cluster"),
            (8, "status", "status is set by the cluster"),
        ],
    },
    Case {
        name: "namespace on a cluster-scoped kind",
        yaml: r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  namespace: default
"#,
        errors: &[(5, "metadata.namespace", "Namespace is cluster-scoped")],
    },
    Case {
        name: "a string where a mapping belongs",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: web
"#,
        errors: &[(
            5,
            "spec.containers",
            "expected a list, found string \"web\"",
        )],
    },
    Case {
        name: "YAML syntax error (tab indentation) names the line",
        yaml: "\napiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: cfg\n",
        errors: &[(4, "", "YAML syntax error")],
    },
    Case {
        name: "duplicate key in a mapping",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  name: cfg2
"#,
        errors: &[(5, "", "duplicate key \"name\" (first defined at line 4)")],
    },
    Case {
        name: "duplicate objects in one revision",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: default
"#,
        errors: &[(
            8,
            "metadata.name",
            "ConfigMap default/cfg is also defined at t.yaml:1",
        )],
    },
    Case {
        name: "a document that is not an object",
        yaml: r#"
- apiVersion: v1
  kind: ConfigMap
"#,
        errors: &[(1, "", "expected a Kubernetes object")],
    },
    Case {
        name: "List items are validated with their own paths",
        yaml: r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: ok}
- apiVersion: v1
  kind: Service
  metadata: {name: web}
  spec:
    ports: [{port: 0}]
"#,
        errors: &[(
            11,
            "spec.ports[0].port",
            "Invalid value: 0: must be between 1 and 65535",
        )],
    },
    Case {
        name: "every error in a file is reported, not just the first",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: Web}
spec:
  containers:
  - name: web
    image: web:1
    ports: [{containerPort: 0}]
    imagePullPolicy: Maybe
"#,
        errors: &[
            (3, "metadata.name", "RFC 1123 subdomain"),
            (
                8,
                "spec.containers[0].ports[0].containerPort",
                "Required value",
            ),
            (9, "spec.containers[0].imagePullPolicy", "Unsupported value"),
        ],
    },
    Case {
        name: "a control character is refused, not read as the end of the file",
        yaml: "\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  a: \"x\u{0}\"\n",
        errors: &[(5, "", "control character U+0000")],
    },
    Case {
        name: "a block scalar's key is where its problems point",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  motd/welcome.txt: |
    hello
"#,
        errors: &[(5, "data[motd/welcome.txt]", "a valid config key")],
    },
    Case {
        name: "a leading zero means octal",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - name: cfg
    configMap: {name: cfg, defaultMode: 0999}
  containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            7,
            "spec.volumes[0].configMap.defaultMode",
            "0999 is not a valid octal number",
        )],
    },
    Case {
        name: "a misspelt field is reported once, not also as missing",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    ports:
    - contianerPort: 80
"#,
        errors: &[(
            9,
            "spec.containers[0].ports[0].contianerPort",
            "did you mean \"containerPort\"",
        )],
    },
    Case {
        name: "a value no placeholder fits does not hide the object's other errors",
        yaml: r#"
apiVersion: v1
kind: Service
metadata:
  name: Web_Svc
spec:
  type: ExternalName
  ports:
  - port: 70000
    targetPort: true
"#,
        errors: &[
            (4, "metadata.name", "DNS-1035"),
            (6, "spec.type", "Unsupported value"),
            (8, "spec.ports[0].port", "must be between 1 and 65535"),
            (
                9,
                "spec.ports[0].targetPort",
                "expected an integer or a string",
            ),
        ],
    },
];
