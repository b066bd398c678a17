//! The cache's pod indexes against a recount from scratch, over random sequences of pod
//! writes and deletes.

use proptest::prelude::*;
use serde_json::json;

use super::*;

const CONTROLLERS: [&str; 2] = ["rs-1", "rs-2"];
const NAMESPACES: [&str; 2] = ["a", "b"];

/// One write: pod `name` (of 4) in a namespace, with a label set, a controller or none,
/// and a state; or its delete.
#[derive(Debug, Clone)]
enum Op {
    Put {
        name: usize,
        namespace: usize,
        labels: usize,
        controller: Option<usize>,
        state: usize,
    },
    Delete {
        name: usize,
        namespace: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..4usize, 0..2usize, 0..3usize, prop::option::of(0..2usize), 0..5usize).prop_map(
            |(name, namespace, labels, controller, state)| Op::Put {
                name,
                namespace,
                labels,
                controller,
                state
            }
        ),
        1 => (0..4usize, 0..2usize).prop_map(|(name, namespace)| Op::Delete { name, namespace }),
    ]
}

fn pod(
    name: usize,
    namespace: usize,
    labels: usize,
    controller: Option<usize>,
    state: usize,
) -> Object {
    let labels = [
        json!({"app": "web"}),
        json!({"app": "web", "tier": "front"}),
        json!({"app": "api"}),
    ][labels]
        .clone();
    let refs = controller.map(|c| {
        json!([
            {"kind": "ReplicaSet", "name": "x", "uid": "other-owner"},
            {"kind": "ReplicaSet", "name": "rs", "uid": CONTROLLERS[c], "controller": true}
        ])
    });
    let (phase, ready_at, deleting) = [
        ("Pending", None, None),
        ("Running", Some("2026-01-01T00:00:01.5Z"), None),
        ("Running", Some("2026-01-01T00:00:09Z"), None),
        (
            "Running",
            Some("2026-01-01T00:00:09Z"),
            Some("2026-01-01T00:01:00Z"),
        ),
        ("Succeeded", None, None),
    ][state];
    let conditions =
        ready_at.map(|at| json!([{"type": "Ready", "status": "True", "lastTransitionTime": at}]));
    Object::from_json(json!({
        "kind": "Pod",
        "metadata": {"name": format!("p{name}"), "namespace": NAMESPACES[namespace], "labels": labels,
                     "ownerReferences": refs, "deletionTimestamp": deleting},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": phase, "conditions": conditions},
    }))
    .unwrap()
}

/// The indexes, recounted from the objects the cache holds.
fn assert_indexes_agree(cache: &Cache) {
    let all = cache.list(Kind::Pod, None);
    let pod = |s: &Arc<Stored>| match &s.object {
        Object::Pod(p) => p.clone(),
        _ => unreachable!(),
    };
    for namespace in NAMESPACES {
        for controller in CONTROLLERS {
            // An owner controls pods of its own namespace only: the same uid in the other
            // namespace (these pods name one) is not its.
            let controlled: Vec<Pod> = all
                .iter()
                .map(pod)
                .filter(|p| {
                    p.metadata.namespace() == namespace
                        && pods::controlled_by(&p.metadata, controller)
                })
                .collect();
            let orphans: Vec<ObjectKey> = all
                .iter()
                .filter(|s| {
                    s.object.namespace() == namespace
                        && pods::controller_of(s.object.meta()).is_none()
                })
                .map(|s| ObjectKey::of(&s.object))
                .collect();
            let seen = cache.controller_pods(controller, namespace);
            assert_eq!(
                seen.tally,
                PodTally::of(&controlled),
                "the tally of {controller} in {namespace}"
            );
            let seen_orphans: Vec<ObjectKey> = seen
                .orphans
                .iter()
                .map(|s| ObjectKey::of(&s.object))
                .collect();
            assert_eq!(seen_orphans, orphans, "the orphans of {namespace}");
            let mut either: Vec<ObjectKey> = all
                .iter()
                .filter(|s| {
                    s.object.namespace() == namespace
                        && (pods::controlled_by(s.object.meta(), controller)
                            || pods::controller_of(s.object.meta()).is_none())
                })
                .map(|s| ObjectKey::of(&s.object))
                .collect();
            either.sort();
            let listed: Vec<ObjectKey> = cache
                .controlled_or_orphan_pods(controller, namespace)
                .iter()
                .map(|s| ObjectKey::of(&s.object))
                .collect();
            assert_eq!(
                listed, either,
                "{controller}'s pods and {namespace}'s orphans"
            );
        }
    }
}

proptest! {
    #[test]
    fn pod_indexes_agree_with_the_pods_held(ops in prop::collection::vec(op(), 1..40)) {
        let cache = Cache::new();
        cache.load(Vec::new(), 1);
        for (version, op) in (2u64..).zip(ops) {
            match op {
                Op::Put { name, namespace, labels, controller, state } => {
                    let object = pod(name, namespace, labels, controller, state);
                    let exists = cache.get(&ObjectKey::of(&object)).is_some();
                    let event = if exists { WatchEventType::Modified } else { WatchEventType::Added };
                    cache.apply(event, Arc::new(Stored { object, resource_version: version }));
                }
                Op::Delete { name, namespace } => {
                    let object = pod(name, namespace, 0, None, 0);
                    cache.apply(WatchEventType::Deleted, Arc::new(Stored { object, resource_version: version }));
                }
            }
            assert_indexes_agree(&cache);
        }
        // A relist builds the same indexes from the same objects.
        let relisted = Cache::new();
        relisted.load(cache.all(), 100);
        for controller in CONTROLLERS {
            for namespace in NAMESPACES {
                prop_assert_eq!(
                    relisted.controller_pods(controller, namespace).tally,
                    cache.controller_pods(controller, namespace).tally
                );
            }
        }
    }
}
