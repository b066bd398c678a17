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
];
