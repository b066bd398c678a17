use super::*;
use keel_schema::{Kind, SourceFile, load_sources};

fn revision(yaml: &str) -> Revision {
    let r = load_sources(
        &[SourceFile {
            name: "services.yaml".into(),
            bytes: yaml.as_bytes().to_vec(),
        }],
        None,
    );
    assert!(r.is_valid(), "{:?}", r.errors);
    r
}

fn service(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80}}]\n{extra}---\n"
    )
}

/// The revision's Services as the store would hold them after applying `assigned`.
fn stored(r: &Revision, assigned: &HashMap<ObjectKey, Assigned>) -> BTreeMap<ObjectKey, Stored> {
    r.manifests
        .iter()
        .map(|m| {
            let key = ObjectKey::of(&m.object);
            let mut object = m.object.clone();
            if let (Object::Service(s), Some(a)) = (&mut object, assigned.get(&key)) {
                a.fill(s);
            }
            (
                key,
                Stored {
                    object,
                    resource_version: 1,
                },
            )
        })
        .collect()
}

fn ip_of(a: &HashMap<ObjectKey, Assigned>, name: &str) -> Option<String> {
    a.get(&ObjectKey::new(Kind::Service, "default", name))
        .and_then(|a| a.cluster_ip.clone())
}

#[test]
fn assigns_distinct_addresses_in_range_and_keeps_them() {
    let net = ServiceNetwork::new("10.99.0.0/29", "30100-30102").expect("valid");
    let names = ["a", "b", "c", "d", "e"];
    let yaml: String = names.iter().map(|n| service(n, "")).collect::<String>()
        + &service("db", "  clusterIP: None\n")
        + &service("np", "  type: NodePort\n");
    let r = revision(&yaml);
    let first = allocate(&r, &BTreeMap::new(), &net).expect("room for all");
    let ips: BTreeSet<String> = names
        .iter()
        .chain(&["np"])
        .map(|n| ip_of(&first, n).expect("an address"))
        .collect();
    assert_eq!(
        ips.len(),
        6,
        "a /29 has 6 usable addresses, all distinct: {ips:?}"
    );
    assert!(!ips.contains("10.99.0.0") && !ips.contains("10.99.0.7"));
    assert_eq!(ip_of(&first, "db"), None, "headless");
    let np = first[&ObjectKey::new(Kind::Service, "default", "np")].node_ports[0];
    assert!(np.is_some_and(|p| (30100..=30102).contains(&p)), "{np:?}");

    // The next revision, with the store holding the assignments, keeps every one.
    let again = allocate(&r, &stored(&r, &first), &net).expect("same room");
    assert_eq!(again, first);

    // One more Service than the range holds: a located error, nothing assigned.
    let full = revision(&(yaml.clone() + &service("extra", "")));
    let errors = allocate(&full, &stored(&r, &first), &net).expect_err("no room");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("no free ClusterIP left in 10.99.0.0/29"),
        "{}",
        errors[0]
    );
    assert_eq!(errors[0].name.as_deref(), Some("extra"));
}

#[test]
fn stated_addresses_are_honoured_only_when_free() {
    let net = ServiceNetwork::default();
    let r = revision(&(service("a", "  clusterIP: 10.96.5.5\n") + &service("b", "")));
    let first = allocate(&r, &BTreeMap::new(), &net).expect("valid");
    assert_eq!(ip_of(&first, "a").as_deref(), Some("10.96.5.5"));

    // git gives b's address to a new Service c: refused, b's clients keep their address.
    let b_ip = ip_of(&first, "b").expect("b has one");
    let r2 = revision(
        &(service("a", "  clusterIP: 10.96.5.5\n")
            + &service("b", "")
            + &service("c", &format!("  clusterIP: {b_ip}\n"))),
    );
    let errors = allocate(&r2, &stored(&r, &first), &net).expect_err("taken");
    let text = errors[0].to_string();
    assert!(
        text.contains(&format!(
            "\"{b_ip}\": provided IP is already allocated (to Service default/b)"
        )),
        "{text}"
    );
    assert_eq!(errors[0].name.as_deref(), Some("c"));

    // Once b is gone in the same revision, c may have its address.
    let r3 = revision(
        &(service("a", "  clusterIP: 10.96.5.5\n")
            + &service("c", &format!("  clusterIP: {b_ip}\n"))),
    );
    let third = allocate(&r3, &stored(&r, &first), &net).expect("b released it");
    assert_eq!(ip_of(&third, "c"), Some(b_ip));

    for (extra, expect) in [
        (
            "  clusterIP: 10.1.2.3\n",
            "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16",
        ),
        (
            "  clusterIP: 10.96.5.5\n",
            "provided IP is already allocated (to Service default/a)",
        ),
    ] {
        let r = revision(&(service("a", "  clusterIP: 10.96.5.5\n") + &service("z", extra)));
        let errors = allocate(&r, &BTreeMap::new(), &net).expect_err(extra);
        let text = errors[0].to_string();
        assert!(text.contains(expect), "{text}");
        assert!(text.starts_with("services.yaml:"), "located: {text}");
        assert_eq!(errors[0].name.as_deref(), Some("z"));
    }
}

#[test]
fn node_ports_outside_the_servers_range_are_located_errors() {
    let net = ServiceNetwork::new("10.96.0.0/16", "31000-31999").expect("valid");
    let r = revision(
        "apiVersion: v1\nkind: Service\nmetadata: {name: z}\nspec:\n  type: NodePort\n  ports:\n  - {port: 80, nodePort: 30500}\n",
    );
    let errors = allocate(&r, &BTreeMap::new(), &net).expect_err("outside");
    let text = errors[0].to_string();
    assert!(
        text.contains("The range of valid ports is 31000-31999"),
        "{text}"
    );
    assert!(
        text.starts_with("services.yaml:7:"),
        "located at the port: {text}"
    );
    assert_eq!(errors[0].field.as_deref(), Some("spec.ports[0].nodePort"));
}

#[test]
fn network_flags_are_checked() {
    for (cidr, ports, expect) in [
        ("10.96.0.0", "30000-32767", "expected ADDRESS/PREFIX"),
        ("10.96.0.1/16", "30000-32767", "did you mean 10.96.0.0/16"),
        ("10.96.0.0/31", "30000-32767", "prefix must be 8 to 30"),
        ("10.96.0.0/16", "32767-30000", "expected LOW-HIGH"),
        ("10.96.0.0/16", "20000-20999", "must lie within 30000-32767"),
    ] {
        let err = ServiceNetwork::new(cidr, ports).expect_err(cidr);
        assert!(err.contains(expect), "{err}");
    }
}

/// `name`'s Service as the store holds it: stated `cluster_ip` and NodePort `node_port`.
fn held(
    name: &str,
    cluster_ip: &str,
    node_port: Option<i64>,
    prune_disabled: bool,
) -> (ObjectKey, Stored) {
    let mut svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": cluster_ip, "type": if node_port.is_some() {"NodePort"} else {"ClusterIP"},
                 "ports": [{"port": 80, "nodePort": node_port}]}
    }))
    .unwrap();
    if prune_disabled {
        svc.metadata.annotations = Some([(PRUNE.to_string(), "disabled".to_string())].into());
    }
    let object = Object::Service(svc);
    (
        ObjectKey::of(&object),
        Stored {
            object,
            resource_version: 1,
        },
    )
}

#[test]
fn each_phase_claims_in_its_turn() {
    let net = ServiceNetwork::new("10.99.0.0/29", "30100-30102").expect("valid");
    // In the store: `kept` (not in git, prune disabled) holds .1 and 30100; `web` held .2
    // and 30101 before; `gone` (prunable, not in git) held .3.
    let applied: BTreeMap<ObjectKey, Stored> = [
        held("kept", "10.99.0.1", Some(30100), true),
        held("web", "10.99.0.2", Some(30101), false),
        held("gone", "10.99.0.3", None, false),
    ]
    .into_iter()
    .collect();
    let r = revision(
        &(service("web", "  type: NodePort\n")
            + &service("new", "  clusterIP: 10.99.0.3\n")
            + &service("api", "")),
    );
    let a = allocate(&r, &applied, &net).expect("room for all");
    let get = |name: &str| &a[&ObjectKey::new(Kind::Service, "default", name)];
    // Phase 1: what web held, since git leaves it empty.
    assert_eq!(get("web").cluster_ip.as_deref(), Some("10.99.0.2"));
    assert_eq!(get("web").node_ports, [Some(30101)]);
    // Phase 2: what git states, free once `gone` is pruned.
    assert_eq!(get("new").cluster_ip.as_deref(), Some("10.99.0.3"));
    // Phase 3: a new address, never what `kept` holds.
    let api = get("api").cluster_ip.clone().expect("an address");
    assert!(
        !["10.99.0.1", "10.99.0.2", "10.99.0.3"].contains(&api.as_str()),
        "{api}"
    );

    // Phase 0: git may not state what a kept Service holds.
    let r = revision(&service("thief", "  clusterIP: 10.99.0.1\n"));
    let errors = allocate(&r, &applied, &net).expect_err("held by kept");
    assert!(
        errors[0]
            .to_string()
            .contains("already allocated (to Service default/kept)"),
        "{}",
        errors[0]
    );
}

#[test]
fn new_assignments_start_at_a_point_hashed_from_the_name() {
    let net = ServiceNetwork::default();
    let r = revision(&(service("a", "") + &service("b", "")));
    let first = allocate(&r, &BTreeMap::new(), &net).expect("room");
    // The same names get the same addresses from an empty cluster, in any order.
    let r2 = revision(&(service("b", "") + &service("a", "")));
    let second = allocate(&r2, &BTreeMap::new(), &net).expect("room");
    assert_eq!(first, second);
}
