//! Valid manifests of every kind load, with their defaults, across files.

use keel_schema::object::Object;
use keel_schema::{SourceFile, load_sources};

use super::source;

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
      serviceAccountName: web
      automountServiceAccountToken: false
      securityContext:
        runAsUser: 1000
        runAsGroup: 1000
        runAsNonRoot: true
        fsGroup: 1000
        fsGroupChangePolicy: OnRootMismatch
        supplementalGroups: [5000]
        sysctls: [{name: net.ipv4.tcp_syncookies, value: "1"}]
        seccompProfile: {type: RuntimeDefault}
      initContainers:
      - name: wait-for-db
        image: busybox:1.36
        command: ["sh", "-c", "until nc -z db 5432; do sleep 1; done"]
        resources: {requests: {cpu: 50m}}
      containers:
      - name: web
        image: keel-example/web:1
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          grpc: {port: 9555, service: shop.Web}
          periodSeconds: 5
        securityContext:
          runAsUser: 1001
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
          privileged: false
          readOnlyRootFilesystem: true
          seccompProfile: {type: RuntimeDefault}
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
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly-report, namespace: shop}
spec:
  schedule: "@daily"
  timeZone: Europe/Berlin
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 300
  jobTemplate:
    spec:
      backoffLimit: 2
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: report, image: "report:1"}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: uploads, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 5Gi}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  replicas: 3
  podManagementPolicy: Parallel
  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 1}}
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Retain}
  ordinals: {start: 1}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: "db:1"
        volumeMounts: [{name: data, mountPath: /var/lib/db}, {name: uploads, mountPath: /uploads}]
      volumes: [{name: uploads, persistentVolumeClaim: {claimName: uploads, readOnly: true}}]
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: disk, operator: In, values: [ssd]}, {key: cores, operator: Gt, values: ["4"]}]
          preferredDuringSchedulingIgnoredDuringExecution:
          - {weight: 10, preference: {matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [a]}]}}
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {labelSelector: {matchLabels: {app: db}}, topologyKey: kubernetes.io/hostname}
        podAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 50
            podAffinityTerm: {labelSelector: {matchExpressions: [{key: app, operator: In, values: [cache]}]}, namespaces: [shop], topologyKey: topology.kubernetes.io/zone}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, minDomains: 2, labelSelector: {matchLabels: {app: db}}, matchLabelKeys: [controller-revision-hash]}
  volumeClaimTemplates:
  - metadata: {name: data, labels: {tier: db}}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: local-path
      resources: {requests: {storage: 1Gi}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: web}}
    - namespaceSelector: {matchLabels: {team: shop}}
      podSelector: {matchLabels: {role: admin}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports: [{protocol: TCP, port: 5432}, {port: metrics}, {port: 30000, endPort: 32767}]
  egress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: db, namespace: shop}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: db}}
  unhealthyPodEvictionPolicy: AlwaysAllow
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 10
  behavior:
    scaleDown:
      policies: [{type: Pods, value: 1, periodSeconds: 60}]
---
apiVersion: v1
kind: Secret
metadata: {name: registry, namespace: shop}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}}}'
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
automountServiceAccountToken: false
imagePullSecrets: [{name: registry}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: config-reader, namespace: shop}
rules:
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [web-config]
  verbs: [get, watch, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: "system:aggregate-to-view:shop"
  labels: {rbac.example.com/aggregate-to-view: "true"}
rules:
- nonResourceURLs: ["/healthz", "/metrics"]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: web-reads-config, namespace: shop}
subjects:
- {kind: ServiceAccount, name: web}
- {kind: Group, name: "shop:devs", apiGroup: rbac.authorization.k8s.io}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: config-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "shop:metrics"}
subjects:
- {kind: ServiceAccount, name: web, namespace: shop}
- {kind: User, name: alice@example.com, apiGroup: rbac.authorization.k8s.io}
- {kind: Group, name: "system:authenticated"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:aggregate-to-view:shop"}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: certificates.certs.example.com}
spec:
  group: certs.example.com
  names:
    kind: Certificate
    listKind: CertificateList
    plural: certificates
    singular: certificate
    shortNames: [cert, certs]
    categories: [all]
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: false
    storage: false
    deprecated: true
    deprecationWarning: "certs.example.com/v1alpha1 is gone; use v1"
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        description: A TLS certificate, kept renewed.
        type: object
        required: [spec]
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            required: [secretName]
            properties:
              secretName: {type: string, minLength: 1, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'}
              dnsNames:
                type: array
                items: {type: string}
                x-kubernetes-list-type: set
              duration: {type: string, format: duration, default: 2160h}
              port: {x-kubernetes-int-or-string: true}
              usages:
                type: array
                items: {type: string, enum: [digital signature, key encipherment, server auth]}
              labels: {type: object, additionalProperties: {type: string}}
              keystores: {type: object, x-kubernetes-preserve-unknown-fields: true}
              privateKey:
                type: object
                nullable: true
                properties:
                  size: {type: integer, minimum: 1024, maximum: 8192}
                  algorithm: {type: string, enum: [RSA, ECDSA, Ed25519]}
                x-kubernetes-validations:
                - {rule: "self.algorithm != 'RSA' || self.size >= 2048", message: RSA keys are 2048 bits or more}
          status:
            type: object
            properties:
              conditions:
                type: array
                items:
                  type: object
                  required: [type, status]
                  properties:
                    type: {type: string}
                    status: {type: string, enum: ["True", "False", Unknown]}
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
---
apiVersion: certs.example.com/v1
kind: Certificate
metadata: {name: shop-tls, namespace: shop, labels: {app: web}}
spec:
  secretName: shop-tls
  dnsNames: [shop.example.com]
  port: https
  usages: [server auth]
  labels: {team: shop}
  keystores: {pkcs12: {create: true, passwordSecretRef: {name: p12}}}
  privateKey: {size: 4096, algorithm: RSA}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: shop}
spec:
  template: {spec: {containers: [{image: "hello:1"}]}}
  traffic:
status:
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: services.serving.knative.dev}
spec:
  group: serving.knative.dev
  names: {kind: Service, plural: services, singular: service, shortNames: [ksvc]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              template: {type: object, x-kubernetes-preserve-unknown-fields: true}
              traffic: {type: array, items: {type: object, properties: {percent: {type: integer}}}}
"#;

#[test]
fn valid_manifests_of_every_kind_load_with_defaults() {
    // The DNS port is published on the node, which the repository has to allow.
    let config = SourceFile {
        name: "keel.yaml".into(),
        bytes: b"podSecurity: {shop: [hostPort]}\n".to_vec(),
    };
    let rev = load_sources(&[source(VALID)], Some(&config));
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
            "Job",
            "CronJob",
            "PersistentVolumeClaim",
            "StatefulSet",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "Secret",
            "ServiceAccount",
            "Role",
            "ClusterRole",
            "RoleBinding",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Certificate",
            "Service"
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
    // An autoscaler gets Kubernetes' defaults: one replica at least, CPU at 80%, and
    // the rest of its rules filled in.
    let Object::HorizontalPodAutoscaler(hpa) = find("HorizontalPodAutoscaler", "web") else {
        unreachable!()
    };
    assert_eq!(hpa.spec.min_replicas, Some(1));
    let metrics = hpa.spec.metrics.unwrap_or_default();
    let cpu = metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        (cpu.name.as_str(), cpu.target.average_utilization),
        ("cpu", Some(80))
    );
    let behavior = hpa.spec.behavior.unwrap();
    let down = behavior.scale_down.unwrap();
    assert_eq!(down.stabilization_window_seconds, Some(300));
    assert_eq!(down.select_policy.as_deref(), Some("Max"));
    assert_eq!(down.policies.unwrap()[0].value, 1, "its own policy is kept");
    assert_eq!(behavior.scale_up.unwrap().policies.unwrap().len(), 2);
    // A Group subject without its API group gets RBAC's, as Kubernetes defaults it.
    let Object::ClusterRoleBinding(binding) = find("ClusterRoleBinding", "shop:metrics") else {
        unreachable!()
    };
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(
        subjects[2].api_group.as_deref(),
        Some("rbac.authorization.k8s.io")
    );
    // A definition's schema is read whole, Kubernetes' extensions and all.
    let Object::CustomResourceDefinition(crd) =
        find("CustomResourceDefinition", "certificates.certs.example.com")
    else {
        unreachable!()
    };
    let schema = crd.spec.versions[1]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .unwrap();
    let spec = &schema.properties.as_ref().unwrap()["spec"];
    let port = &spec.properties.as_ref().unwrap()["port"];
    assert_eq!(port.x_kubernetes_int_or_string, Some(true));
    assert_eq!(
        spec.required.as_deref(),
        Some(&["secretName".to_string()][..])
    );
    // An object of its kind is kept as written, its kind the definition's.
    let Object::Custom(certificate) = find("Certificate", "shop-tls") else {
        unreachable!()
    };
    let info = certificate.kind().info();
    assert_eq!(
        (info.api_version, info.plural, info.namespaced),
        ("certs.example.com/v1", "certificates", true)
    );
    assert_eq!(
        certificate.fields()["spec"]["keystores"]["pkcs12"]["create"],
        serde_json::json!(true)
    );
    assert_eq!(certificate.fields()["spec"]["privateKey"]["size"], 4096);
    // A built-in kind's name in another group is that group's kind; a null the schema does
    // not allow is dropped, as Kubernetes drops it.
    let Object::Custom(knative) = find("Service", "hello") else {
        unreachable!()
    };
    assert_eq!(knative.kind().info().plural, "services");
    assert_eq!(knative.kind().group(), "serving.knative.dev");
    assert!(knative.fields()["spec"].get("traffic").is_none());
    assert!(knative.status().is_none());
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

/// keel.yaml's `acceptUnknownKinds` stores the objects of the kinds it lists as written,
/// their metadata checked; any other unknown kind stays an error, and a malformed or
/// built-in entry is refused where it is written.
#[test]
fn unknown_kinds_keel_yaml_accepts_are_stored_opaque() {
    let manifests = source(
        "apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: web, labels: {team: shop}}
spec: {endpoints: [{port: metrics, interval: 30s}], anything: {goes: [1, 2.5, true]}}
---
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: db}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: Bad_Name}
",
    );
    let config = |text: &str| SourceFile {
        name: "keel.yaml".into(),
        bytes: text.as_bytes().to_vec(),
    };
    let rev = load_sources(
        std::slice::from_ref(&manifests),
        Some(&config(
            "acceptUnknownKinds: [monitoring.coreos.com/ServiceMonitor]\n",
        )),
    );
    let errors: Vec<(u32, Option<String>, bool)> = rev
        .errors
        .iter()
        .map(|e| {
            let unknown = e.message.contains("keel supports the kinds");
            (e.line, e.field.clone(), unknown)
        })
        .collect();
    assert_eq!(
        errors,
        [
            (7, Some("kind".into()), true),
            (12, Some("metadata.name".into()), false)
        ],
        "{:#?}",
        rev.errors
    );
    let Object::Custom(monitor) = &rev.manifests[0].object else {
        panic!("{:?}", rev.manifests[0].object)
    };
    assert_eq!(monitor.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(
        monitor.fields()["spec"]["anything"]["goes"],
        serde_json::json!([1, 2.5, true])
    );
    assert_eq!(
        monitor.kind().info().api_version,
        "monitoring.coreos.com/v1"
    );

    let refused = load_sources(
        &[],
        Some(&config(
            "acceptUnknownKinds:\n- ServiceMonitor\n- apps/Deployment\n- example.com/ok\n",
        )),
    );
    let fields: Vec<(u32, Option<String>)> = refused
        .errors
        .iter()
        .map(|e| (e.line, e.field.clone()))
        .collect();
    assert_eq!(
        fields,
        [
            (2, Some("acceptUnknownKinds[0]".into())),
            (3, Some("acceptUnknownKinds[1]".into())),
            (4, Some("acceptUnknownKinds[2]".into()))
        ],
        "{:#?}",
        refused.errors
    );
}
