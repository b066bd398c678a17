//! Invalid PersistentVolumeClaims and claim volumes: what keel's one StorageClass
//! (`local-path`) cannot provide is refused where it is written.

use super::Case;

pub(super) const CASES: &[Case] = &[
    Case {
        name: "a claim without access modes or size",
        yaml: r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  resources: {requests: {cpu: 1}}
"#,
        errors: &[
            (
                4,
                "spec.accessModes",
                "Required value: at least 1 access mode is required",
            ),
            (5, "spec.resources.requests.storage", "Required value"),
        ],
    },
    Case {
        name: "a claim keel cannot provide",
        yaml: r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOncePod, ReadWriteOnce]
  resources: {requests: {storage: "0"}}
  storageClassName: ""
  volumeMode: Block
  volumeName: pv-1
  selector: {matchLabels: {disk: ssd}}
"#,
        errors: &[
            (
                5,
                "spec.accessModes",
                "may not use ReadWriteOncePod with other access modes",
            ),
            (
                6,
                "spec.resources.requests.storage",
                "must be greater than zero",
            ),
            (
                7,
                "spec.storageClassName",
                "keel provides StorageClass \"local-path\" only",
            ),
            (8, "spec.volumeMode", "Unsupported value: \"Block\""),
            (9, "spec.volumeName", "a volume cannot be named"),
            (10, "spec.selector", "volumes cannot be selected"),
        ],
    },
    Case {
        name: "a malformed size",
        yaml: r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 5 gigs}}
"#,
        errors: &[(6, "spec.resources.requests.storage", "5 gigs")],
    },
    Case {
        name: "a claim volume without a claim, and one nobody declares",
        yaml: r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: web, image: "web:1"}]
  volumes:
  - name: a
    persistentVolumeClaim: {claimName: ""}
  - name: b
    persistentVolumeClaim: {claimName: uploads}
"#,
        errors: &[
            (
                8,
                "spec.volumes[0].persistentVolumeClaim.claimName",
                "Required value",
            ),
            (
                10,
                "spec.volumes[1].persistentVolumeClaim.claimName",
                "Not found: PersistentVolumeClaim \"uploads\" is not declared in namespace \"default\"",
            ),
        ],
    },
    Case {
        name: "a status in a declared claim",
        yaml: r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
status: {phase: Bound}
"#,
        errors: &[(7, "status", "status is set by the cluster")],
    },
];
