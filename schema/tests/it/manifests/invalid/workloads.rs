//! Invalid workloads: selectors, replicas, restart policies and rollout strategies.

use super::Case;

pub(super) const CASES: &[Case] = &[
    Case {
        name: "a CronJob whose schedule, zone and policies keel cannot follow",
        yaml: r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly-report-for-the-finance-team-of-the-whole-company}
spec:
  schedule: "0 25 * * *"
  timeZone: Moon/Base
  concurrencyPolicy: Sometimes
  successfulJobsHistoryLimit: -1
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: report, image: "report:1"}]
"#,
        errors: &[
            (3, "metadata.name", "must be no more than 52 characters"),
            (5, "spec.schedule", "Invalid value: \"0 25 * * *\""),
            (6, "spec.timeZone", "unknown time zone \"Moon/Base\""),
            (
                7,
                "spec.concurrencyPolicy",
                "Unsupported value: \"Sometimes\"",
            ),
            (
                8,
                "spec.successfulJobsHistoryLimit",
                "must be greater than or equal to 0",
            ),
            (
                12,
                "spec.jobTemplate.spec.template.spec.restartPolicy",
                "Required value",
            ),
        ],
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
        name: "StatefulSet podManagementPolicy unknown",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  podManagementPolicy: Serial
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
"#,
        errors: &[(
            5,
            "spec.podManagementPolicy",
            "Unsupported value: \"Serial\"",
        )],
    },
    Case {
        name: "StatefulSet negative partition",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  updateStrategy: {rollingUpdate: {partition: -1}}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
"#,
        errors: &[(
            5,
            "spec.updateStrategy.rollingUpdate.partition",
            "must be greater than or equal to 0",
        )],
    },
    Case {
        name: "StatefulSet maxUnavailable",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  updateStrategy: {rollingUpdate: {maxUnavailable: 2}}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
"#,
        errors: &[(
            5,
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
            "one pod at a time",
        )],
    },
    Case {
        name: "StatefulSet OnDelete with rollingUpdate",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  updateStrategy: {type: OnDelete, rollingUpdate: {partition: 1}}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
"#,
        errors: &[(
            5,
            "spec.updateStrategy.rollingUpdate",
            "may not be specified when updateStrategy `type` is 'OnDelete'",
        )],
    },
    Case {
        name: "StatefulSet unknown update type",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  updateStrategy: {type: Recreate}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
"#,
        errors: &[(
            5,
            "spec.updateStrategy.type",
            "Unsupported value: \"Recreate\"",
        )],
    },
    Case {
        name: "StatefulSet serviceName not a Service name",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: 1db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
"#,
        errors: &[(5, "spec.serviceName", "a DNS-1035 label")],
    },
    Case {
        name: "StatefulSet name not a DNS label",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db.primary}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
"#,
        errors: &[(3, "metadata.name", "a lowercase RFC 1123 label")],
    },
    Case {
        name: "StatefulSet name too long",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ddddddddddddddddddddddddddddddddddddddddddddddddddddd}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
"#,
        errors: &[(3, "metadata.name", "must be no more than 52 characters")],
    },
    Case {
        name: "StatefulSet retention policy",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Keep}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
"#,
        errors: &[(
            5,
            "spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
            "Unsupported value: \"Keep\"",
        )],
    },
    Case {
        name: "StatefulSet negative ordinals start",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  ordinals: {start: -2}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
"#,
        errors: &[(
            5,
            "spec.ordinals.start",
            "must be greater than or equal to 0",
        )],
    },
    Case {
        name: "StatefulSet volumeClaimTemplates",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  volumeClaimTemplates:
  - metadata: {name: cache}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteMostly], storageClassName: gp2}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      volumes: [{name: cache, emptyDir: {}}]
      containers:
      - name: db
        image: "db:1"
        volumeMounts: [{name: data, mountPath: /data}, {name: logs, mountPath: /logs}]
"#,
        errors: &[
            (
                6,
                "spec.volumeClaimTemplates[0].metadata.name",
                "Duplicate value: \"cache\"",
            ),
            (
                9,
                "spec.volumeClaimTemplates[1].spec.resources.requests.storage",
                "Required value",
            ),
            (
                9,
                "spec.volumeClaimTemplates[1].spec.accessModes[0]",
                "Unsupported value: \"ReadWriteMostly\"",
            ),
            (
                9,
                "spec.volumeClaimTemplates[1].spec.storageClassName",
                "keel provides StorageClass \"local-path\" only",
            ),
            (
                18,
                "spec.template.spec.containers[0].volumeMounts[1].name",
                "Not found: \"logs\"",
            ),
        ],
    },
    Case {
        name: "StatefulSet restartPolicy Never",
        yaml: r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      restartPolicy: Never
      containers: [{name: db, image: "db:1"}]
"#,
        errors: &[(
            9,
            "spec.template.spec.restartPolicy",
            "Unsupported value: \"Never\"",
        )],
    },
];
