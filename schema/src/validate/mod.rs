//! Validation of objects declared in git, one object at a time ([`validate_object`]) and across
//! a whole revision ([`cross`]). Every problem is collected; nothing stops at the first.
//!
//! Messages follow Kubernetes' wording (`Required value`, `Invalid value: "x": …`,
//! `Unsupported value: …: supported values: …`), so they read as users already know them.

pub mod autoscaler;
mod claims;
mod crd;
pub mod cross;
pub mod custom_objects;
pub mod ingress;
pub mod limit_range;
pub mod meta;
pub mod names;
mod network_policy;
mod pod;
pub mod policy;
pub mod quota;
mod rbac;
pub mod service;

pub use service::NODE_PORT_RANGE;
mod storage;
mod workloads;

use std::fmt::Display;

use crate::object::Object;
use crate::path::FieldPath;

/// One problem, located by its field path within the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: FieldPath,
    pub message: String,
}

/// Collects [`FieldError`]s with Kubernetes' message shapes.
#[derive(Debug, Default)]
pub struct Errors {
    pub items: Vec<FieldError>,
}

impl Errors {
    pub fn push(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.items.push(FieldError {
            path: path.clone(),
            message: message.into(),
        });
    }

    pub fn required(&mut self, path: &FieldPath) {
        self.push(path, "Required value");
    }

    pub fn required_because(&mut self, path: &FieldPath, why: &str) {
        self.push(path, format!("Required value: {why}"));
    }

    /// `Invalid value: "text": why` (strings quoted, numbers bare).
    pub fn invalid(&mut self, path: &FieldPath, value: impl ShowValue, why: impl Display) {
        self.push(path, format!("Invalid value: {}: {why}", value.show()));
    }

    pub fn unsupported(&mut self, path: &FieldPath, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        self.push(
            path,
            format!(
                "Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
        );
    }

    pub fn duplicate(&mut self, path: &FieldPath, value: impl ShowValue) {
        self.push(path, format!("Duplicate value: {}", value.show()));
    }

    pub fn forbidden(&mut self, path: &FieldPath, why: impl Display) {
        self.push(path, format!("Forbidden: {why}"));
    }

    /// Checks `value` against a name rule from [`names`].
    pub fn name(&mut self, path: &FieldPath, value: &str, rule: fn(&str) -> Option<String>) {
        if let Some(why) = rule(value) {
            self.invalid(path, value, why);
        }
    }

    /// A name that must be given and follow `rule`.
    pub fn required_name(
        &mut self,
        path: &FieldPath,
        value: Option<&str>,
        rule: fn(&str) -> Option<String>,
    ) {
        match value {
            None | Some("") => self.required(path),
            Some(v) => self.name(path, v, rule),
        }
    }

    pub fn range(&mut self, path: &FieldPath, value: i64, lo: i64, hi: i64) {
        if value < lo || value > hi {
            self.invalid(
                path,
                value,
                format!("must be between {lo} and {hi}, inclusive"),
            );
        }
    }

    pub fn non_negative(&mut self, path: &FieldPath, value: Option<i64>) {
        if let Some(v) = value.filter(|v| *v < 0) {
            self.invalid(path, v, "must be greater than or equal to 0");
        }
    }

    pub fn positive(&mut self, path: &FieldPath, value: Option<i64>) {
        if let Some(v) = value.filter(|v| *v < 1) {
            self.invalid(path, v, "must be greater than or equal to 1");
        }
    }

    pub fn one_of(&mut self, path: &FieldPath, value: Option<&str>, supported: &[&str]) {
        if let Some(v) = value
            && !supported.contains(&v)
        {
            self.unsupported(path, v, supported);
        }
    }
}

/// How a value appears after `Invalid value:`.
pub trait ShowValue {
    fn show(&self) -> String;
}

impl ShowValue for &str {
    fn show(&self) -> String {
        format!("{self:?}")
    }
}

impl ShowValue for &String {
    fn show(&self) -> String {
        format!("{self:?}")
    }
}

impl ShowValue for i64 {
    fn show(&self) -> String {
        self.to_string()
    }
}

/// A value that must not be shown (Secret data).
pub struct Hidden;

impl ShowValue for Hidden {
    fn show(&self) -> String {
        "<hidden>".to_string()
    }
}

/// Validates one object as declared in a manifest: metadata, fields set by the cluster (which
/// git may not set), and the kind's own rules.
pub fn validate_object(obj: &Object) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta::validate_metadata(obj, &mut errs);
    let root = FieldPath::root();
    let spec = root.field("spec");
    let status = root.field("status");
    // `status: {}` (as `kubectl create --dry-run -o yaml` prints) says nothing; allow it.
    let status_set = |present: bool, errs: &mut Errors| {
        if present {
            errs.forbidden(
                &status,
                "status is set by the cluster; remove it from the manifest",
            );
        }
    };
    match obj {
        Object::Pod(o) => {
            status_set(declared(&o.status), &mut errs);
            pod::validate_pod_spec(&o.spec, &spec, &mut errs, pod::ANY_RESTART);
        }
        Object::Service(o) => {
            status_set(declared(&o.status), &mut errs);
            service::validate_service(&o.spec, &spec, &mut errs);
        }
        Object::ReplicationController(o) => {
            status_set(declared(&o.status), &mut errs);
            workloads::validate_rc(&o.spec, &spec, &mut errs);
        }
        Object::ReplicaSet(o) => {
            status_set(declared(&o.status), &mut errs);
            workloads::validate_rs(&o.spec, &spec, &mut errs);
        }
        Object::Deployment(o) => {
            status_set(declared(&o.status), &mut errs);
            workloads::validate_deployment(&o.spec, &spec, &mut errs);
        }
        Object::DaemonSet(o) => {
            status_set(declared(&o.status), &mut errs);
            workloads::validate_daemonset(&o.spec, &spec, &mut errs);
        }
        Object::StatefulSet(o) => {
            status_set(declared(&o.status), &mut errs);
            workloads::validate_statefulset(o, &spec, &mut errs);
        }
        Object::Job(o) => {
            status_set(declared(&o.status), &mut errs);
            workloads::validate_job(&o.spec, &spec, &mut errs);
        }
        Object::CronJob(o) => {
            status_set(declared(&o.status), &mut errs);
            workloads::validate_cronjob(o, &spec, &mut errs);
        }
        Object::PersistentVolumeClaim(o) => {
            status_set(declared(&o.status), &mut errs);
            claims::validate_claim_spec(&o.spec, &spec, &mut errs);
        }
        Object::ConfigMap(o) => storage::validate_configmap(o, &mut errs),
        Object::Secret(o) => storage::validate_secret(o, &mut errs),
        Object::Namespace(o) => status_set(declared(&o.status), &mut errs),
        Object::Ingress(o) => {
            status_set(declared(&o.status), &mut errs);
            ingress::validate_ingress(&o.spec, &spec, &mut errs);
        }
        Object::IngressClass(o) => ingress::validate_ingress_class(&o.spec, &spec, &mut errs),
        Object::LimitRange(o) => limit_range::validate_limit_range(&o.spec, &spec, &mut errs),
        Object::ResourceQuota(o) => {
            status_set(declared(&o.status), &mut errs);
            quota::validate_quota_spec(&o.spec, &spec, &mut errs);
        }
        Object::NetworkPolicy(o) => {
            network_policy::validate_network_policy(&o.spec, &spec, &mut errs)
        }
        Object::PodDisruptionBudget(o) => {
            status_set(declared(&o.status), &mut errs);
            network_policy::validate_pdb(&o.spec, &spec, &mut errs);
        }
        Object::HorizontalPodAutoscaler(o) => {
            status_set(declared(&o.status), &mut errs);
            autoscaler::validate_autoscaler(&o.spec, &spec, &mut errs);
        }
        Object::ServiceAccount(o) => rbac::validate_service_account(o, &mut errs),
        Object::Role(o) => rbac::validate_rules(o.rules.as_ref(), false, &mut errs),
        Object::ClusterRole(o) => rbac::validate_rules(o.rules.as_ref(), true, &mut errs),
        Object::RoleBinding(o) => {
            rbac::validate_binding(o.subjects.as_ref(), &o.role_ref, false, &mut errs)
        }
        Object::ClusterRoleBinding(o) => {
            rbac::validate_binding(o.subjects.as_ref(), &o.role_ref, true, &mut errs)
        }
        Object::CustomResourceDefinition(o) => {
            status_set(declared(&o.status), &mut errs);
            crd::validate_crd(o, &mut errs);
        }
        // Live-only kinds are refused before validation; nothing more to check here.
        Object::Node(_)
        | Object::Endpoints(_)
        | Object::Event(_)
        | Object::ControllerRevision(_)
        | Object::PersistentVolume(_) => {}
        // Its body was checked against its definition's schema as it was read.
        Object::Custom(o) => status_set(
            o.status()
                .is_some_and(|s| s.as_object().map_or(!s.is_null(), |m| !m.is_empty())),
            &mut errs,
        ),
    }
    errs.items
}

/// True when a manifest gives a status with something in it.
fn declared<T: Default + PartialEq>(status: &Option<T>) -> bool {
    status.as_ref().is_some_and(|s| *s != T::default())
}
