//! Property tests over what the agent decodes from the wire: a desired set, however broken,
//! is read or refused with its problems named, never a panic. `KEEL_FUZZ_CASES` sets how
//! many cases run (CI keeps it small; run it long by hand).

use keel_agent_protocol::{NetworkPeer, NodeDesired, ServiceEntry};
use proptest::prelude::*;
use prost::Message;

fn cases() -> u32 {
    std::env::var("KEEL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// JSON that looks like keel's objects, with keys and values that reach the checks.
fn object_json() -> impl Strategy<Value = Vec<u8>> {
    let kinds = prop::sample::select(vec![
        "Pod",
        "ConfigMap",
        "Secret",
        "Service",
        "Endpoints",
        "Ingress",
        "Nope",
    ]);
    let names = prop::sample::select(vec!["p", "", "a/b", "..", "x".repeat(300).leak() as &str]);
    let text = prop::sample::select(vec!["n1", "", "default", "\u{0}", "10.0.0.1", "-1", "é"]);
    (
        kinds,
        names,
        text.clone(),
        text,
        any::<i64>(),
        any::<bool>(),
    )
        .prop_map(|(kind, name, ns, value, number, flag)| {
            serde_json::json!({
                "apiVersion": "v1", "kind": kind,
                "metadata": {"name": name, "namespace": ns, "uid": value, "labels": {value: ns}},
                "spec": {"nodeName": value, "containers": [{"name": name, "image": value,
                          "ports": [{"containerPort": number, "hostPort": number}],
                          "volumeMounts": [{"name": name, "mountPath": value, "subPath": ns}]}],
                         "volumes": [{"name": name, "hostPath": {"path": value}}],
                         "hostNetwork": flag, "ports": [{"port": number}],
                         "clusterIP": value, "selector": {name: value}},
                "data": {name: value},
                "subsets": [{"addresses": [{"ip": value}], "ports": [{"port": number}]}]
            })
            .to_string()
            .into_bytes()
        })
}

fn bytes_or_object() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..200), object_json()]
}

fn desired() -> impl Strategy<Value = NodeDesired> {
    let list = || prop::collection::vec(bytes_or_object(), 0..4);
    (
        prop::sample::select(vec!["n1", "", "other"]),
        any::<u64>(),
        list(),
        list(),
        list(),
        prop::collection::vec((bytes_or_object(), bytes_or_object()), 0..3),
        prop::collection::vec(
            (".{0,20}", ".{0,20}", ".{0,20}").prop_map(|(name, node_ip, pod_cidr)| NetworkPeer {
                name,
                node_ip,
                pod_cidr,
            }),
            0..3,
        ),
        prop::collection::vec(".{0,20}", 0..3),
        list(),
    )
        .prop_map(
            |(
                node,
                generation,
                pods,
                config_maps,
                secrets,
                services,
                nodes,
                announce,
                ingresses,
            )| {
                NodeDesired {
                    node_name: node.to_string(),
                    generation,
                    pods,
                    config_maps,
                    secrets,
                    services: services
                        .into_iter()
                        .map(|(service, endpoints)| ServiceEntry { service, endpoints })
                        .collect(),
                    nodes,
                    // Arbitrary text as volume names too: they become paths on the node.
                    volumes: announce
                        .iter()
                        .map(|handle| keel_agent_protocol::LocalVolume {
                            namespace: "default".into(),
                            claim: "data".into(),
                            handle: handle.clone(),
                        })
                        .collect(),
                    released_volumes: announce.clone(),
                    announce,
                    ingresses,
                    ingress_secrets: Vec::new(),
                    ..Default::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_desired_set_is_read_or_refused_with_its_problems(msg in desired()) {
        if let Err(e) = keel_nodeagent::desired::read(&msg, "n1", Vec::new()) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn any_bytes_on_the_wire_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(msg) = NodeDesired::decode(bytes.as_slice()) {
            let _ = keel_nodeagent::desired::read(&msg, "n1", Vec::new());
        }
    }
}
