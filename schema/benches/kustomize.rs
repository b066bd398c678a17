//! Rendering a repository of kustomizations: 1,000 apps, each a base (a Deployment and a
//! Service) and an overlay with a strategic merge patch, a JSON patch, a generator, a
//! namespace, a prefix and an image (target: all 1,000 rendered in under 2 s), and the
//! whole revision loaded (rendered, decoded, validated). Sizes: `KEEL_BENCH_APPS`.
//!
//! `cargo bench -p keel-schema --bench kustomize`

use std::time::Instant;

use keel_schema::SourceFile;
use keel_schema::kustomize::render_revision;
use keel_schema::load::InMemory;

fn app(i: usize) -> Vec<SourceFile> {
    let file = |name: String, text: String| SourceFile {
        name,
        bytes: text.into_bytes(),
    };
    let base = format!("apps/app{i}/base");
    let overlay = format!("apps/app{i}/overlays/prod");
    vec![
        file(
            format!("{base}/kustomization.yaml"),
            "resources: [deployment.yaml, service.yaml]\ncommonLabels: {team: payments}\n".into(),
        ),
        file(
            format!("{base}/deployment.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app{i}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: app{i}}}}}\n  template:\n    metadata: {{labels: {{app: app{i}}}}}\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/app{i}:1.0\n        ports: [{{containerPort: 8080, name: http}}]\n        envFrom: [{{configMapRef: {{name: settings}}}}]\n        resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}\n"
            ),
        ),
        file(
            format!("{base}/service.yaml"),
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: app{i}}}\nspec:\n  selector: {{app: app{i}}}\n  ports: [{{port: 80, targetPort: http}}]\n"
            ),
        ),
        file(
            format!("{overlay}/kustomization.yaml"),
            format!(
                "namespace: prod\nnamePrefix: prod-\nresources: [../../base]\nimages:\n- name: registry.example.com/app{i}\n  newTag: '2.0'\nconfigMapGenerator:\n- name: settings\n  literals: [MODE=prod, INDEX={i}]\npatches:\n- patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata: {{name: app{i}}}\n    spec:\n      replicas: 3\n      template:\n        spec:\n          containers:\n          - name: app\n            env: [{{name: REGION, value: eu}}]\n- target: {{kind: Service}}\n  patch: |-\n    - op: add\n      path: /metadata/annotations\n      value: {{owner: payments}}\n"
            ),
        ),
    ]
}

fn main() {
    let apps: usize = std::env::var("KEEL_BENCH_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let files: Vec<SourceFile> = (0..apps).flat_map(app).collect();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let reader = InMemory::new(&files);

    let start = Instant::now();
    let out = render_revision(&reader, &names, None);
    let render = start.elapsed();
    assert!(out.problems.is_empty(), "{:?}", out.problems.first());
    assert_eq!(
        out.objects.len(),
        apps * 3,
        "a Deployment, a Service and a ConfigMap each"
    );
    assert_eq!(out.roots.len(), apps);
    println!(
        "kustomize: {apps} overlays over {apps} bases rendered to {} objects in {:.0} ms ({:.0} µs per app)",
        out.objects.len(),
        render.as_secs_f64() * 1e3,
        render.as_secs_f64() * 1e6 / apps as f64
    );

    let start = Instant::now();
    let revision = keel_schema::load_sources(&files, None);
    let load = start.elapsed();
    assert!(revision.is_valid(), "{:?}", revision.errors.first());
    println!(
        "kustomize: the whole revision (render, decode, validate, default) of {} objects in {:.0} ms",
        revision.manifests.len(),
        load.as_secs_f64() * 1e3
    );
}
