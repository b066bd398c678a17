//! Invalid ServiceAccounts and RBAC objects: stored, not enforced, but checked as
//! Kubernetes checks them.

use super::Case;

pub(super) const CASES: &[Case] = &[
    Case {
        name: "rules without verbs, resources or groups, and URLs in a namespaced Role",
        yaml: r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules:
- apiGroups: [""]
  resources: [pods]
- verbs: [get]
  resources: [pods]
- verbs: [get]
  nonResourceURLs: [/metrics]
- verbs: [get]
"#,
        errors: &[
            (
                5,
                "rules[0].verbs",
                "Required value: a rule grants at least one verb",
            ),
            (
                7,
                "rules[1].apiGroups",
                "Required value: resource rules must name",
            ),
            (
                10,
                "rules[2].nonResourceURLs",
                "Forbidden: namespaced rules cannot",
            ),
            (
                11,
                "rules[3].resources",
                "Required value: a rule must apply to",
            ),
        ],
    },
    Case {
        name: "bindings to roles they cannot name, for subjects they cannot name",
        yaml: r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "ops/admins"}
subjects:
- {kind: ServiceAccount, name: deployer}
- {kind: User, name: bob, apiGroup: example.com}
- {kind: Robot, name: r2}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: admin}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs}
subjects:
- {kind: ServiceAccount, name: deployer, apiGroup: rbac.authorization.k8s.io}
roleRef: {kind: ClusterRole}
"#,
        errors: &[
            (3, "metadata.name", "may not contain '/'"),
            (
                5,
                "subjects[0].namespace",
                "Required value: a ClusterRoleBinding names",
            ),
            (
                6,
                "subjects[1].apiGroup",
                "Unsupported value: \"example.com\"",
            ),
            (7, "subjects[2].kind", "Unsupported value: \"Robot\""),
            (8, "roleRef.kind", "Unsupported value: \"Role\""),
            (
                14,
                "subjects[0].apiGroup",
                "Unsupported value: \"rbac.authorization.k8s.io\"",
            ),
            (15, "roleRef.apiGroup", "Unsupported value: \"\""),
            (15, "roleRef.name", "Required value"),
        ],
    },
    Case {
        name: "a ServiceAccount's secret references need names",
        yaml: r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: web}
imagePullSecrets: [{name: Registry_Creds}, {}]
"#,
        errors: &[
            (
                4,
                "imagePullSecrets[0].name",
                "Invalid value: \"Registry_Creds\"",
            ),
            (4, "imagePullSecrets[1].name", "Required value"),
        ],
    },
    Case {
        name: "a NetworkPolicy with empty peers, mixed ipBlocks, bad CIDRs and ports",
        yaml: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p}
spec:
  policyTypes: [Inbound]
  ingress:
  - from:
    - {}
    - {ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}
    - ipBlock: {cidr: 10.0.0.0/33}
    - ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}
    ports: [{port: 0}, {port: http, endPort: 90}, {protocol: ICMP, port: 80, endPort: 79}]
"#,
        errors: &[
            (4, "spec.podSelector", "Required value"),
            (5, "spec.policyTypes[0]", "Unsupported value: \"Inbound\""),
            (8, "spec.ingress[0].from[0]", "must specify a peer"),
            (
                9,
                "spec.ingress[0].from[1].ipBlock",
                "may not be specified with other peer fields",
            ),
            (
                10,
                "spec.ingress[0].from[2].ipBlock.cidr",
                "must be a valid CIDR",
            ),
            (
                11,
                "spec.ingress[0].from[3].ipBlock.except[0]",
                "must be a strict subset of `cidr`",
            ),
            (
                12,
                "spec.ingress[0].ports[0].port",
                "must be between 1 and 65535",
            ),
            (
                12,
                "spec.ingress[0].ports[1].endPort",
                "may only be set with a numeric `port`",
            ),
            (
                12,
                "spec.ingress[0].ports[2].protocol",
                "Unsupported value: \"ICMP\"",
            ),
            (
                12,
                "spec.ingress[0].ports[2].endPort",
                "must be greater than or equal to `port`",
            ),
        ],
    },
    Case {
        name: "a PodDisruptionBudget with both bounds and a bad percent",
        yaml: r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: b}
spec:
  minAvailable: 150%
  maxUnavailable: -1
  unhealthyPodEvictionPolicy: Never
"#,
        errors: &[
            (5, "spec.minAvailable", "must not be greater than 100%"),
            (
                6,
                "spec.maxUnavailable",
                "minAvailable and maxUnavailable cannot be both set",
            ),
            (
                6,
                "spec.maxUnavailable",
                "must be greater than or equal to 0",
            ),
            (
                7,
                "spec.unhealthyPodEvictionPolicy",
                "Unsupported value: \"Never\"",
            ),
        ],
    },
    Case {
        name: "a ResourceQuota the revision goes past",
        yaml: r#"
apiVersion: v1
kind: ResourceQuota
metadata: {name: team-a}
spec:
  hard: {pods: "4", requests.cpu: "1", services.nodeports: "0", count/deployments.apps: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1", resources: {requests: {cpu: 250m}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: "api:1", resources: {requests: {cpu: 100m}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  containers: [{name: sh, image: "busybox:1"}]
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: odd}
spec:
  hard: {gpus: "1", pods: "-1"}
  scopes: [BestEffort]
"#,
        errors: &[
            (
                22,
                "spec.replicas",
                "Forbidden: exceeded quota: team-a, requested: count/deployments.apps=1,pods=2, used: count/deployments.apps=1,pods=3, limited: count/deployments.apps=1,pods=4",
            ),
            (
                31,
                "metadata.name",
                "failed quota: team-a: must specify requests.cpu for every container",
            ),
            (39, "spec.hard[gpus]", "keel counts pods"),
            (39, "spec.hard[pods]", "must be greater than or equal to 0"),
            (40, "spec.scopes", "scopes are not supported"),
        ],
    },
    Case {
        name: "LimitRange items, and what goes past them",
        yaml: r#"
apiVersion: v1
kind: LimitRange
metadata: {name: bounds}
spec:
  limits:
  - {type: Container, max: {cpu: "1"}, default: {cpu: 500m}, defaultRequest: {cpu: 100m}}
  - {type: PersistentVolumeClaim, max: {storage: 1Gi}}
---
apiVersion: v1
kind: LimitRange
metadata: {name: odd, namespace: other}
spec:
  limits:
  - {type: Node}
  - {type: Pod, default: {cpu: "1"}}
  - {type: Container, min: {cpu: "2"}, max: {cpu: "1", gpu: "1"}}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: cpu}
spec:
  hard: {requests.cpu: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "web:1"}
      - {name: big, image: "big:1", resources: {limits: {cpu: "2"}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 5Gi}}
"#,
        errors: &[
            (14, "spec.limits[0].type", "Unsupported value: \"Node\""),
            (
                15,
                "spec.limits[1].default",
                "may not be specified when `type` is 'Pod'",
            ),
            (
                16,
                "spec.limits[2].max[cpu]",
                "min value 2 is greater than max value 1",
            ),
            (16, "spec.limits[2].max[gpu]", "Unsupported value: \"gpu\""),
            (
                28,
                "spec.replicas",
                "exceeded quota: cpu, requested: requests.cpu=4200m, used: requests.cpu=0, limited: requests.cpu=1",
            ),
            (
                35,
                "spec.template.spec.containers[1].resources",
                "maximum cpu usage per Container is 1, but limit is 2",
            ),
            (
                42,
                "spec.resources.requests.storage",
                "maximum storage usage per PersistentVolumeClaim is 1073741824, but request is 5368709120",
            ),
        ],
    },
];
