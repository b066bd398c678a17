//! Pod security policy: privileges that give a pod power over its node (`privileged`,
//! `hostNetwork`, `hostPID`, added capabilities, `hostPort`, sysctls outside the safe set,
//! an unconfined seccomp profile) are refused unless the repository's
//! `keel.yaml` allows them in the pod's namespace, as Kubernetes' Pod Security admission
//! refuses them outside namespaces labelled `privileged`. Every workload's pod template is
//! checked where it is written, so the error points at the line to change.

use crate::path::FieldPath;
use crate::repo_config::{PodPrivilege, RepoConfig};
use crate::types::pod::PodSpec;

use super::FieldError;
use super::cross::Item;

/// The refused privileges of every item's pods, with the item's index.
pub fn check_pod_security(items: &[Item<'_>], config: &RepoConfig) -> Vec<(usize, FieldError)> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(pods) = item.object.pod_template() else {
            continue;
        };
        let namespace = item
            .object
            .meta()
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        for (privilege, at) in privileges(pods.spec(), &pods.spec_path()) {
            if !config.allows(&namespace, privilege) {
                out.push((
                    i,
                    FieldError {
                        path: at,
                        message: format!(
                            "Forbidden: {} is not allowed in namespace {namespace:?}; keel.yaml \
                             can allow it there with podSecurity: {{{namespace}: [{}]}}",
                            privilege.name(),
                            privilege.name()
                        ),
                    },
                ));
            }
        }
    }
    out
}

/// Each privilege `spec` uses, where it is set.
fn privileges(spec: &PodSpec, path: &FieldPath) -> Vec<(PodPrivilege, FieldPath)> {
    let mut out = Vec::new();
    if spec.host_network == Some(true) {
        out.push((PodPrivilege::HostNetwork, path.field("hostNetwork")));
    }
    if spec.host_pid == Some(true) {
        out.push((PodPrivilege::HostPid, path.field("hostPID")));
    }
    let pod_sc = spec.security_context.as_ref();
    let at = path.field("securityContext");
    for (i, sysctl) in pod_sc
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        // One that is not namespaced is refused outright by validation.
        let name = &sysctl.name;
        if super::pod::is_namespaced_sysctl(name) && !super::pod::is_safe_sysctl(name) {
            let name = at.field("sysctls").index(i).field("name");
            out.push((PodPrivilege::UnsafeSysctls, name));
        }
    }
    if pod_sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .is_some_and(|p| p.type_ == "Unconfined")
    {
        let type_ = at.field("seccompProfile").field("type");
        out.push((PodPrivilege::SeccompUnconfined, type_));
    }
    // Init containers run with the same powers: they are held to the same policy.
    for (field, i, c) in spec.all_containers() {
        for (j, port) in c.ports.iter().flatten().enumerate() {
            if port.host_port.is_some_and(|h| h != 0) {
                let at = path.field(field).index(i).field("ports").index(j);
                out.push((PodPrivilege::HostPort, at.field("hostPort")));
            }
        }
        let Some(sc) = &c.security_context else {
            continue;
        };
        let at = path.field(field).index(i).field("securityContext");
        if sc
            .seccomp_profile
            .as_ref()
            .is_some_and(|p| p.type_ == "Unconfined")
        {
            let type_ = at.field("seccompProfile").field("type");
            out.push((PodPrivilege::SeccompUnconfined, type_));
        }
        if sc.privileged == Some(true) {
            out.push((PodPrivilege::Privileged, at.field("privileged")));
        }
        if sc
            .capabilities
            .as_ref()
            .and_then(|c| c.add.as_ref())
            .is_some_and(|a| !a.is_empty())
        {
            out.push((
                PodPrivilege::Capabilities,
                at.field("capabilities").field("add"),
            ));
        }
    }
    out
}
