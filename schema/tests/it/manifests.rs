//! Data-driven tests of manifest loading: YAML in, located errors or objects out.
//!
//! Each case is one file's text and the exact `(line, field)` of every error expected, with a
//! fragment of each message. Lines count from the first line of the text.

use keel_schema::object::Object;
use keel_schema::{SourceFile, load_sources};

struct Case {
    name: &'static str,
    yaml: &'static str,
    /// `(line, field path or "", message fragment)`, in output order (by line).
    errors: &'static [(u32, &'static str, &'static str)],
}

fn source(yaml: &str) -> SourceFile {
    SourceFile {
        name: "t.yaml".into(),
        bytes: yaml.strip_prefix('\n').unwrap_or(yaml).as_bytes().to_vec(),
    }
}

/// Compares what loading `case` reports with what it expects; `Err` describes the mismatch.
fn check(case: &Case) -> Result<(), String> {
    let rev = load_sources(&[source(case.yaml)], None);
    let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
    let got: Vec<(u32, String)> = rev
        .errors
        .iter()
        .map(|e| (e.line, e.field.clone().unwrap_or_default()))
        .collect();
    let want: Vec<(u32, String)> = case
        .errors
        .iter()
        .map(|(l, f, _)| (*l, f.to_string()))
        .collect();
    if got != want {
        return Err(format!(
            "case {:?}: expected {want:?}, got:\n  {}",
            case.name,
            shown.join("\n  ")
        ));
    }
    for (e, (_, _, fragment)) in rev.errors.iter().zip(case.errors) {
        if !e.message.contains(fragment) {
            return Err(format!(
                "case {:?}: message {:?} lacks {fragment:?}",
                case.name, e.message
            ));
        }
    }
    Ok(())
}

const INVALID: &[Case] = &[
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
        name: "container port out of range",
        yaml: r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: web:1
        ports:
        - containerPort: 70000
"#,
        errors: &[(
            16,
            "spec.template.spec.containers[0].ports[0].containerPort",
            "Invalid value: 70000: must be between 1 and 65535",
        )],
    },
    Case {
        name: "SCTP is unsupported",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    ports:
    - containerPort: 80
      protocol: SCTP
"#,
        errors: &[(
            10,
            "spec.containers[0].ports[0].protocol",
            "Unsupported value: \"SCTP\"",
        )],
    },
    Case {
        name: "selector does not match template labels",
        yaml: r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels:
        app: api
    spec:
      containers:
      - {name: web, image: "web:1"}
"#,
        errors: &[(
            9,
            "spec.template.metadata.labels",
            "`selector` does not match template `labels`",
        )],
    },
    Case {
        name: "missing selector on apps/v1",
        yaml: r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(4, "spec.selector", "Required value")],
    },
    Case {
        name: "empty selector is invalid",
        yaml: r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            5,
            "spec.selector",
            "empty selector is invalid for deployment",
        )],
    },
    Case {
        name: "In without values",
        yaml: r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector:
    matchExpressions:
    - key: app
      operator: In
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            7,
            "spec.selector.matchExpressions[0].values",
            "must be specified when `operator` is 'In' or 'NotIn'",
        )],
    },
    Case {
        name: "unsupported selector operator",
        yaml: r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector:
    matchExpressions:
    - {key: app, operator: Gt, values: ["1"]}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: "agent:1"}]
"#,
        errors: &[(
            7,
            "spec.selector.matchExpressions[0].operator",
            "Unsupported value: \"Gt\"",
        )],
    },
    Case {
        name: "uppercase object name",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: Web_Config
data: {a: b}
"#,
        errors: &[(4, "metadata.name", "RFC 1123 subdomain")],
    },
    Case {
        name: "service name must be a DNS-1035 label",
        yaml: r#"
apiVersion: v1
kind: Service
metadata:
  name: 1web
spec:
  ports: [{port: 80}]
"#,
        errors: &[(4, "metadata.name", "DNS-1035 label")],
    },
    Case {
        name: "missing name",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata:
  labels: {app: web}
data: {a: b}
"#,
        errors: &[(3, "metadata.name", "Required value")],
    },
    Case {
        name: "label value with a space",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels:
    team: web team
"#,
        errors: &[(
            6,
            "metadata.labels[team]",
            "a valid label must be an empty string",
        )],
    },
    Case {
        name: "label key with bad prefix",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels:
    Example.COM/team: web
"#,
        errors: &[(
            6,
            "metadata.labels[Example.COM/team]",
            "label key: prefix part",
        )],
    },
    Case {
        name: "malformed quantity",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    resources:
      limits:
        memory: 100MB
"#,
        errors: &[(
            10,
            "spec.containers[0].resources.limits[memory]",
            "quantities must match the regular expression",
        )],
    },
    Case {
        name: "requests above limits",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    resources:
      requests:
        cpu: "1.5"
      limits:
        cpu: 1000m
"#,
        errors: &[(
            10,
            "spec.containers[0].resources.requests[cpu]",
            "must be less than or equal to cpu limit of 1000m",
        )],
    },
    Case {
        name: "unsupported resource name",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    resources:
      limits:
        nvidia.com/gpu: 1
"#,
        errors: &[(
            10,
            "spec.containers[0].resources.limits[nvidia.com/gpu]",
            "Unsupported value: \"nvidia.com/gpu\"",
        )],
    },
    Case {
        name: "negative quantity",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    resources: {requests: {cpu: -1}}
"#,
        errors: &[(
            8,
            "spec.containers[0].resources.requests[cpu]",
            "must be greater than or equal to 0",
        )],
    },
    Case {
        name: "restartPolicy enum",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  restartPolicy: Sometimes
  containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            5,
            "spec.restartPolicy",
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        )],
    },
    Case {
        name: "deployment pods must restart Always",
        yaml: r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      restartPolicy: Never
      containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            9,
            "spec.template.spec.restartPolicy",
            "supported values: \"Always\"",
        )],
    },
    Case {
        name: "job pods need OnFailure or Never",
        yaml: r#"
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    spec:
      containers: [{name: migrate, image: "migrate:1"}]
"#,
        errors: &[(6, "spec.template.spec.restartPolicy", "Required value")],
    },
    Case {
        name: "imagePullPolicy enum",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    imagePullPolicy: Sometimes
"#,
        errors: &[(
            8,
            "spec.containers[0].imagePullPolicy",
            "Unsupported value: \"Sometimes\"",
        )],
    },
    Case {
        name: "service type LoadBalancer unsupported",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
"#,
        errors: &[(
            5,
            "spec.type",
            "Unsupported value: \"LoadBalancer\": supported values: \"ClusterIP\", \"NodePort\"",
        )],
    },
    Case {
        name: "deployment strategy type enum",
        yaml: r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  strategy:
    type: BlueGreen
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(6, "spec.strategy.type", "Unsupported value: \"BlueGreen\"")],
    },
    Case {
        name: "duplicate container names",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: web:1
  - name: app
    image: sidecar:1
"#,
        errors: &[(8, "spec.containers[1].name", "Duplicate value: \"app\"")],
    },
    Case {
        name: "duplicate port names within a container",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: web:1
    ports:
    - {name: http, containerPort: 80}
    - name: http
      containerPort: 8080
"#,
        errors: &[(
            10,
            "spec.containers[0].ports[1].name",
            "Duplicate value: \"http\"",
        )],
    },
    Case {
        name: "nodePort outside range",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  ports:
  - port: 80
    nodePort: 80
"#,
        errors: &[(
            8,
            "spec.ports[0].nodePort",
            "The range of valid ports is 30000-32767",
        )],
    },
    Case {
        name: "nodePort on a ClusterIP service",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
  - port: 80
    nodePort: 30080
"#,
        errors: &[(
            7,
            "spec.ports[0].nodePort",
            "may not be used when `type` is 'ClusterIP'",
        )],
    },
    Case {
        name: "service port names required with several ports",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
  - name: http
    port: 80
  - port: 443
"#,
        errors: &[(
            8,
            "spec.ports[1].name",
            "must be specified when there is more than one port",
        )],
    },
    Case {
        name: "service target port name format",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
  - port: 80
    targetPort: "http_port"
"#,
        errors: &[(
            7,
            "spec.ports[0].targetPort",
            "must contain only alpha-numeric characters",
        )],
    },
    Case {
        name: "named targetPort no selected template defines",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: http
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: web:1
        ports: [{name: web, containerPort: 80}]
"#,
        errors: &[(
            8,
            "spec.ports[0].targetPort",
            "no container port has this name in the pods this Service selects (Deployment default/web)",
        )],
    },
    Case {
        name: "invalid clusterIP",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.300
  ports: [{port: 80}]
"#,
        errors: &[(
            5,
            "spec.clusterIP",
            "must be empty, 'None', or a valid IPv4 address",
        )],
    },
    Case {
        name: "replicas negative",
        yaml: r#"
apiVersion: v1
kind: ReplicationController
metadata: {name: worker}
spec:
  replicas: -1
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers: [{name: worker, image: "worker:1"}]
"#,
        errors: &[(
            5,
            "spec.replicas",
            "Invalid value: -1: must be greater than or equal to 0",
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
        name: "rc selector must match template",
        yaml: r#"
apiVersion: v1
kind: ReplicationController
metadata: {name: worker}
spec:
  selector: {app: worker}
  template:
    metadata:
      labels: {app: other}
    spec:
      containers: [{name: worker, image: "worker:1"}]
"#,
        errors: &[(
            8,
            "spec.template.metadata.labels",
            "`selector` does not match template `labels`",
        )],
    },
    Case {
        name: "maxSurge and maxUnavailable both zero",
        yaml: r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  strategy:
    rollingUpdate:
      maxSurge: 0
      maxUnavailable: 0%
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            8,
            "spec.strategy.rollingUpdate.maxUnavailable",
            "may not be 0 when `maxSurge` is 0",
        )],
    },
    Case {
        name: "maxSurge malformed percent",
        yaml: r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  strategy:
    rollingUpdate:
      maxSurge: "25"
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            7,
            "spec.strategy.rollingUpdate.maxSurge",
            "a valid percent string must be",
        )],
    },
    Case {
        name: "Recreate with rollingUpdate",
        yaml: r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  strategy:
    type: Recreate
    rollingUpdate: {maxSurge: 1}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            7,
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy `type` is 'Recreate'",
        )],
    },
    Case {
        name: "probe with two handlers",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    livenessProbe:
      httpGet: {port: 80}
      tcpSocket: {port: 80}
"#,
        errors: &[(
            10,
            "spec.containers[0].livenessProbe.tcpSocket",
            "may not specify more than 1 handler type",
        )],
    },
    Case {
        name: "probe with no handler",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    readinessProbe:
      periodSeconds: 5
"#,
        errors: &[(
            8,
            "spec.containers[0].readinessProbe",
            "must specify a handler type",
        )],
    },
    Case {
        name: "probe named port not on the container",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    ports: [{name: http, containerPort: 80}]
    readinessProbe:
      httpGet: {port: metrics, path: /ready}
"#,
        errors: &[(
            10,
            "spec.containers[0].readinessProbe.httpGet.port",
            "no container port has this name",
        )],
    },
    Case {
        name: "liveness successThreshold must be 1",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    livenessProbe:
      exec: {command: [true]}
      successThreshold: 2
"#,
        errors: &[(
            10,
            "spec.containers[0].livenessProbe.successThreshold",
            "must be 1",
        )],
    },
    Case {
        name: "env value and valueFrom",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    env:
    - name: TOKEN
      value: abc
      valueFrom:
        secretKeyRef: {name: api, key: token}
"#,
        errors: &[(
            11,
            "spec.containers[0].env[0].valueFrom",
            "may not be specified when `value` is not empty",
        )],
    },
    Case {
        name: "env secretKeyRef without key",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    env:
    - name: TOKEN
      valueFrom:
        secretKeyRef:
          name: api
"#,
        errors: &[(
            11,
            "spec.containers[0].env[0].valueFrom.secretKeyRef.key",
            "Required value",
        )],
    },
    Case {
        name: "env name invalid",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    env:
    - name: 1TOKEN
      value: x
"#,
        errors: &[(
            9,
            "spec.containers[0].env[0].name",
            "must not start with a digit",
        )],
    },
    Case {
        name: "volumeMount of a missing volume",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    volumeMounts:
    - name: data
      mountPath: /data
"#,
        errors: &[(
            9,
            "spec.containers[0].volumeMounts[0].name",
            "Not found: \"data\"",
        )],
    },
    Case {
        name: "volume with two sources",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - name: data
    emptyDir: {}
    configMap: {name: cfg}
  containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            8,
            "spec.volumes[0].configMap",
            "may not specify more than 1 volume type",
        )],
    },
    Case {
        name: "volume file mode above 0777",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - name: cfg
    configMap:
      name: cfg
      defaultMode: 01777
  containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            9,
            "spec.volumes[0].configMap.defaultMode",
            "Invalid value: 1023",
        )],
    },
    Case {
        name: "hostPath must be absolute",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - name: logs
    hostPath: {path: var/log}
  containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            7,
            "spec.volumes[0].hostPath.path",
            "must be an absolute path",
        )],
    },
    Case {
        name: "secret data not base64, value never shown",
        yaml: r#"
apiVersion: v1
kind: Secret
metadata: {name: api}
data:
  token: hunter2!
"#,
        errors: &[(
            5,
            "data[token]",
            "Invalid value: <hidden>: illegal base64 data at input byte",
        )],
    },
    Case {
        name: "configmap key with a slash",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  conf/app.ini: x
"#,
        errors: &[(
            5,
            "data[conf/app.ini]",
            "a valid config key must consist of",
        )],
    },
    Case {
        name: "unknown kind",
        yaml: r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
"#,
        errors: &[(2, "kind", "Unsupported value: \"Ingress\"")],
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
        name: "missing image and missing containers",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  containers:
  - name: web
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec: {}
"#,
        errors: &[
            (6, "spec.containers[0].image", "Required value"),
            (11, "spec.containers", "Required value"),
        ],
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
        name: "toleration Exists with a value",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  tolerations:
  - key: dedicated
    operator: Exists
    value: gpu
  containers: [{name: web, image: "web:1"}]
"#,
        errors: &[(
            8,
            "spec.tolerations[0].value",
            "value must be empty when `operator` is 'Exists'",
        )],
    },
    Case {
        name: "session affinity timeout out of range",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  sessionAffinity: ClientIP
  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: 0
  ports: [{port: 80}]
"#,
        errors: &[(
            8,
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            "must be between 1 and 86400",
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
        name: "an invalid label key is located at the key, its value at the value",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels:
    app: web
    bad key: "also bad!"
"#,
        errors: &[
            (
                7,
                "metadata.labels[bad key]",
                "label key: name part must consist of",
            ),
            (7, "metadata.labels[bad key]", "a valid label must be"),
        ],
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
  type: LoadBalancer
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
    Case {
        name: "config keys may not start with ..",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  ..data: x
"#,
        errors: &[(5, "data[..data]", "must not start with '..'")],
    },
];

#[test]
fn invalid_manifests_report_exact_fields_and_lines() {
    assert!(
        INVALID.len() >= 40,
        "the table keeps at least 40 invalid cases"
    );
    let failures: Vec<String> = INVALID.iter().filter_map(|c| check(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        INVALID.len(),
        failures.join("\n")
    );
}

/// Valid manifests of every kind git may declare, as a team would write them.
const VALID: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: web}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: shop}
data:
  index.html: |
    <h1>hello</h1>
  LOG_LEVEL: debug
  PORT: 8080
binaryData:
  logo.png: iVBORw0KGgo=
---
apiVersion: v1
kind: Secret
metadata: {name: api-token, namespace: shop}
type: Opaque
data:
  token: czNjcjN0
stringData:
  password: hunter2
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
  namespace: shop
  annotations:
    keel.dev/prune: disabled
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  nodeSelector: {disk: ssd}
  tolerations:
  - {key: dedicated, operator: Equal, value: web, effect: NoSchedule}
  - {operator: Exists}
  volumes:
  - name: scratch
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
  - name: config
    configMap:
      name: web-config
      defaultMode: 0644
      items: [{key: index.html, path: html/index.html}]
  - name: token
    secret: {secretName: api-token, optional: true}
  - name: logs
    hostPath: {path: /var/log/keel, type: DirectoryOrCreate}
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c"]
    args: ["httpd -f -p 8080"]
    workingDir: /srv
    env:
    - {name: PORT, value: 8080}
    - name: EMPTY
      value:
    - name: LEVEL
      valueFrom: {configMapKeyRef: {name: web-config, key: LOG_LEVEL}}
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: api-token, key: token, optional: false}}
    envFrom:
    - configMapRef: {name: web-config}
      prefix: CFG_
    - secretRef: {name: api-token}
    ports:
    - {name: http, containerPort: 8080}
    - {name: dns, containerPort: 53, protocol: UDP, hostPort: 5353}
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: "0.5", memory: 1e8}
    volumeMounts:
    - {name: scratch, mountPath: /tmp}
    - {name: config, mountPath: /srv, readOnly: true}
    - {name: token, mountPath: /token, subPath: token}
    - {name: logs, mountPath: /logs}
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
        httpHeaders: [{name: X-Probe, value: keel}]
      initialDelaySeconds: 3
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 2
      successThreshold: 2
    startupProbe:
      exec: {command: [cat, /tmp/ready]}
      failureThreshold: 30
    imagePullPolicy: IfNotPresent
  - name: sidecar
    image: busybox:1.36
    command: [sleep, "3600"]
status: {}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  sessionAffinity: ClientIP
  ports:
  - {name: http, port: 80, targetPort: http, nodePort: 30080}
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
---
apiVersion: v1
kind: Service
metadata: {name: web-headless, namespace: shop}
spec:
  clusterIP: None
  selector: {app: web}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: worker, namespace: shop}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers: [{name: worker, image: "worker:1"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  replicas: 3
  revisionHistoryLimit: 5
  minReadySeconds: 2
  selector:
    matchLabels: {app: web}
    matchExpressions:
    - {key: tier, operator: In, values: [front, edge]}
    - {key: canary, operator: DoesNotExist}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers:
      - name: web
        image: keel-example/web:1
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: cache, namespace: shop}
spec:
  replicas: 0
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec:
      containers: [{name: cache, image: "cache:1"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: log-agent, namespace: shop}
spec:
  selector: {matchLabels: {app: log-agent}}
  updateStrategy: {type: OnDelete}
  template:
    metadata: {labels: {app: log-agent}}
    spec:
      tolerations: [{operator: Exists, effect: NoExecute, tolerationSeconds: 60}]
      containers: [{name: agent, image: "agent:1"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: shop}
spec:
  completions: 3
  parallelism: 2
  backoffLimit: 4
  activeDeadlineSeconds: 600
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: "migrate:1", args: [--all]}]
"#;

#[test]
fn valid_manifests_of_every_kind_load_with_defaults() {
    let rev = load_sources(&[source(VALID)], None);
    let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        rev.errors.is_empty(),
        "unexpected errors:\n{}",
        shown.join("\n")
    );
    let kinds: Vec<&str> = rev
        .manifests
        .iter()
        .map(|m| m.object.kind().as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ConfigMap",
            "Secret",
            "Pod",
            "Service",
            "Service",
            "ReplicationController",
            "Deployment",
            "ReplicaSet",
            "DaemonSet",
            "Job"
        ]
    );
    for m in &rev.manifests {
        // Every object knows its line, and namespaced objects got their namespace.
        assert!(m.line >= 1);
        if m.object.info().namespaced {
            assert_eq!(m.object.namespace(), "shop");
        }
    }
    let find = |kind: &str, name: &str| {
        rev.manifests
            .iter()
            .find(|m| m.object.kind() == kind && m.object.name() == name)
            .map(|m| m.object.clone())
            .unwrap_or_else(|| panic!("{kind} {name} loaded"))
    };
    // Scalars reach string fields as written; YAML 1.1 octal modes; quantities exact.
    let Object::Pod(pod) = find("Pod", "debug") else {
        unreachable!()
    };
    let main = &pod.spec.containers[0];
    let env = main.env.as_ref().unwrap();
    assert_eq!(env[0].value.as_deref(), Some("8080"));
    assert_eq!(env[1].value.as_deref().unwrap_or(""), "");
    let volumes = pod.spec.volumes.as_ref().unwrap();
    assert_eq!(
        volumes[1].config_map.as_ref().unwrap().default_mode,
        Some(0o644)
    );
    let limits = main.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["cpu"].millis(), Ok(500));
    assert_eq!(limits["memory"].value(), Ok(100_000_000));
    // Defaults filled in as Kubernetes would.
    let probe = main.readiness_probe.as_ref().unwrap();
    assert_eq!(
        (
            probe.period_seconds,
            probe.timeout_seconds,
            probe.failure_threshold
        ),
        (Some(2), Some(1), Some(3))
    );
    assert_eq!(
        pod.spec.containers[1].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    let Object::Deployment(deploy) = find("Deployment", "web") else {
        unreachable!()
    };
    assert_eq!(deploy.api_version, "apps/v1");
    let Object::Service(svc) = find("Service", "web") else {
        unreachable!()
    };
    let dns = &svc.spec.ports.as_ref().unwrap()[1];
    assert_eq!(dns.protocol.as_deref(), Some("UDP"));
    let Object::Secret(secret) = find("Secret", "api-token") else {
        unreachable!()
    };
    assert!(secret.string_data.is_none(), "stringData merged into data");
    let data = &secret.data.as_ref().unwrap().0;
    assert_eq!(data["password"], "aHVudGVyMg==");
    assert!(
        !format!("{secret:?}").contains("aHVudGVyMg"),
        "Debug never shows secret values"
    );
    let Object::ReplicationController(rc) = find("ReplicationController", "worker") else {
        unreachable!()
    };
    assert_eq!(
        rc.spec.selector.as_ref().unwrap()["app"],
        "worker",
        "RC selector defaults to template labels"
    );
    let Object::Job(job) = find("Job", "migrate") else {
        unreachable!()
    };
    assert_eq!(job.spec.backoff_limit, Some(4));
    let Object::Deployment(_) = find("Deployment", "web") else {
        unreachable!()
    };
}

#[test]
fn defaults_make_explicit_and_implicit_manifests_equal() {
    let implicit = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1", ports: [{containerPort: 80}]}]
"#;
    let explicit = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  revisionHistoryLimit: 10
  progressDeadlineSeconds: 600
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      restartPolicy: Always
      terminationGracePeriodSeconds: 30
      containers:
      - name: web
        image: web:1
        imagePullPolicy: IfNotPresent
        ports: [{containerPort: 80, protocol: TCP}]
"#;
    let a = load_sources(&[source(implicit)], None);
    let b = load_sources(&[source(explicit)], None);
    assert!(
        a.errors.is_empty() && b.errors.is_empty(),
        "{:?} {:?}",
        a.errors,
        b.errors
    );
    assert_eq!(a.manifests[0].object, b.manifests[0].object);
}

#[test]
fn anchors_merge_keys_and_lists_across_files() {
    let base = SourceFile {
        name: "a/base.yml".into(),
        bytes: br#"
# shared container settings, reused with an anchor
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: one}
  spec:
    containers:
    - &web
      name: web
      image: web:1
      resources: {limits: {memory: 128Mi}}
- apiVersion: v1
  kind: Pod
  metadata: {name: two}
  spec:
    containers:
    - <<: *web
      image: web:2
"#
        .to_vec(),
    };
    let other = SourceFile {
        name: "b/other.yaml".into(),
        bytes: b"---\n# nothing but a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n".to_vec(),
    };
    let rev = load_sources(&[base, other], None);
    assert!(rev.errors.is_empty(), "{:?}", rev.errors);
    assert_eq!(rev.manifests.len(), 3);
    let Object::Pod(two) = &rev.manifests[1].object else {
        panic!("a pod")
    };
    assert_eq!(two.spec.containers[0].image.as_deref(), Some("web:2"));
    assert_eq!(two.spec.containers[0].name, "web");
    assert_eq!(
        rev.manifests[2].line, 4,
        "lines count in the file, across documents"
    );
}

#[test]
fn errors_name_file_kind_namespace_and_object() {
    let rev = load_sources(
        &[SourceFile {
            name: "apps/web.yaml".into(),
            bytes: b"apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports: [{port: 99999}]\n".to_vec(),
        }],
        None,
    );
    let line = rev.errors[0].to_string();
    assert_eq!(
        line,
        "apps/web.yaml:5:18: Service shop/web: spec.ports[0].port: Invalid value: 99999: must be between 1 and 65535, inclusive"
    );
}

#[test]
fn repo_config_is_strict() {
    let config = SourceFile {
        name: "keel.yaml".into(),
        bytes: b"allowEmpty: true\nprune: false\n".to_vec(),
    };
    let manifest = source("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
    let rev = load_sources(&[manifest], Some(&config));
    assert!(rev.config.allow_empty());
    assert_eq!(rev.errors.len(), 1);
    assert_eq!(
        (rev.errors[0].file.as_str(), rev.errors[0].line),
        ("keel.yaml", 2)
    );
    assert!(rev.errors[0].message.contains("unknown field \"prune\""));
}

#[test]
fn secret_values_never_appear_in_errors() {
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  a: sup3rs3cr3t!\n  b: [sup3rs3cr3t]\nstringData:\n  c: {x: sup3rs3cr3t}\n  d: 12345678901234567890123\n";
    let rev = load_sources(&[source(yaml)], None);
    assert_eq!(rev.errors.len(), 3, "{:?}", rev.errors);
    for e in &rev.errors {
        let text = format!("{e} {e:?}");
        assert!(
            !text.contains("sup3rs3cr3t") && !text.contains("1234567890"),
            "leak: {text}"
        );
    }
}

#[test]
fn defaults_follow_kubernetes_edge_cases() {
    let yaml = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: queue}
spec:
  parallelism: 3
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: w, image: "w:1"}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: rc}
spec:
  template:
    metadata: {labels: {app: rc}}
    spec:
      containers: [{name: w, image: "w:1"}]
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  ports:
  - {name: a, port: 80, targetPort: 0}
  - {name: b, port: 81, targetPort: ""}
"#;
    let rev = load_sources(&[source(yaml)], None);
    assert!(rev.errors.is_empty(), "{:?}", rev.errors);
    let Object::Job(job) = &rev.manifests[0].object else {
        panic!("job")
    };
    assert_eq!(
        (job.spec.completions, job.spec.parallelism),
        (None, Some(3)),
        "a work queue"
    );
    let Object::ReplicationController(rc) = &rev.manifests[1].object else {
        panic!("rc")
    };
    assert_eq!(
        rc.metadata.labels().get("app").map(String::as_str),
        Some("rc")
    );
    let Object::Service(svc) = &rev.manifests[2].object else {
        panic!("svc")
    };
    let ports = svc.spec.ports.as_ref().unwrap();
    assert_eq!(
        ports[0].target_port,
        Some(keel_schema::intorstr::IntOrString::Int(80))
    );
    assert_eq!(
        ports[1].target_port,
        Some(keel_schema::intorstr::IntOrString::Int(81))
    );
}

#[test]
fn debug_output_never_holds_secret_values() {
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2hunter2}\n";
    let file = source(yaml);
    let rev = load_sources(std::slice::from_ref(&file), None);
    let shown = format!("{file:?} {rev:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("aHVudGVy"),
        "{shown}"
    );
}

#[test]
fn same_declared_ignores_status_cluster_fields_and_named_markers_only() {
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {app: web}}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: \"web:1\"}]\n";
    let base = load_sources(&[source(yaml)], None).manifests[0]
        .object
        .clone();
    let mut live = base.clone();
    {
        let meta = live.meta_mut();
        meta.uid = Some("1234".into());
        meta.resource_version = Some("99".into());
        meta.generation = Some(4);
        meta.labels
            .get_or_insert_with(Default::default)
            .insert("keel.dev/managed-by".into(), "git".into());
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert("keel.dev/revision".into(), "abc".into());
    }
    if let Object::Deployment(d) = &mut live {
        d.status = Some(Default::default());
    }
    assert!(live.same_declared(&base, &["keel.dev/managed-by"], &["keel.dev/revision"]));
    assert!(
        !live.same_declared(&base, &[], &["keel.dev/revision"]),
        "an unignored label differs"
    );
    let mut changed = base.clone();
    if let Object::Deployment(d) = &mut changed {
        d.spec.replicas = Some(5);
    }
    assert!(!changed.same_declared(&base, &[], &[]));
    let mut relabelled = base.clone();
    relabelled
        .meta_mut()
        .labels
        .get_or_insert_with(Default::default)
        .insert("tier".into(), "front".into());
    assert!(!relabelled.same_declared(&base, &[], &[]));
}
