//! Starting a container: its image (pulled as its policy says, with kubelet's back-off
//! states), its config, then the container in the pod's sandbox.

use chrono::Utc;
use tokio::time::Instant;

use super::{ENGINE_RETRY, PodWorker, pull_policy};
use crate::pod::spec::{container_spec, non_root_needs_image_user, non_root_refusal};
use crate::pod::state::{ContainerLife, ContainerSlot, WaitReason};
use crate::pod::{pinned, volumes};
use crate::runtime::{ContainerInfo, ContainerState, ImageError, PullPolicy, RuntimeError};
use keel_schema::types::core::EventType;

impl PodWorker {
    /// Starts container `i`: its image, its config, then the container itself.
    pub(super) async fn start(&mut self, i: usize) {
        let (Some(sandbox), Some(volumes)) = (self.sandbox.clone(), self.volumes.clone()) else {
            // Not yet possible: look again shortly rather than at once.
            if let ContainerLife::Waiting { retry_at, .. } = &mut self.slots[i].life {
                *retry_at = Some(Instant::now() + ENGINE_RETRY);
            }
            return;
        };
        if !self.pull(i).await {
            return;
        }
        let spec = self.slots[i].spec.clone();
        let attempt = self.slots[i].starts;
        if let Some(message) = self.non_root_refusal(&spec).await {
            let delay = self.slots[i].backoff.on_failure();
            self.event(EventType::Warning, "Failed", format!("Error: {message}"));
            self.wait(i, WaitReason::CreateContainerConfigError, message, delay);
            return;
        }
        let pod_dir = volumes::pod_dir(&self.ctx.data_dir, &self.desired.uid);
        if let Err(message) = crate::pod::termination::prepare(&pod_dir, &spec.name) {
            let delay = self.slots[i].backoff.on_failure();
            self.wait(i, WaitReason::CreateContainerConfigError, message, delay);
            return;
        }
        let made = container_spec(
            &self.desired,
            &self.pod_ref,
            &spec,
            attempt,
            &volumes,
            &pod_dir,
        );
        let pinned = match made {
            Ok((cs, pins)) => pinned::pin_all(self.ctx.runtime.as_ref(), pins)
                .await
                .map(|()| cs),
            Err(message) => Err(message),
        };
        let cs = match pinned {
            Ok(cs) => crate::runtime::ContainerSpec {
                init: self.slots[i].init,
                ..cs
            },
            Err(message) => {
                let delay = self.slots[i].backoff.on_failure();
                self.event(EventType::Warning, "Failed", format!("Error: {message}"));
                self.wait(i, WaitReason::CreateContainerConfigError, message, delay);
                return;
            }
        };
        match self.ctx.runtime.run_container(&sandbox, &cs).await {
            Ok(id) => {
                self.started(i, id.clone()).await;
                self.post_start(i, &id).await;
            }
            Err(RuntimeError::Unavailable(m)) => {
                self.wait(i, WaitReason::ContainerCreating, m, ENGINE_RETRY);
            }
            Err(RuntimeError::Failed(m)) => {
                let delay = self.slots[i].backoff.on_failure();
                tracing::warn!(pod = %self.desired.key(), container = %spec.name, error = %m, "container failed to start");
                self.event(EventType::Warning, "Failed", format!("Error: {m}"));
                self.wait(i, WaitReason::CreateContainerError, m, delay);
            }
        }
    }

    /// Why `runAsNonRoot` keeps `spec` from starting, if it does. The image's user is
    /// asked of the engine only when no `runAsUser` settles it.
    async fn non_root_refusal(&self, spec: &keel_schema::types::pod::Container) -> Option<String> {
        if !non_root_needs_image_user(&self.desired, spec) {
            return non_root_refusal(&self.desired, spec, None);
        }
        let image = spec.image.clone().unwrap_or_default();
        let user = match self.ctx.runtime.image_user(&image).await {
            Ok(user) => user,
            Err(e) => return Some(format!("cannot read the user of image {image}: {e}")),
        };
        non_root_refusal(&self.desired, spec, user.as_deref())
    }

    /// Makes sure container `i`'s image is there; false (its slot waiting) when not.
    async fn pull(&mut self, i: usize) -> bool {
        let spec = &self.slots[i].spec;
        let image = spec.image.clone().unwrap_or_default();
        let policy = pull_policy(spec);
        let will_pull = match policy {
            PullPolicy::Always => true,
            PullPolicy::Never => false,
            PullPolicy::IfNotPresent => {
                !self.ctx.runtime.image_present(&image).await.unwrap_or(true)
            }
        };
        if will_pull {
            self.event(
                EventType::Normal,
                "Pulling",
                format!("Pulling image \"{image}\""),
            );
        }
        // The first of the pod's pull secrets with a login for this registry.
        let secrets: Vec<&keel_schema::types::core::Secret> = (self.desired.pod.spec)
            .image_pull_secrets
            .iter()
            .flatten()
            .filter_map(|r| self.desired.secrets.get(r.name.as_deref()?))
            .collect();
        let auth = crate::pod::pull_secrets::auth_for(&image, &secrets);
        match self
            .ctx
            .runtime
            .ensure_image(&image, policy, auth.as_ref())
            .await
        {
            Ok(()) => {
                let message = if will_pull {
                    format!("Successfully pulled image \"{image}\"")
                } else {
                    format!("Container image \"{image}\" already present on machine")
                };
                self.event(EventType::Normal, "Pulled", message);
                true
            }
            // The engine did not answer: not the image's fault.
            Err(ImageError::Runtime(m)) => {
                self.wait(i, WaitReason::ContainerCreating, m, ENGINE_RETRY);
                false
            }
            Err(e) => {
                self.pull_failed(i, &image, e);
                false
            }
        }
    }

    /// The image cannot be had: `ErrImagePull`, then `ImagePullBackOff` on repeats, or
    /// `ErrImageNeverPull`, with kubelet's events.
    fn pull_failed(&mut self, i: usize, image: &str, e: ImageError) {
        let previous = match &self.slots[i].life {
            ContainerLife::Waiting { reason, .. } => Some(*reason),
            _ => None,
        };
        let delay = self.slots[i].backoff.on_failure();
        let reason = match (&e, previous) {
            (ImageError::NeverPull(_), _) => WaitReason::ErrImageNeverPull,
            (_, Some(WaitReason::ErrImagePull | WaitReason::ImagePullBackOff)) => {
                WaitReason::ImagePullBackOff
            }
            _ => WaitReason::ErrImagePull,
        };
        let container = self.slots[i].spec.name.clone();
        tracing::warn!(pod = %self.desired.key(), container = %container, image = %image, error = %e, "image not available");
        let message = if reason == WaitReason::ImagePullBackOff {
            let back_off = format!("Back-off pulling image \"{image}\"");
            self.event(EventType::Normal, "BackOff", back_off.clone());
            format!("{back_off}: {e}")
        } else {
            let failed = format!("Failed to pull image \"{image}\": {e}");
            self.event(EventType::Warning, "Failed", failed);
            e.to_string()
        };
        self.wait(i, reason, message, delay);
    }

    /// Container `i` runs as `id`: told, and its probes scheduled from its own start.
    async fn started(&mut self, i: usize, id: String) {
        let name = self.slots[i].spec.name.clone();
        let attempt = self.slots[i].starts;
        tracing::info!(pod = %self.desired.key(), container = %name, attempt, "container started");
        self.event(
            EventType::Normal,
            "Created",
            format!("Created container {name}"),
        );
        self.event(
            EventType::Normal,
            "Started",
            format!("Started container {name}"),
        );
        // The engine's own start time, so it never changes when read again later.
        let started_at = match self.ctx.runtime.inspect(&id).await {
            Ok(Some(ContainerInfo {
                state: ContainerState::Running { started_at },
                ..
            })) => started_at,
            _ => Utc::now(),
        };
        let slot = &mut self.slots[i];
        slot.starts += 1;
        slot.life = ContainerLife::Running {
            id,
            started_at,
            probes: ContainerSlot::probes_for(&slot.spec, Instant::now()),
        };
    }
}
