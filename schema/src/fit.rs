//! Decoded values kept for long, at the size they need.
//!
//! serde reads a JSON array into a `Vec` that grows as it goes, since JSON says no length up
//! front: a decoded vector keeps up to twice the room it needs, and one element gets room
//! for four (a pod's one container, 392 bytes, in 1,568). A control plane keeps a decoded
//! copy of every pod, and reads all of them back on a restart, so what the store and the
//! agents' status reports decode is refitted before it is kept.

/// `decoded` with every vector in it no larger than its contents: `Clone` allocates exactly
/// what each one holds. Costs a copy; worth it only for what is kept.
#[must_use]
pub fn fitted<T: Clone>(decoded: T) -> T {
    decoded.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::pod::Pod;

    #[test]
    fn a_decoded_pod_keeps_no_room_beyond_its_contents() {
        let json = br#"{"metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx",
                "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}"#;
        let decoded: Pod = serde_json::from_slice(json).unwrap();
        // What this module is for: serde leaves room for more.
        assert!(decoded.spec.containers.capacity() > 1);
        let pod = fitted(decoded.clone());
        assert_eq!(pod, decoded);
        assert_eq!(pod.spec.containers.capacity(), 1);
        let container = &pod.spec.containers[0];
        assert_eq!(container.ports.as_ref().unwrap().capacity(), 1);
        assert_eq!(container.env.as_ref().unwrap().capacity(), 1);
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.conditions.as_ref().unwrap().capacity(), 1);
    }
}
