//! Nodes: readiness, scheduling, what each has and what its pods ask, pods per node, and
//! when the certificate its agent registered with expires.

use maud::{Markup, html};

use crate::layout::{Section, health_badge, page};
use crate::{Viewer, object_href};

#[derive(Debug, Clone, Default)]
pub struct NodeRow {
    pub name: String,
    pub ready: bool,
    pub cordoned: bool,
    pub address: String,
    /// Millicores and bytes: capacity, allocatable, requested by its pods.
    pub cpu: [i64; 3],
    pub memory: [i64; 3],
    pub pods: usize,
    pub max_pods: Option<i64>,
    pub certificate_expires: Option<String>,
    pub version: String,
}

pub fn nodes(viewer: &Viewer, rows: &[NodeRow]) -> Markup {
    page(
        "Nodes",
        Section::Nodes,
        "nodes",
        viewer,
        html! {
            h1 { "Nodes" }
            @if rows.is_empty() { p.muted { "No node has joined yet." } } @else {
                div.scroll { table.nodes {
                    thead { tr {
                        th scope="col" { "Node" } th scope="col" { "Ready" }
                        th scope="col" { "CPU (requested / allocatable / capacity)" }
                        th scope="col" { "Memory (requested / allocatable / capacity)" }
                        th scope="col" { "Pods" } th scope="col" { "Certificate expires" }
                        @if viewer.admin { th scope="col" { "Scheduling" } }
                    } }
                    tbody { @for n in rows { tr data-node=(n.name) {
                        th scope="row" {
                            a href=(object_href("Node", "", &n.name)) { (n.name) }
                            @if !n.address.is_empty() { br; span.muted { (n.address) } }
                        }
                        td {
                            (health_badge(if n.ready { "Ready" } else { "NotReady" }))
                            @if n.cordoned { " " span.badge.h-progressing { "cordoned" } }
                        }
                        td { (usage(n.cpu, cpu)) }
                        td { (usage(n.memory, bytes)) }
                        td { (n.pods) @if let Some(m) = n.max_pods { " / " (m) } }
                        td { (n.certificate_expires.as_deref().unwrap_or("—")) }
                        @if viewer.admin { td {
                            form.action data-action="cordon" data-method="PATCH"
                                data-url={ "/api/v1/nodes/" (n.name) }
                                data-body=(if n.cordoned { r#"{"spec":{"unschedulable":null}}"# } else { r#"{"spec":{"unschedulable":true}}"# }) {
                                button type="submit" { @if n.cordoned { "Uncordon" } @else { "Cordon" } }
                                span.action-result aria-live="polite" {}
                            }
                        } }
                    } } }
                } }
            }
        },
    )
}

/// Requested / allocatable / capacity, with a bar of how full it is.
fn usage(v: [i64; 3], show: fn(i64) -> String) -> Markup {
    let [requested, allocatable, capacity] = v;
    let percent = if allocatable > 0 {
        (requested.saturating_mul(100) / allocatable).clamp(0, 100)
    } else {
        0
    };
    html! {
        span { (show(requested)) " / " (show(allocatable)) " / " (show(capacity)) }
        meter min="0" max="100" value=(percent) title={ (percent) "% of allocatable requested" } { (percent) "%" }
    }
}

fn cpu(millis: i64) -> String {
    if millis % 1000 == 0 {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

fn bytes(b: i64) -> String {
    const GI: i64 = 1 << 30;
    const MI: i64 = 1 << 20;
    if b >= GI && b % (GI / 10) == 0 || b >= 10 * GI {
        format!("{:.1}Gi", b as f64 / GI as f64)
    } else {
        format!("{}Mi", b / MI)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_kubectl_writes_them() {
        assert_eq!(cpu(2000), "2");
        assert_eq!(cpu(250), "250m");
        assert_eq!(bytes(64 << 20), "64Mi");
        assert_eq!(bytes(16 << 30), "16.0Gi");
    }
}
