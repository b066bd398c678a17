//! Which objects a patch, replacement or generator merge is about: kustomize's selector of
//! group, version, kind, name, namespace, labels and annotations.

use regex::Regex;

use super::kustomization::Target;
use super::resource::Res;
use crate::selector::{Labels, Selector};

/// A target compiled once: names and namespaces are regular expressions matched against
/// the whole value, as kustomize matches them.
pub struct Matcher {
    group: Option<Regex>,
    version: Option<Regex>,
    kind: Option<Regex>,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: Option<Selector>,
    annotations: Option<Selector>,
}

impl Matcher {
    /// `Err` says which part of the target is not valid. Every part is a regular expression
    /// matched against the whole value, as in kustomize; an empty one matches anything.
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
        Ok(Self {
            group: regex("group", &target.group)?,
            version: regex("version", &target.version)?,
            kind: regex("kind", &target.kind)?,
            name: regex("name", &target.name)?,
            namespace: regex("namespace", &target.namespace)?,
            labels: selector("labelSelector", &target.label_selector)?,
            annotations: selector("annotationSelector", &target.annotation_selector)?,
        })
    }

    pub fn matches(&self, res: &Res) -> bool {
        let is = |re: &Option<Regex>, value: &str| re.as_ref().is_none_or(|re| re.is_match(value));
        // An object is selected by its current name or the one its file gave it, so an
        // overlay can name a base's object as the base wrote it. No namespace is `default`.
        let original = res.original();
        let namespace_is =
            |ns: &str| is(&self.namespace, ns) || (ns.is_empty() && is(&self.namespace, "default"));
        let labels_ok = self
            .labels
            .as_ref()
            .is_none_or(|s| s.matches(&as_labels(res.meta_map("labels"))));
        let annotations_ok = self
            .annotations
            .as_ref()
            .is_none_or(|s| s.matches(&as_labels(res.meta_map("annotations"))));
        is(&self.group, res.group())
            && is(&self.version, res.version())
            && is(&self.kind, res.kind())
            && (is(&self.name, res.name()) || is(&self.name, &original.name))
            && (namespace_is(res.namespace()) || namespace_is(&original.namespace))
            && labels_ok
            && annotations_ok
    }
}

fn as_labels(pairs: Vec<(String, String)>) -> Labels {
    pairs.into_iter().collect()
}
