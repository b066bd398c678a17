//! Which objects a patch, replacement or generator merge is about: kustomize's selector of
//! group, version, kind, name, namespace, labels and annotations.

use regex::Regex;

use super::kustomization::Target;
use super::resource::Res;
use crate::selector::{Labels, Selector};

/// A target compiled once: names and namespaces are regular expressions matched against
/// the whole value, as kustomize matches them.
pub struct Matcher {
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: Option<Selector>,
    annotations: Option<Selector>,
}

impl Matcher {
    /// `Err` says which part of the target is not valid.
    pub fn new(target: &Target) -> Result<Self, String> {
        let regex = |field: &str, text: &Option<String>| -> Result<Option<Regex>, String> {
            text.as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| {
                    Regex::new(&format!("^(?:{t})$")).map_err(|e| {
                        // The regex crate's message spans lines; its last says what is wrong.
                        let why = e.to_string();
                        let why = why
                            .lines()
                            .last()
                            .unwrap_or_default()
                            .trim_start_matches("error: ")
                            .to_string();
                        format!("target.{field} {t:?} is not a regular expression: {why}")
                    })
                })
                .transpose()
        };
        let selector = |field: &str, text: &Option<String>| -> Result<Option<Selector>, String> {
            text.as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| Selector::parse(t).map_err(|e| format!("target.{field}: {e}")))
                .transpose()
        };
        let nonempty = |t: &Option<String>| t.clone().filter(|t| !t.is_empty());
        Ok(Self {
            group: target.group.clone(),
            version: nonempty(&target.version),
            kind: nonempty(&target.kind),
            name: regex("name", &target.name)?,
            namespace: regex("namespace", &target.namespace)?,
            labels: selector("labelSelector", &target.label_selector)?,
            annotations: selector("annotationSelector", &target.annotation_selector)?,
        })
    }

    pub fn matches(&self, res: &Res) -> bool {
        let group_ok = self.group.as_deref().is_none_or(|g| g == res.group());
        let version_ok = self.version.as_deref().is_none_or(|v| v == res.version());
        let kind_ok = self.kind.as_deref().is_none_or(|k| k == res.kind());
        // An object is selected by its current name or any it had, so an overlay can name a
        // base's object as the base wrote it.
        let name_ok = self.name.as_ref().is_none_or(|re| {
            re.is_match(res.name()) || res.history.iter().any(|h| re.is_match(&h.name))
        });
        let ns_ok = self.namespace.as_ref().is_none_or(|re| {
            re.is_match(res.namespace()) || res.history.iter().any(|h| re.is_match(&h.namespace))
        });
        let labels_ok = self
            .labels
            .as_ref()
            .is_none_or(|s| s.matches(&as_labels(res.meta_map("labels"))));
        let annotations_ok = self
            .annotations
            .as_ref()
            .is_none_or(|s| s.matches(&as_labels(res.meta_map("annotations"))));
        group_ok && version_ok && kind_ok && name_ok && ns_ok && labels_ok && annotations_ok
    }
}

fn as_labels(pairs: Vec<(String, String)>) -> Labels {
    pairs.into_iter().collect()
}
