//! [`Object`] (declared with [`Kind`] in [`crate::kinds`]): one value of any supported kind,
//! and what keel asks of any object whatever its kind.

pub use crate::kinds::{Kind, KindInfo, Object, ObjectError};
use crate::resource::PodTemplateRef;
use crate::types::meta::Condition;

impl Object {
    pub fn info(&self) -> &'static KindInfo {
        self.kind().info()
    }

    pub fn name(&self) -> &str {
        self.meta().name()
    }

    pub fn namespace(&self) -> &str {
        self.meta().namespace()
    }

    /// Its status conditions (none for kinds without them).
    pub fn conditions(&self) -> &[Condition] {
        self.resource().conditions()
    }

    /// Its status conditions, made if absent; `None` for kinds whose status has none.
    pub fn conditions_mut(&mut self) -> Option<&mut Vec<Condition>> {
        self.resource_mut().conditions_mut()
    }

    /// The replicas a scalable workload (Deployment, StatefulSet, ReplicaSet,
    /// ReplicationController) declares; `None` for other kinds, or when unset.
    pub fn replicas(&self) -> Option<i64> {
        match self {
            Object::Deployment(d) => d.spec.replicas,
            Object::StatefulSet(s) => s.spec.replicas,
            Object::ReplicaSet(r) => r.spec.replicas,
            Object::ReplicationController(r) => r.spec.replicas,
            _ => None,
        }
    }

    /// Where a scalable workload declares its replicas.
    pub fn replicas_mut(&mut self) -> Option<&mut Option<i64>> {
        match self {
            Object::Deployment(d) => Some(&mut d.spec.replicas),
            Object::StatefulSet(s) => Some(&mut s.spec.replicas),
            Object::ReplicaSet(r) => Some(&mut r.spec.replicas),
            Object::ReplicationController(r) => Some(&mut r.spec.replicas),
            _ => None,
        }
    }

    /// The pods this object runs (a pod's spec, a workload's template), if any.
    pub fn pod_template(&self) -> Option<PodTemplateRef<'_>> {
        self.resource().pod_template()
    }

    /// This object as git declares it: no status and none of the metadata the cluster sets
    /// (uid, resourceVersion, generation, timestamps, owners). Two objects that differ only
    /// there are the same desired state.
    pub fn declared(&self) -> Object {
        let mut o = self.clone();
        let meta = o.meta_mut();
        meta.uid = None;
        meta.resource_version = None;
        meta.generation = None;
        meta.creation_timestamp = None;
        meta.deletion_timestamp = None;
        meta.owner_references = None;
        o.resource_mut().clear_status();
        o
    }

    /// True when `self` and `other` declare the same desired state: everything but status,
    /// cluster-set metadata, and the labels and annotations named (keel's own markers).
    /// Compares in place, without copies (a resync compares thousands of objects).
    pub fn same_declared(
        &self,
        other: &Object,
        ignore_labels: &[&str],
        ignore_annotations: &[&str],
    ) -> bool {
        let (ma, mb) = (self.meta(), other.meta());
        ma.name == mb.name
            && ma.namespace == mb.namespace
            && same_map(&ma.labels, &mb.labels, ignore_labels)
            && same_map(&ma.annotations, &mb.annotations, ignore_annotations)
            && self.same_body(other)
    }
}

/// Two optional maps equal once the keys in `ignore` are left out of both.
fn same_map(
    a: &Option<crate::selector::Labels>,
    b: &Option<crate::selector::Labels>,
    ignore: &[&str],
) -> bool {
    let kept = |m: &Option<crate::selector::Labels>| {
        m.iter()
            .flatten()
            .filter(|(k, _)| !ignore.contains(&k.as_str()))
            .count()
    };
    kept(a) == kept(b)
        && a.iter()
            .flatten()
            .filter(|(k, _)| !ignore.contains(&k.as_str()))
            .all(|(k, v)| b.as_ref().and_then(|m| m.get(k)) == Some(v))
}
