//! [`Resource`]: what each kind's type says about itself that keel needs per kind: which part
//! is the declared body, where its status is, and which pods it runs. Every kind in the
//! table ([`crate::kinds`]) must implement it, so a new kind does not compile until it says.

use crate::path::FieldPath;
use crate::types::apiextensions::CustomResourceDefinition;
use crate::types::apps::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet};
use crate::types::autoscaling::HorizontalPodAutoscaler;
use crate::types::batch::{CronJob, Job};
use crate::types::core::{
    ConfigMap, Endpoints, Event, Namespace, Node, ReplicationController, Secret, Service,
    ServiceAccount,
};
use crate::types::custom::CustomObject;
use crate::types::meta::{Condition, ObjectMeta};
use crate::types::pod::{Pod, PodSpec, PodTemplateSpec};
use crate::types::policy::{LimitRange, NetworkPolicy, PodDisruptionBudget, ResourceQuota};
use crate::types::rbac::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use crate::types::storage::{PersistentVolume, PersistentVolumeClaim};

/// Per-kind behaviour, implemented by each kind's type.
pub trait Resource {
    /// True when `self` and `other` declare the same body: everything but metadata and
    /// status (a Deployment's spec, a ConfigMap's data).
    fn same_body(&self, other: &Self) -> bool
    where
        Self: Sized;

    /// Takes `old`'s status when `self` has none: a write from git declares intent and must
    /// not erase what controllers observed (as Kubernetes' status subresource).
    fn keep_status_from(&mut self, old: &Self)
    where
        Self: Sized;

    /// Drops the status (what the cluster observed), leaving what was declared.
    fn clear_status(&mut self);

    /// The status conditions (none when there is no status yet, or the kind has none).
    fn conditions(&self) -> &[Condition];

    /// The status condition of `type_`, when there is one.
    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions().iter().find(|c| c.type_ == type_)
    }

    /// The status conditions, made if absent; `None` for kinds whose status has none.
    fn conditions_mut(&mut self) -> Option<&mut Vec<Condition>>;

    /// The pods this object runs: a pod's own spec, a workload's template; `None` for kinds
    /// that run no pods (and for a workload without a template, which validation refuses).
    fn pod_template(&self) -> Option<PodTemplateRef<'_>>;
}

/// The pods an object runs, and where their spec is written in its manifest.
#[derive(Debug, Clone, Copy)]
pub enum PodTemplateRef<'a> {
    /// A Pod: its own metadata and `spec`.
    Pod(&'a Pod),
    /// A workload: `spec.template`.
    Template(&'a PodTemplateSpec),
    /// A CronJob: `spec.jobTemplate.spec.template`.
    JobTemplate(&'a PodTemplateSpec),
}

impl<'a> PodTemplateRef<'a> {
    pub fn metadata(&self) -> &'a ObjectMeta {
        match self {
            PodTemplateRef::Pod(p) => &p.metadata,
            PodTemplateRef::Template(t) | PodTemplateRef::JobTemplate(t) => &t.metadata,
        }
    }

    pub fn spec(&self) -> &'a PodSpec {
        match self {
            PodTemplateRef::Pod(p) => &p.spec,
            PodTemplateRef::Template(t) | PodTemplateRef::JobTemplate(t) => &t.spec,
        }
    }

    /// Where the pod spec is in the manifest: `spec`, `spec.template.spec` or
    /// `spec.jobTemplate.spec.template.spec`.
    pub fn spec_path(&self) -> FieldPath {
        match self {
            PodTemplateRef::Pod(_) => FieldPath::new("spec"),
            PodTemplateRef::Template(_) => FieldPath::new("spec").field("template").field("spec"),
            PodTemplateRef::JobTemplate(_) => FieldPath::new("spec")
                .field("jobTemplate")
                .field("spec")
                .field("template")
                .field("spec"),
        }
    }
}

/// `status: Option<S>` handling for a type whose status has no conditions.
macro_rules! status {
    () => {
        fn keep_status_from(&mut self, old: &Self) {
            if self.status.is_none() {
                self.status.clone_from(&old.status);
            }
        }

        fn clear_status(&mut self) {
            self.status = None;
        }
    };
    (conditions) => {
        status!();

        fn conditions(&self) -> &[Condition] {
            self.status
                .as_ref()
                .and_then(|s| s.conditions.as_deref())
                .unwrap_or_default()
        }

        fn conditions_mut(&mut self) -> Option<&mut Vec<Condition>> {
            Some(
                self.status
                    .get_or_insert_with(Default::default)
                    .conditions
                    .get_or_insert_with(Vec::new),
            )
        }
    };
}

/// A status without conditions.
macro_rules! no_conditions {
    () => {
        fn conditions(&self) -> &[Condition] {
            &[]
        }

        fn conditions_mut(&mut self) -> Option<&mut Vec<Condition>> {
            None
        }
    };
}

/// A type without a status.
macro_rules! no_status {
    () => {
        fn keep_status_from(&mut self, _: &Self) {}

        fn clear_status(&mut self) {}

        no_conditions!();
    };
}

/// A workload whose pods come from `spec.template`.
macro_rules! templated {
    () => {
        fn pod_template(&self) -> Option<PodTemplateRef<'_>> {
            self.spec.template.as_ref().map(PodTemplateRef::Template)
        }
    };
}

/// A kind that runs no pods.
macro_rules! no_pods {
    () => {
        fn pod_template(&self) -> Option<PodTemplateRef<'_>> {
            None
        }
    };
}

impl Resource for Pod {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    fn pod_template(&self) -> Option<PodTemplateRef<'_>> {
        Some(PodTemplateRef::Pod(self))
    }
}

impl Resource for crate::types::networking::Ingress {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!();
    no_conditions!();
    no_pods!();
}

impl Resource for crate::types::networking::IngressClass {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    no_status!();
    no_pods!();
}

impl Resource for Service {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    no_pods!();
}

impl Resource for ReplicationController {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    templated!();
}

impl Resource for ConfigMap {
    fn same_body(&self, other: &Self) -> bool {
        (&self.data, &self.binary_data, self.immutable)
            == (&other.data, &other.binary_data, other.immutable)
    }
    no_status!();
    no_pods!();
}

impl Resource for Secret {
    fn same_body(&self, other: &Self) -> bool {
        (&self.type_, &self.data, &self.string_data, self.immutable)
            == (
                &other.type_,
                &other.data,
                &other.string_data,
                other.immutable,
            )
    }
    no_status!();
    no_pods!();
}

impl Resource for ServiceAccount {
    fn same_body(&self, other: &Self) -> bool {
        (
            &self.secrets,
            &self.image_pull_secrets,
            self.automount_service_account_token,
        ) == (
            &other.secrets,
            &other.image_pull_secrets,
            other.automount_service_account_token,
        )
    }
    no_status!();
    no_pods!();
}

impl Resource for Role {
    fn same_body(&self, other: &Self) -> bool {
        self.rules == other.rules
    }
    no_status!();
    no_pods!();
}

impl Resource for ClusterRole {
    fn same_body(&self, other: &Self) -> bool {
        (&self.rules, &self.aggregation_rule) == (&other.rules, &other.aggregation_rule)
    }
    no_status!();
    no_pods!();
}

impl Resource for RoleBinding {
    fn same_body(&self, other: &Self) -> bool {
        (&self.subjects, &self.role_ref) == (&other.subjects, &other.role_ref)
    }
    no_status!();
    no_pods!();
}

impl Resource for ClusterRoleBinding {
    fn same_body(&self, other: &Self) -> bool {
        (&self.subjects, &self.role_ref) == (&other.subjects, &other.role_ref)
    }
    no_status!();
    no_pods!();
}

impl Resource for Namespace {
    fn same_body(&self, _: &Self) -> bool {
        true
    }
    status!();
    no_conditions!();
    no_pods!();
}

impl Resource for Node {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    no_pods!();
}

impl Resource for Endpoints {
    fn same_body(&self, other: &Self) -> bool {
        self.subsets == other.subsets
    }
    no_status!();
    no_pods!();
}

impl Resource for Event {
    fn same_body(&self, other: &Self) -> bool {
        fn body(e: &Event) -> impl PartialEq + '_ {
            (
                &e.involved_object,
                &e.reason,
                &e.message,
                &e.type_,
                e.count,
                e.first_timestamp,
                e.last_timestamp,
                &e.source,
            )
        }
        body(self) == body(other)
    }
    no_status!();
    no_pods!();
}

impl Resource for Deployment {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    templated!();
}

impl Resource for ReplicaSet {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    templated!();
}

impl Resource for DaemonSet {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    templated!();
}

/// A claim's `spec.volumeName` is the cluster's (its provisioner binds it; git may not set
/// it): the declared body is the rest, and a write from git keeps the binding.
impl Resource for PersistentVolumeClaim {
    fn same_body(&self, other: &Self) -> bool {
        let unbound = |c: &PersistentVolumeClaim| {
            let mut spec = c.spec.clone();
            spec.volume_name = None;
            spec
        };
        unbound(self) == unbound(other)
    }

    fn keep_status_from(&mut self, old: &Self) {
        if self.status.is_none() {
            self.status.clone_from(&old.status);
        }
        if self.spec.volume_name.is_none() {
            self.spec.volume_name.clone_from(&old.spec.volume_name);
        }
    }

    fn clear_status(&mut self) {
        self.status = None;
    }

    no_conditions!();
    no_pods!();
}

impl Resource for LimitRange {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    no_status!();
    no_pods!();
}

impl Resource for ResourceQuota {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!();
    no_conditions!();
    no_pods!();
}

impl Resource for NetworkPolicy {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    no_status!();
    no_pods!();
}

impl Resource for PodDisruptionBudget {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    no_pods!();
}

impl Resource for HorizontalPodAutoscaler {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    no_pods!();
}

impl Resource for PersistentVolume {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!();
    no_conditions!();
    no_pods!();
}

impl Resource for StatefulSet {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    templated!();
}

impl Resource for ControllerRevision {
    fn same_body(&self, other: &Self) -> bool {
        (&self.data, self.revision) == (&other.data, other.revision)
    }
    no_status!();
    no_pods!();
}

impl Resource for Job {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    templated!();
}

impl Resource for CronJob {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!();
    no_conditions!();
    fn pod_template(&self) -> Option<PodTemplateRef<'_>> {
        let template = self.spec.job_template.spec.template.as_ref()?;
        Some(PodTemplateRef::JobTemplate(template))
    }
}

impl Resource for CustomResourceDefinition {
    fn same_body(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
    status!(conditions);
    no_pods!();
}

/// A custom object's body is its version and every top-level field but `status`; its
/// conditions are read from `status.conditions`, and nothing in keel writes them.
impl Resource for CustomObject {
    fn same_body(&self, other: &Self) -> bool {
        // The kinds are equal by group and name; a new version alone is a change to write.
        self.kind().info().api_version == other.kind().info().api_version
            && self.declared().eq(other.declared())
    }

    fn keep_status_from(&mut self, old: &Self) {
        if self.status().is_none() {
            self.set_status(old.status().cloned());
        }
    }

    fn clear_status(&mut self) {
        self.set_status(None);
    }

    fn conditions(&self) -> &[Condition] {
        CustomObject::conditions(self)
    }

    fn conditions_mut(&mut self) -> Option<&mut Vec<Condition>> {
        None
    }

    fn pod_template(&self) -> Option<PodTemplateRef<'_>> {
        None
    }
}
