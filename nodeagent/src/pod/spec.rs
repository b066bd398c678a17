//! A pod spec's container turned into what the runtime creates: environment (with `valueFrom`
//! and `envFrom` resolved against the ConfigMaps and Secrets sent with the pod, and `$(VAR)`
//! references expanded), command and args, resources and mounts. A problem here is the pod's
//! `CreateContainerConfigError`, with Kubernetes' wording.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use base64::Engine;
use keel_schema::types::pod::{Container, EnvFromSource, EnvVarSource};

use crate::desired::DesiredPod;
use crate::pod::pinned::{self, Pin};
use crate::pod::volumes::PodVolumes;
use crate::runtime::{ContainerSpec, Mount, PodRef};

/// Kubernetes' environment variable names: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || "-._".contains(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

fn decode_secret_value(value: &str) -> String {
    match base64::engine::general_purpose::STANDARD.decode(value.trim()) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        // Validation rejects non-base64 Secret data; kept as given if it ever gets here.
        Err(_) => value.to_string(),
    }
}

fn config_map_data(pod: &DesiredPod, name: &str) -> Option<BTreeMap<String, String>> {
    pod.config_maps
        .get(name)
        .map(|c| c.data.clone().unwrap_or_default())
}

fn secret_data(pod: &DesiredPod, name: &str) -> Option<BTreeMap<String, String>> {
    pod.secrets.get(name).map(|s| {
        s.data
            .as_ref()
            .map(|d| {
                d.0.iter()
                    .map(|(k, v)| (k.clone(), decode_secret_value(v)))
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Expands `$(NAME)` from `vars`; `$$` is a literal `$`; unknown references stay as written,
/// as Kubernetes does.
pub fn expand(text: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Variables in order, a later one replacing an earlier one of the same name in place.
#[derive(Default)]
struct Env {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Env {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }
}

/// The container's environment, in Kubernetes' order: Service variables, `envFrom` sources,
/// then `env` (later entries win).
pub fn environment(pod: &DesiredPod, c: &Container) -> Result<Vec<(String, String)>, String> {
    let mut env = Env::default();
    // Service variables first, so the container's own `env` and `envFrom` win, as in
    // Kubernetes.
    if pod.pod.spec.enable_service_links != Some(false) {
        for (name, value) in pod.service_env.iter() {
            env.set(name.clone(), value.clone());
        }
    }
    for from in c.env_from.iter().flatten() {
        env_from(pod, from, &mut env)?;
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            Some(from) => match value_from(pod, from)? {
                Some(v) => v,
                None => continue,
            },
            None => {
                let known: HashMap<String, String> = env.vars.iter().cloned().collect();
                expand(e.value.as_deref().unwrap_or(""), &known)
            }
        };
        env.set(e.name.clone(), value);
    }
    Ok(env.vars)
}

/// Every key of a ConfigMap or Secret, prefixed; keys that are not valid variable names
/// are skipped, as Kubernetes does.
fn env_from(pod: &DesiredPod, from: &EnvFromSource, env: &mut Env) -> Result<(), String> {
    let prefix = from.prefix.clone().unwrap_or_default();
    let (kind, name, optional, data) = if let Some(r) = &from.config_map_ref {
        let name = r.name.clone().unwrap_or_default();
        let data = config_map_data(pod, &name);
        ("configmap", name, r.optional.unwrap_or(false), data)
    } else if let Some(r) = &from.secret_ref {
        let name = r.name.clone().unwrap_or_default();
        let data = secret_data(pod, &name);
        ("secret", name, r.optional.unwrap_or(false), data)
    } else {
        return Ok(());
    };
    match data {
        Some(data) => {
            for (k, v) in data {
                let name = format!("{prefix}{k}");
                if valid_env_name(&name) {
                    env.set(name, v);
                }
            }
            Ok(())
        }
        None if optional => Ok(()),
        None => Err(format!("{kind} \"{name}\" not found")),
    }
}

/// One key of a ConfigMap or Secret; `None` when it is optional and missing.
fn value_from(pod: &DesiredPod, from: &EnvVarSource) -> Result<Option<String>, String> {
    let (kind, r, data) = if let Some(r) = &from.config_map_key_ref {
        let data = config_map_data(pod, r.name.as_deref().unwrap_or(""));
        ("ConfigMap", r, data)
    } else if let Some(r) = &from.secret_key_ref {
        let data = secret_data(pod, r.name.as_deref().unwrap_or(""));
        ("Secret", r, data)
    } else {
        return Ok(None);
    };
    let name = r.name.as_deref().unwrap_or("");
    let key = r.key.as_deref().unwrap_or("");
    let optional = r.optional.unwrap_or(false);
    match data.map(|d| d.get(key).cloned()) {
        Some(Some(v)) => Ok(Some(v)),
        _ if optional => Ok(None),
        None => Err(format!("{} \"{name}\" not found", kind.to_lowercase())),
        Some(None) => Err(format!(
            "couldn't find key {key} in {kind} {}/{name}",
            pod.namespace
        )),
    }
}

/// Everything the runtime needs to create container `c` of `pod`, attempt `attempt`, and the
/// mount sources to pin first (subPaths and hostPaths: the spec names their staging paths
/// under `pod_dir`).
pub fn container_spec(
    pod: &DesiredPod,
    pod_ref: &PodRef,
    c: &Container,
    attempt: u32,
    volumes: &PodVolumes,
    pod_dir: &Path,
) -> Result<(ContainerSpec, Vec<Pin>), String> {
    let env = environment(pod, c)?;
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let expand_all = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|items| items.iter().map(|s| expand(s, &vars)).collect::<Vec<_>>())
    };
    let mut mounts = Vec::new();
    let mut pins = Vec::new();
    for (index, m) in c.volume_mounts.iter().flatten().enumerate() {
        let Some(volume) = volumes.get(&m.name) else {
            return Err(format!(
                "volume {:?} of mount {:?} is not ready",
                m.name, m.mount_path
            ));
        };
        let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
        let host_path = match volume.source(sub)? {
            Some(source) => {
                let staging = pinned::staging(pod_dir, &c.name, index);
                pins.push(Pin {
                    root: source.root,
                    rel: source.rel,
                    create: source.create,
                    staging: staging.clone(),
                });
                staging
            }
            None => volume.path.clone(),
        };
        let host_path = host_path.to_string_lossy().into_owned();
        mounts.push(Mount {
            host_path,
            container_path: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false) || volume.read_only,
        });
    }
    // The termination message file (made empty by the worker before each start).
    mounts.push(Mount {
        host_path: crate::pod::termination::file(pod_dir, &c.name)
            .to_string_lossy()
            .into_owned(),
        container_path: crate::pod::termination::path_in_container(c).to_string(),
        read_only: false,
    });
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let quantity = |map: Option<&keel_schema::StringMap<keel_schema::quantity::Quantity>>,
                    key: &str,
                    millis: bool| {
        map.and_then(|m| m.get(key))
            .and_then(|q| if millis { q.millis() } else { q.value() }.ok())
    };
    let spec = ContainerSpec {
        pod: pod_ref.clone(),
        name: c.name.clone(),
        attempt,
        image: c.image.clone().unwrap_or_default(),
        entrypoint: expand_all(&c.command),
        cmd: expand_all(&c.args),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        mounts,
        memory_limit_bytes: quantity(limits, "memory", false).filter(|m| *m > 0),
        nano_cpus: quantity(limits, "cpu", true)
            .filter(|m| *m > 0)
            .map(|m| m.saturating_mul(1_000_000)),
        // As the kubelet: shares = millicores * 1024 / 1000, at least 2.
        cpu_shares: quantity(requests, "cpu", true).map(|m| (m.saturating_mul(1024) / 1000).max(2)),
        security: security(pod, c),
        init: false,
    };
    Ok((spec, pins))
}

/// The container's privileges, as validated (and allowed by the repository's policy) on
/// the control plane.
fn security(pod: &DesiredPod, c: &Container) -> crate::runtime::ContainerSecurity {
    let sc = c.security_context.clone().unwrap_or_default();
    let caps = sc.capabilities.unwrap_or_default();
    // Docker takes names without the CAP_ prefix.
    let names = |list: Option<Vec<String>>| -> Vec<String> {
        list.unwrap_or_default()
            .into_iter()
            .map(|c| c.strip_prefix("CAP_").unwrap_or(&c).to_string())
            .collect()
    };
    let pod_sc = pod.pod.spec.security_context.clone().unwrap_or_default();
    // The container's own setting wins over the pod's, field by field.
    let user = sc.run_as_user.or(pod_sc.run_as_user);
    let group = sc.run_as_group.or(pod_sc.run_as_group);
    let seccomp = sc.seccomp_profile.or(pod_sc.seccomp_profile);
    let mut groups = pod_sc.supplemental_groups.unwrap_or_default();
    groups.extend(pod_sc.fs_group);
    crate::runtime::ContainerSecurity {
        privileged: sc.privileged == Some(true),
        cap_add: names(caps.add),
        cap_drop: names(caps.drop),
        user: user.map(|u| match group {
            Some(g) => format!("{u}:{g}"),
            None => u.to_string(),
        }),
        read_only_root: sc.read_only_root_filesystem == Some(true),
        no_new_privileges: sc.allow_privilege_escalation == Some(false),
        host_pid: pod.pod.spec.host_pid == Some(true),
        share_process_namespace: pod.pod.spec.share_process_namespace == Some(true),
        groups,
        seccomp_unconfined: seccomp.is_some_and(|p| p.type_ == "Unconfined"),
    }
}

/// Whether `runAsNonRoot` applies to container `c`, and the `runAsUser` it runs as.
fn non_root_and_user(pod: &DesiredPod, c: &Container) -> (bool, Option<i64>) {
    let sc = c.security_context.as_ref();
    let pod_sc = pod.pod.spec.security_context.as_ref();
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|p| p.run_as_non_root))
        .unwrap_or(false);
    let user = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|p| p.run_as_user));
    (non_root, user)
}

/// Whether only the image's own user can say if `c` may start (`runAsNonRoot` without a
/// `runAsUser`).
pub fn non_root_needs_image_user(pod: &DesiredPod, c: &Container) -> bool {
    matches!(non_root_and_user(pod, c), (true, None))
}

/// Why container `c` may not start as the image's `image_user` (`None`: not known) under
/// `runAsNonRoot`, in the kubelet's words.
pub fn non_root_refusal(
    pod: &DesiredPod,
    c: &Container,
    image_user: Option<&str>,
) -> Option<String> {
    let (non_root, user) = non_root_and_user(pod, c);
    if !non_root {
        return None;
    }
    let at = format!("(pod: \"{}\", container: {})", pod.key(), c.name);
    match user {
        Some(0) => Some(format!("container's runAsUser breaks non-root policy {at}")),
        Some(_) => None,
        None => {
            // Docker's user is `name`, `uid`, `name:group` or `uid:gid`.
            let user = image_user?.split(':').next().unwrap_or("");
            match user.parse::<u32>() {
                _ if user.is_empty() || user == "root" => Some(format!(
                    "container has runAsNonRoot and image will run as root {at}"
                )),
                Ok(0) => Some(format!(
                    "container has runAsNonRoot and image will run as root {at}"
                )),
                Ok(_) => None,
                Err(_) => Some(format!(
                    "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root {at}"
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let vars = HashMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(expand("$(A)-$(B)", &vars), "x-$(B)");
        assert_eq!(expand("$$(A) $ $(", &vars), "$(A) $ $(");
        assert_eq!(expand("plain", &vars), "plain");
    }

    #[test]
    fn service_variables_come_first_and_the_containers_own_win() {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "shop", "uid": "u1"},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "app", "image": "x:1",
                "env": [
                    {"name": "WEB_SERVICE_PORT", "value": "override"},
                    {"name": "URL", "value": "http://$(WEB_SERVICE_HOST)/"}
                ]
            }]}
        });
        let service = |ns: &str, name: &str, ip: &str| keel_agent_protocol::ServiceEntry {
            service: serde_json::to_vec(&serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"clusterIP": ip, "ports": [{"port": 80}]}
            }))
            .unwrap_or_default(),
            endpoints: Vec::new(),
        };
        let msg = keel_agent_protocol::NodeDesired {
            node_name: "n1".into(),
            generation: 1,
            pods: vec![serde_json::to_vec(&pod).unwrap_or_default()],
            config_maps: Vec::new(),
            secrets: Vec::new(),
            services: vec![
                service("shop", "web", "10.96.0.20"),
                service("other", "db", "10.96.0.21"),
            ],
            nodes: Vec::new(),
            volumes: Vec::new(),
            released_volumes: Vec::new(),
            announce: Vec::new(),
            ingresses: Vec::new(),
            ingress_secrets: Vec::new(),
            ..Default::default()
        };
        let set = crate::desired::read(&msg, "n1", Vec::new()).expect("a valid set");
        let desired = &set.pods[0];
        let env: HashMap<String, String> = environment(desired, &desired.pod.spec.containers[0])
            .expect("resolves")
            .into_iter()
            .collect();
        assert_eq!(
            env.get("WEB_SERVICE_HOST").map(String::as_str),
            Some("10.96.0.20")
        );
        assert_eq!(
            env.get("WEB_SERVICE_PORT").map(String::as_str),
            Some("override")
        );
        assert!(
            !env.contains_key("DB_SERVICE_HOST"),
            "other namespaces' Services stay out"
        );
        assert_eq!(
            env.get("URL").map(String::as_str),
            Some("http://10.96.0.20/"),
            "$(VAR) sees them"
        );
        // enableServiceLinks: false leaves them out; the container's own stay.
        let mut quiet = (**desired).clone();
        quiet.pod.spec.enable_service_links = Some(false);
        let env: HashMap<String, String> = environment(&quiet, &quiet.pod.spec.containers[0])
            .expect("resolves")
            .into_iter()
            .collect();
        assert!(!env.contains_key("WEB_SERVICE_HOST"), "{env:?}");
        assert_eq!(
            env.get("WEB_SERVICE_PORT").map(String::as_str),
            Some("override")
        );
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("A_B.c-1"));
        assert!(!valid_env_name("1A"));
        assert!(!valid_env_name("A B"));
        assert!(!valid_env_name(""));
    }
}
