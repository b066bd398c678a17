//! A `kustomization.yaml` (or `.yml`, or `Kustomization`): its fields as kustomize v5 reads
//! them, the deprecated ones included, decoded with located problems.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::decode::decode;
use crate::yaml::{Mark, Node};

/// The names a kustomization file may have, in the order kustomize looks for them.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields kustomize knows that keel does not render, with why.
const REFUSED: [(&str, &str); 11] = [
    (
        "buildMetadata",
        "buildMetadata (origin annotations) is not supported by keel",
    ),
    (
        "helmCharts",
        "Helm charts are not rendered by keel; commit the rendered chart",
    ),
    (
        "helmChartInflationGenerator",
        "Helm charts are not rendered by keel; commit the rendered chart",
    ),
    (
        "helmGlobals",
        "Helm charts are not rendered by keel; commit the rendered chart",
    ),
    (
        "vars",
        "vars are deprecated in kustomize v5 and not supported by keel; use replacements",
    ),
    (
        "generators",
        "generator plugins run programs; keel renders only built-in fields",
    ),
    (
        "transformers",
        "transformer plugins run programs; keel renders only built-in fields",
    ),
    (
        "validators",
        "validator plugins run programs; keel renders only built-in fields",
    ),
    (
        "configurations",
        "custom transformer configurations are not supported by keel",
    ),
    (
        "openapi",
        "custom OpenAPI schemas are not supported by keel",
    ),
    (
        "crds",
        "crds (schema files for patches) are not supported by keel",
    ),
];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kustomization {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<crate::types::meta::ObjectMeta>,
    pub resources: Option<Vec<String>>,
    /// Deprecated: the same as `resources`.
    pub bases: Option<Vec<String>>,
    pub components: Option<Vec<String>>,
    pub namespace: Option<String>,
    pub name_prefix: Option<String>,
    pub name_suffix: Option<String>,
    pub common_labels: Option<BTreeMap<String, String>>,
    pub labels: Option<Vec<Labels>>,
    pub common_annotations: Option<BTreeMap<String, String>>,
    pub patches: Option<Vec<Patch>>,
    /// Deprecated: paths to (or inline) strategic merge patches.
    pub patches_strategic_merge: Option<Vec<String>>,
    /// Deprecated: JSON 6902 patches with their targets.
    pub patches_json6902: Option<Vec<Patch>>,
    pub images: Option<Vec<Image>>,
    pub replicas: Option<Vec<Replicas>>,
    pub config_map_generator: Option<Vec<Generator>>,
    pub secret_generator: Option<Vec<Generator>>,
    pub generator_options: Option<GeneratorOptions>,
    pub replacements: Option<Vec<Replacement>>,
    pub sort_options: Option<SortOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Labels {
    pub pairs: Option<BTreeMap<String, String>>,
    pub include_selectors: Option<bool>,
    pub include_templates: Option<bool>,
    /// Custom field specs: refused (keel applies kustomize's built-in ones).
    pub fields: Option<Vec<FieldSpec>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Patch {
    pub path: Option<String>,
    pub patch: Option<String>,
    pub target: Option<Target>,
    pub options: Option<PatchOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchOptions {
    pub allow_name_change: Option<bool>,
    pub allow_kind_change: Option<bool>,
}

/// Which objects a patch or replacement applies to. Every field given must match; `name`
/// and `namespace` are regular expressions matching the whole value.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub annotation_selector: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub name: Option<String>,
    pub new_name: Option<String>,
    pub new_tag: Option<String>,
    /// Refused: not supported by keel.
    pub tag_suffix: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Replicas {
    pub name: Option<String>,
    pub count: Option<i64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Generator {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub behavior: Option<String>,
    pub files: Option<Vec<String>>,
    pub literals: Option<Vec<String>>,
    pub envs: Option<Vec<String>>,
    /// Deprecated: one env file.
    pub env: Option<String>,
    /// A Secret's type (Opaque by default).
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub options: Option<GeneratorOptions>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorOptions {
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub disable_name_suffix_hash: Option<bool>,
    pub immutable: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Replacement {
    pub path: Option<String>,
    pub source: Option<Source>,
    pub targets: Option<Vec<ReplacementTarget>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub field_path: Option<String>,
    pub options: Option<FieldOptions>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementTarget {
    pub select: Option<Target>,
    pub reject: Option<Vec<Target>>,
    pub field_paths: Option<Vec<String>>,
    pub options: Option<FieldOptions>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct FieldOptions {
    pub delimiter: Option<String>,
    pub index: Option<i64>,
    pub create: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SortOptions {
    pub order: Option<String>,
    /// Refused: keel sorts in kustomize's default legacy order.
    pub legacy_sort_options: Option<LegacySortOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacySortOptions {
    pub order_first: Option<Vec<String>>,
    pub order_last: Option<Vec<String>>,
}

/// A custom field spec (`labels[].fields`), refused.
#[derive(Debug, Default, Deserialize)]
pub struct FieldSpec {
    pub path: Option<String>,
    pub kind: Option<String>,
    pub group: Option<String>,
    pub version: Option<String>,
    pub create: Option<bool>,
}

/// A problem in a kustomization, located in its file.
#[derive(Debug, Clone)]
pub struct Problem {
    pub mark: Mark,
    pub field: Option<String>,
    pub message: String,
}

/// Reads a kustomization's root node: its fields, and every problem with them (unknown
/// fields, fields keel does not render, wrong types, a kind that is not a Kustomization or
/// a Component).
pub fn read(root: &Node, component: bool) -> (Kustomization, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut kept = root.clone();
    if let crate::yaml::Value::Map(entries) = &mut kept.value {
        entries.retain(|(key, _)| {
            let Some(name) = key.as_str() else {
                return true;
            };
            match REFUSED.iter().find(|(field, _)| *field == name) {
                Some((field, why)) => {
                    problems.push(Problem {
                        mark: key.mark,
                        field: Some(field.to_string()),
                        message: format!("Forbidden: {why}"),
                    });
                    false
                }
                None => true,
            }
        });
    } else {
        problems.push(Problem {
            mark: root.mark,
            field: None,
            message: format!(
                "expected a kustomization (a mapping), found {}",
                root.describe()
            ),
        });
        return (Kustomization::default(), problems);
    }
    let (k, issues) = decode::<Kustomization>(&kept);
    for issue in issues {
        problems.push(Problem {
            mark: issue.mark,
            field: (!issue.path.is_empty()).then(|| issue.path.to_string()),
            message: issue.message,
        });
    }
    let k = k.unwrap_or_default();
    let mut refuse = |path: crate::path::FieldPath, why: &str| {
        problems.push(Problem {
            mark: path.locate(root),
            field: Some(path.to_string()),
            message: format!("Forbidden: {why}"),
        });
    };
    use crate::path::FieldPath;
    for (i, l) in k.labels.iter().flatten().enumerate() {
        if l.fields.is_some() {
            refuse(
                FieldPath::new("labels").index(i).field("fields"),
                "custom field specs are not supported by keel",
            );
        }
    }
    for (i, image) in k.images.iter().flatten().enumerate() {
        if image.tag_suffix.is_some() {
            refuse(
                FieldPath::new("images").index(i).field("tagSuffix"),
                "tagSuffix is not supported by keel",
            );
        }
    }
    if let Some(sort) = &k.sort_options {
        let at = FieldPath::new("sortOptions");
        if sort.legacy_sort_options.is_some() {
            refuse(
                at.field("legacySortOptions"),
                "custom sort orders are not supported by keel",
            );
        }
        if let Some(order) = sort
            .order
            .as_deref()
            .filter(|o| !matches!(*o, "legacy" | "fifo"))
        {
            problems.push(Problem {
                mark: at.field("order").locate(root),
                field: Some(at.field("order").to_string()),
                message: format!(
                    "Unsupported value: {order:?}: supported values: \"legacy\", \"fifo\""
                ),
            });
        }
    }
    let kind = k.kind.as_deref().unwrap_or("Kustomization");
    let expected = if component {
        "Component"
    } else {
        "Kustomization"
    };
    if kind != expected {
        let mark = root.get("kind").map_or(root.mark, |n| n.mark);
        let message = if component {
            format!("Invalid value: {kind:?}: a component's kind must be Component")
        } else if kind == "Component" {
            "Invalid value: \"Component\": a component is listed under a kustomization's components, not built on its own or as a resource".to_string()
        } else {
            format!("Invalid value: {kind:?}: expected Kustomization")
        };
        problems.push(Problem {
            mark,
            field: Some("kind".into()),
            message,
        });
    }
    (k, problems)
}
