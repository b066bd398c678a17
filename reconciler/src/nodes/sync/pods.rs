//! A node's pods as changes: which version of each pod its agent sees, so that a set
//! carries only the pods that changed since the set its agent acknowledged, and names
//! those that went. During a rollout of 20 pods a node, each node's set changes about 20
//! times; sent whole, each pod would be encoded, sent and decoded about 10 times over.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use keel_schema::Object;
use keel_schema::types::pod::Pod;
use keel_store::Stored;

/// A pod as its agent gets it: without its resource version, and of its status only a
/// finished phase (Succeeded or Failed: a finished pod whose containers are gone is never
/// run again, after an agent restart too). The agent makes the rest of the status and never
/// reads it back, so the writes its own reports cause do not change the set and do not
/// send it again.
pub fn pod_json(object: &Object) -> Vec<u8> {
    let Object::Pod(pod) = object else {
        return json(object);
    };
    let mut pod = pod.clone();
    let finished = pod.phase().filter(|p| p.is_finished());
    pod.status = finished.map(|phase| keel_schema::types::pod::PodStatus {
        phase: Some(phase),
        ..Default::default()
    });
    pod.metadata.resource_version = None;
    json(&Object::Pod(pod))
}

/// Whether a pod's agent gets the same pod from both versions (see [`pod_json`]).
pub fn same_for_agent(old: &Pod, new: &Pod) -> bool {
    old.same_but_status(new) && old.is_finished() == new.is_finished()
}

/// An object of a set as JSON.
pub fn json(object: &Object) -> Vec<u8> {
    // Objects from the store always serialise; an empty message would be refused whole by
    // the agent, never half-applied.
    serde_json::to_vec(object).unwrap_or_default()
}

/// A node's pods as node sync compares them with what its agent acknowledged.
pub struct NodePod {
    /// "namespace/name", as agents name the pods of a change.
    pub key: String,
    /// The version its agent sees ([`AgentVersions`]).
    pub version: u64,
    pub stored: Arc<Stored>,
}

/// The pods of a set sent to an agent: "namespace/name" → version.
pub type SentPods = HashMap<String, u64>;

/// For each pod, the resource version at which it last changed as its agent sees it: most
/// pod writes are the agents' own status reports, which change nothing an agent is sent, so
/// a pod's resource version alone would call it changed after each of them.
#[derive(Default)]
pub struct AgentVersions {
    /// "namespace/name" → (the resource version this entry was made for, the agent's).
    by_key: HashMap<String, (u64, u64)>,
}

impl AgentVersions {
    /// Follows one change of a pod.
    pub fn changed(&mut self, old: Option<&Stored>, new: Option<&Stored>) {
        let Some(new) = new else {
            if let Some(old) = old {
                self.by_key.remove(&key_of(old));
            }
            return;
        };
        let key = key_of(new);
        let unchanged_for_agent = |old: &Stored| match (&old.object, &new.object) {
            (Object::Pod(a), Object::Pod(b)) => same_for_agent(a, b),
            _ => false,
        };
        let version = match old {
            Some(old) if unchanged_for_agent(old) => self.of(&key, old),
            _ => new.resource_version,
        };
        self.by_key.insert(key, (new.resource_version, version));
    }

    /// The version of `stored` (whose key is `key`) as its agent sees it. A pod this has no
    /// entry for, or an entry made for another resource version of (a change it did not
    /// follow), is taken as changed when last written: at worst sent again unchanged.
    pub fn of(&self, key: &str, stored: &Stored) -> u64 {
        match self.by_key.get(key) {
            Some(&(seen, version)) if seen == stored.resource_version => version,
            _ => stored.resource_version,
        }
    }

    /// Forgets every pod (changes were missed): each counts as changed when last written.
    pub fn clear(&mut self) {
        self.by_key = HashMap::new();
    }
}

/// "namespace/name" of a stored object.
pub fn key_of(stored: &Stored) -> String {
    format!("{}/{}", stored.object.namespace(), stored.object.name())
}

/// The change from the pods `acked` to `now`: the pods to carry (new or changed, as their
/// agent gets them) and those to remove ("namespace/name": gone or changed).
pub fn change(acked: &SentPods, now: &[NodePod]) -> (Vec<Vec<u8>>, Vec<String>) {
    let mut carried = Vec::new();
    let mut removed = Vec::new();
    for pod in now {
        match acked.get(&pod.key) {
            Some(&version) if version == pod.version => continue,
            Some(_) => removed.push(pod.key.clone()),
            None => {}
        }
        carried.push(pod_json(&pod.stored.object));
    }
    let present: HashSet<&str> = now.iter().map(|p| p.key.as_str()).collect();
    removed.extend(
        acked
            .keys()
            .filter(|k| !present.contains(k.as_str()))
            .cloned(),
    );
    removed.sort();
    (carried, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "migrate", "namespace": "default", "resourceVersion": "7"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": status,
        }))
        .expect("a pod")
    }

    #[test]
    fn an_agent_gets_a_finished_phase_and_no_other_status() {
        let sent = |p: &Pod| -> serde_json::Value {
            serde_json::from_slice(&pod_json(&Object::Pod(p.clone()))).unwrap()
        };
        let running = pod(json!({"phase": "Running", "podIP": "10.244.1.5"}));
        let done = pod(json!({"phase": "Succeeded", "podIP": "10.244.1.5"}));
        assert!(sent(&running).get("status").is_none());
        assert!(sent(&running)["metadata"].get("resourceVersion").is_none());
        assert_eq!(sent(&done)["status"], json!({"phase": "Succeeded"}));
        // A report that only moves a running pod along changes nothing the agent gets;
        // one that finishes it does.
        let pending = pod(json!({"phase": "Pending"}));
        assert!(same_for_agent(&pending, &running));
        assert!(!same_for_agent(&running, &done));
    }

    fn stored(name: &str, image: &str, phase: &str, resource_version: u64) -> Stored {
        Stored {
            object: Object::from_json(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": image}]},
                "status": {"phase": phase},
            }))
            .expect("a pod"),
            resource_version,
        }
    }

    #[test]
    fn a_pod_changes_for_its_agent_only_when_what_it_is_sent_changes() {
        let mut versions = AgentVersions::default();
        let created = stored("web", "app:1", "Pending", 5);
        versions.changed(None, Some(&created));
        assert_eq!(versions.of("default/web", &created), 5);
        // Status reports: the version stays.
        let running = stored("web", "app:1", "Running", 6);
        versions.changed(Some(&created), Some(&running));
        let ready = stored("web", "app:1", "Running", 7);
        versions.changed(Some(&running), Some(&ready));
        assert_eq!(versions.of("default/web", &ready), 5);
        // A change of what the agent gets, or finishing, moves it.
        let done = stored("web", "app:1", "Succeeded", 8);
        versions.changed(Some(&ready), Some(&done));
        assert_eq!(versions.of("default/web", &done), 8);
        // A write it did not follow: taken as changed then.
        let unseen = stored("web", "app:2", "Succeeded", 9);
        assert_eq!(versions.of("default/web", &unseen), 9);
        versions.changed(Some(&done), None);
        assert!(versions.by_key.is_empty(), "a deleted pod is forgotten");
    }

    #[test]
    fn a_change_carries_new_and_changed_pods_and_names_changed_and_gone_ones() {
        let node_pod = |name: &str, version: u64| NodePod {
            key: format!("default/{name}"),
            version,
            stored: Arc::new(stored(name, "app:1", "Running", version)),
        };
        let acked: SentPods = [
            ("default/same", 3),
            ("default/moved", 4),
            ("default/gone", 2),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let now = [
            node_pod("moved", 9),
            node_pod("new", 10),
            node_pod("same", 3),
        ];
        let (carried, removed) = change(&acked, &now);
        let names: Vec<String> = carried
            .iter()
            .map(|b| {
                let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                v["metadata"]["name"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(names, ["moved", "new"]);
        assert_eq!(removed, ["default/gone", "default/moved"]);
        assert_eq!(change(&acked, &now[2..]).0.len(), 0);
    }
}
