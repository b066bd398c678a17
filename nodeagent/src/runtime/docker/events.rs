//! Follows the engine's container events for this node's containers and tells the pod workers
//! which pod to look at again. When the stream breaks (the engine restarted, say) it reconnects
//! with backoff and announces a resync, since anything may have changed meanwhile.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;
use tokio::sync::broadcast;

use crate::runtime::{RuntimeEvent, labels};

pub fn spawn(docker: Docker, node: String, tx: broadcast::Sender<RuntimeEvent>) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        loop {
            let filters = HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                (
                    "label".to_string(),
                    vec![format!("{}={node}", labels::NODE)],
                ),
                // Exits and removals; starts are the agent's own doing.
                (
                    "event".to_string(),
                    vec!["die".to_string(), "destroy".to_string(), "oom".to_string()],
                ),
            ]);
            let mut stream = docker.events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }));
            let mut connected = false;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(event) => {
                        if !connected {
                            connected = true;
                            delay = Duration::from_millis(500);
                        }
                        let uid = event
                            .actor
                            .and_then(|a| a.attributes)
                            .and_then(|a| a.get(labels::POD_UID).cloned());
                        if let Some(uid) = uid {
                            let _ = tx.send(RuntimeEvent::Pod(uid));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Docker event stream broken; reconnecting");
                        break;
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
            let _ = tx.send(RuntimeEvent::Resync);
        }
    });
}
