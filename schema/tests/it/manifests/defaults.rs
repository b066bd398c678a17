//! Defaults as Kubernetes fills them in.

use keel_schema::load_sources;
use keel_schema::object::Object;

use super::source;

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
