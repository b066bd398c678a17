//! Invalid pod specs: containers, ports, resources, probes, env, volumes, tolerations.

use super::Case;

pub(super) const CASES: &[Case] = &[
    Case {
        name: "lifecycle hooks take one handler each, and init containers none",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  initContainers:
  - name: setup
    image: tool:1
    lifecycle:
      preStop: {sleep: {seconds: 1}}
  containers:
  - name: web
    image: web:1
    lifecycle:
      postStart:
        exec: {command: []}
      preStop:
        sleep: {seconds: -1}
        httpGet: {port: metrics}
"#,
        errors: &[
            (
                8,
                "spec.initContainers[0].lifecycle",
                "Forbidden: may not be set for init containers",
            ),
            (
                15,
                "spec.containers[0].lifecycle.postStart.exec.command",
                "Required value",
            ),
            (
                17,
                "spec.containers[0].lifecycle.preStop.sleep",
                "may not specify more than 1 handler type",
            ),
            (
                17,
                "spec.containers[0].lifecycle.preStop.sleep.seconds",
                "must be greater than or equal to 0",
            ),
            (
                18,
                "spec.containers[0].lifecycle.preStop.httpGet.port",
                "no container port has this name",
            ),
        ],
    },
    Case {
        name: "host aliases, process sharing and priority classes as Kubernetes checks them",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  hostPID: true
  shareProcessNamespace: true
  priorityClassName: High_Priority
  hostAliases:
  - ip: db.example
    hostnames: [db]
  - hostnames: [Cache]
  containers: [{name: web, image: "web:1"}]
"#,
        errors: &[
            (5, "spec.hostPID", "hostPID is not allowed"),
            (6, "spec.shareProcessNamespace", "cannot both be enabled"),
            (
                7,
                "spec.priorityClassName",
                "Invalid value: \"High_Priority\"",
            ),
            (9, "spec.hostAliases[0].ip", "must be a valid IP address"),
            (11, "spec.hostAliases[1].ip", "Required value"),
            (
                11,
                "spec.hostAliases[1].hostnames[0]",
                "Invalid value: \"Cache\"",
            ),
        ],
    },
    Case {
        name: "grpc probes take a port number, and one handler only",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: web:1
    readinessProbe:
      grpc: {service: shop.Checkout}
    livenessProbe:
      grpc: {port: 70000}
    startupProbe:
      tcpSocket: {port: 8080}
      grpc: {port: 8080}
"#,
        errors: &[
            (
                9,
                "spec.containers[0].readinessProbe.grpc.port",
                "Required value",
            ),
            (
                11,
                "spec.containers[0].livenessProbe.grpc.port",
                "must be between 1 and 65535",
            ),
            (
                14,
                "spec.containers[0].startupProbe.grpc",
                "Forbidden: may not specify more than 1 handler type",
            ),
        ],
    },
    Case {
        name: "a ServiceAccount nobody declares",
        yaml: r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: frontend
      serviceAccount: front
      containers: [{name: web, image: "web:1"}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: frontend, namespace: other}
"#,
        errors: &[
            (
                9,
                "spec.template.spec.serviceAccountName",
                "Not found: ServiceAccount \"frontend\" is not declared in namespace \"default\"",
            ),
            (
                10,
                "spec.template.spec.serviceAccount",
                "must match serviceAccountName",
            ),
        ],
    },
    Case {
        name: "a pod securityContext keel cannot apply, or that contradicts itself",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  securityContext:
    runAsUser: 0
    runAsNonRoot: true
    fsGroup: -1
    fsGroupChangePolicy: Sometimes
    sysctls:
    - {name: kernel.panic, value: "1"}
    - {name: net.ipv4.tcp_syncookies, value: "1"}
    - {name: net.ipv4.tcp_syncookies, value: "0"}
    seccompProfile: {type: Localhost, localhostProfile: my.json}
  containers:
  - name: web
    image: web:1
    securityContext:
      seccompProfile: {type: Strict}
"#,
        errors: &[
            (6, "spec.securityContext.runAsUser", "runAsNonRoot is true"),
            (8, "spec.securityContext.fsGroup", "Invalid value: -1"),
            (
                9,
                "spec.securityContext.fsGroupChangePolicy",
                "Unsupported value",
            ),
            (
                11,
                "spec.securityContext.sysctls[0].name",
                "is not namespaced",
            ),
            (
                13,
                "spec.securityContext.sysctls[2].name",
                "Duplicate value",
            ),
            (
                14,
                "spec.securityContext.seccompProfile.type",
                "do not load seccomp profiles",
            ),
            (
                19,
                "spec.containers[0].securityContext.seccompProfile.type",
                "Unsupported value",
            ),
        ],
    },
    Case {
        name: "unsafe sysctls and no seccomp filter need the repository's permission",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  securityContext:
    sysctls:
    - {name: net.core.somaxconn, value: "1024"}
  containers:
  - name: web
    image: web:1
    securityContext:
      seccompProfile: {type: Unconfined}
"#,
        errors: &[
            (
                7,
                "spec.securityContext.sysctls[0].name",
                "unsafeSysctls is not allowed",
            ),
            (
                12,
                "spec.containers[0].securityContext.seccompProfile.type",
                "seccompUnconfined is not allowed",
            ),
        ],
    },
    Case {
        name: "init containers run to completion, and share names with no app container",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  initContainers:
  - name: migrate
    image: tool:1
    readinessProbe:
      exec: {command: ["true"]}
  - name: web
  containers:
  - name: web
    image: web:1
"#,
        errors: &[
            (
                8,
                "spec.initContainers[0].readinessProbe",
                "Forbidden: may not be set for init containers",
            ),
            (10, "spec.initContainers[1].image", "Required value"),
            (12, "spec.containers[0].name", "Duplicate value: \"web\""),
        ],
    },
    Case {
        name: "a privileged init container needs the repository's permission",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  initContainers:
  - name: setup
    image: tool:1
    securityContext: {privileged: true}
  containers:
  - name: web
    image: web:1
"#,
        errors: &[(
            8,
            "spec.initContainers[0].securityContext.privileged",
            "privileged",
        )],
    },
    Case {
        name: "DNS settings a resolver could not use",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  hostname: Web_1
  dnsPolicy: None
  dnsConfig:
    nameservers: [dns.example]
    searches: [corp.example]
  containers:
  - name: web
    image: web:1
"#,
        errors: &[
            (5, "spec.hostname", "Invalid value: \"Web_1\""),
            (8, "spec.dnsConfig.nameservers[0]", "must be an IP address"),
        ],
    },
    Case {
        name: "dnsPolicy None without a nameserver",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  dnsPolicy: None
  containers:
  - name: web
    image: web:1
"#,
        errors: &[(
            4,
            "spec.dnsConfig.nameservers",
            "Required value: with dnsPolicy \"None\"",
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
        name: "termination message path and policy",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: a
    image: "web:1"
    terminationMessagePath: dev/termination-log
    terminationMessagePolicy: FallbackToLogs
  - name: b
    image: "web:1"
    terminationMessagePath: /tmp/../etc/passwd
"#,
        errors: &[
            (
                8,
                "spec.containers[0].terminationMessagePath",
                "must be an absolute path to a file",
            ),
            (
                9,
                "spec.containers[0].terminationMessagePolicy",
                "Unsupported value: \"FallbackToLogs\"",
            ),
            (
                12,
                "spec.containers[1].terminationMessagePath",
                "must not contain '..'",
            ),
        ],
    },
    Case {
        name: "image pull secrets: unnamed, undeclared, and not a registry login",
        yaml: r#"
apiVersion: v1
kind: Secret
metadata: {name: plain}
stringData: {token: x}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  imagePullSecrets: [{name: ""}, {name: regcred}, {name: plain}]
  containers: [{name: web, image: "registry.example.com/web:1"}]
"#,
        errors: &[
            (10, "spec.imagePullSecrets[0].name", "Required value"),
            (
                10,
                "spec.imagePullSecrets[1].name",
                "Not found: Secret \"regcred\" is not declared",
            ),
            (10, "spec.imagePullSecrets[2].name", "is of type \"Opaque\""),
        ],
    },
    Case {
        name: "registry login secrets without their config",
        yaml: r#"
apiVersion: v1
kind: Secret
metadata: {name: a}
type: kubernetes.io/dockerconfigjson
stringData: {config.json: "{}"}
---
apiVersion: v1
kind: Secret
metadata: {name: b}
type: kubernetes.io/dockerconfigjson
stringData: {.dockerconfigjson: '{"registry.example.com": {}}'}
---
apiVersion: v1
kind: Secret
metadata: {name: c}
type: kubernetes.io/dockercfg
data: {.dockercfg: bm90IGpzb24=}
"#,
        errors: &[
            (1, "data[.dockerconfigjson]", "Required value"),
            (
                11,
                "stringData[.dockerconfigjson]",
                "with an \"auths\" object",
            ),
            (17, "data[.dockercfg]", "is not valid JSON"),
        ],
    },
    Case {
        name: "affinity and spreading written wrong",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: web, image: "web:1"}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: disk, operator: In}, {key: cores, operator: Gt, values: [many]}, {key: gpu, operator: Maybe}]
          matchFields: [{key: metadata.labels, operator: In, values: [x]}]
      preferredDuringSchedulingIgnoredDuringExecution:
      - {weight: 0, preference: {matchExpressions: [{key: disk, operator: Exists}]}}
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - {labelSelector: {matchLabels: {app: web}}, namespaceSelector: {matchLabels: {team: a}}}
  topologySpreadConstraints:
  - {maxSkew: 0, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway, minDomains: 2}
  - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: Sometimes}
"#,
        errors: &[
            (
                10,
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values",
                "must be specified when `operator` is 'In' or 'NotIn'",
            ),
            (
                10,
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[1].values",
                "single value when `operator` is 'Lt' or 'Gt'",
            ),
            (
                10,
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[2].operator",
                "Unsupported value: \"Maybe\"",
            ),
            (
                11,
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key",
                "Unsupported value: \"metadata.labels\"",
            ),
            (
                13,
                "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
                "must be in the range 1-100",
            ),
            (
                16,
                "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
                "can not be empty",
            ),
            (
                16,
                "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaceSelector",
                "keel reads no namespace labels",
            ),
            (
                18,
                "spec.topologySpreadConstraints[0].maxSkew",
                "must be greater than zero",
            ),
            (
                18,
                "spec.topologySpreadConstraints[0].minDomains",
                "can only use minDomains if whenUnsatisfiable=DoNotSchedule",
            ),
            (
                19,
                "spec.topologySpreadConstraints[1].whenUnsatisfiable",
                "Unsupported value: \"Sometimes\"",
            ),
        ],
    },
];
