//! Label selectors: the string form (`a=b,c!=d,e in (x,y),f notin (z),g,!h`) and the object
//! form (`matchLabels` + `matchExpressions`), compiled to one [`Selector`] that matches labels.
//!
//! As in Kubernetes: an empty selector matches everything, an absent (null) one matches
//! nothing; ReplicationController and Service selectors are plain maps (equality only).

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A set of labels: an object's, or what a selector asks for.
pub type Labels = crate::string_map::StringMap;

/// The object form, as in `apps/v1` `spec.selector`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct LabelSelector {
    pub match_labels: Option<Labels>,
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    #[serde(default)]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[serde(default)]
    pub operator: String,
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: BTreeSet<String>,
}

impl Requirement {
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            Op::Equals | Op::In => value.is_some_and(|v| self.values.contains(v)),
            Op::NotEquals | Op::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
        }
    }
}

/// A compiled selector. `None` requirements means "matches nothing" (a null selector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    requirements: Option<Vec<Requirement>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector {input:?}: {reason}")]
pub struct SelectorError {
    pub input: String,
    pub reason: String,
}

impl Selector {
    pub fn everything() -> Self {
        Self {
            requirements: Some(Vec::new()),
        }
    }

    pub fn nothing() -> Self {
        Self { requirements: None }
    }

    pub fn requirements(&self) -> &[Requirement] {
        self.requirements.as_deref().unwrap_or(&[])
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        match &self.requirements {
            None => false,
            Some(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }

    /// An equality selector from a plain map (ReplicationController and Service).
    pub fn from_map(map: &Labels) -> Self {
        Self {
            requirements: Some(
                map.iter()
                    .map(|(k, v)| Requirement {
                        key: k.clone(),
                        op: Op::Equals,
                        values: BTreeSet::from([v.clone()]),
                    })
                    .collect(),
            ),
        }
    }

    /// The object form; a null selector matches nothing. Operators other than
    /// In/NotIn/Exists/DoesNotExist are an error.
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        let Some(sel) = sel else {
            return Ok(Self::nothing());
        };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement {
                key: k.clone(),
                op: Op::Equals,
                values: BTreeSet::from([v.clone()]),
            });
        }
        for expr in sel.match_expressions.iter().flatten() {
            let op = match expr.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(SelectorError {
                        input: other.to_string(),
                        reason: "operator must be In, NotIn, Exists or DoesNotExist".to_string(),
                    });
                }
            };
            reqs.push(Requirement {
                key: expr.key.clone(),
                op,
                values: expr.values.iter().flatten().cloned().collect(),
            });
        }
        for r in &reqs {
            match r.op {
                Op::In | Op::NotIn if r.values.is_empty() => {
                    return Err(SelectorError {
                        input: r.key.clone(),
                        reason: "In and NotIn need at least one value".to_string(),
                    });
                }
                Op::Exists | Op::DoesNotExist if !r.values.is_empty() => {
                    return Err(SelectorError {
                        input: r.key.clone(),
                        reason: "Exists and DoesNotExist take no values".to_string(),
                    });
                }
                _ => {}
            }
        }
        reqs.sort();
        Ok(Self {
            requirements: Some(reqs),
        })
    }

    /// Parses the string form used on the command line and in the API (`?labelSelector=`).
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let fail = |reason: &str| SelectorError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let mut reqs = Vec::new();
        let mut rest = input.trim();
        while !rest.is_empty() {
            let (req, after) = parse_requirement(rest).map_err(|r| fail(&r))?;
            if let Some(why) = crate::validate::names::qualified_name(&req.key) {
                return Err(fail(&format!("key {:?}: {why}", req.key)));
            }
            if let Some((v, why)) = req
                .values
                .iter()
                .find_map(|v| crate::validate::names::label_value(v).map(|w| (v, w)))
            {
                return Err(fail(&format!("value {v:?}: {why}")));
            }
            reqs.push(req);
            rest = after.trim_start();
            if let Some(after_comma) = rest.strip_prefix(',') {
                rest = after_comma.trim_start();
                if rest.is_empty() {
                    return Err(fail("trailing comma"));
                }
            } else if !rest.is_empty() {
                return Err(fail(&format!("expected ',' before {rest:?}")));
            }
        }
        reqs.sort();
        Ok(Self {
            requirements: Some(reqs),
        })
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn take_token(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    s.split_at(end)
}

fn parse_requirement(s: &str) -> Result<(Requirement, &str), String> {
    let simple = |key: &str, op: Op, values: Vec<&str>| Requirement {
        key: key.to_string(),
        op,
        values: values.into_iter().map(str::to_string).collect(),
    };
    if let Some(after) = s.strip_prefix('!') {
        let (key, rest) = take_token(after.trim_start());
        if key.is_empty() {
            return Err("expected a label key after '!'".into());
        }
        return Ok((simple(key, Op::DoesNotExist, vec![]), rest));
    }
    let (key, rest) = take_token(s);
    if key.is_empty() {
        return Err(format!("expected a label key at {s:?}"));
    }
    let rest = rest.trim_start();
    let (op, after) = if let Some(a) = rest.strip_prefix("==") {
        (Op::Equals, a)
    } else if let Some(a) = rest.strip_prefix("!=") {
        (Op::NotEquals, a)
    } else if let Some(a) = rest.strip_prefix('=') {
        (Op::Equals, a)
    } else if let Some(a) = rest
        .strip_prefix("in")
        .filter(|a| a.trim_start().starts_with('('))
    {
        (Op::In, a)
    } else if let Some(a) = rest
        .strip_prefix("notin")
        .filter(|a| a.trim_start().starts_with('('))
    {
        (Op::NotIn, a)
    } else if rest.is_empty() || rest.starts_with(',') {
        return Ok((simple(key, Op::Exists, vec![]), rest));
    } else {
        return Err(format!("unexpected {rest:?} after key {key:?}"));
    };
    match op {
        Op::In | Op::NotIn => {
            let after = after.trim_start().strip_prefix('(').unwrap_or(after);
            let close = after.find(')').ok_or("missing ')'")?;
            let values: Vec<&str> = after[..close]
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            if let Some(bad) = values.iter().find(|v| !v.chars().all(is_token_char)) {
                return Err(format!("invalid value {bad:?}"));
            }
            if values.is_empty() {
                return Err(format!("{key:?} needs at least one value in ( )"));
            }
            Ok((simple(key, op, values), &after[close + 1..]))
        }
        _ => {
            let (value, rest) = take_token(after.trim_start());
            Ok((simple(key, op, vec![value]), rest))
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(reqs) = &self.requirements else {
            return f.write_str("<none>");
        };
        let parts: Vec<String> = reqs
            .iter()
            .map(|r| {
                let values = r.values.iter().cloned().collect::<Vec<_>>().join(",");
                match r.op {
                    Op::Equals => format!("{}={values}", r.key),
                    Op::NotEquals => format!("{}!={values}", r.key),
                    Op::In => format!("{} in ({values})", r.key),
                    Op::NotIn => format!("{} notin ({values})", r.key),
                    Op::Exists => r.key.clone(),
                    Op::DoesNotExist => format!("!{}", r.key),
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn string_form_table() {
        let web = labels(&[("app", "web"), ("tier", "front"), ("env", "prod")]);
        let table: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=api", false),
            ("app!=api", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("tier in (front, back)", true),
            ("tier in (back)", false),
            ("tier notin (back)", true),
            ("missing notin (x)", true),
            ("env", true),
            ("missing", false),
            ("!missing", true),
            ("!env", false),
            ("app=web,tier in (front),!canary,env", true),
            ("app=web, env=dev", false),
        ];
        for (input, want) in table {
            let sel = Selector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(sel.matches(&web), *want, "{input:?} against {web:?}");
        }
    }

    #[test]
    fn string_form_errors() {
        for bad in [
            "app=web,", "a in ()", "a in (x", "a >< b", "!", "=x", "a=b c=d", "-a=b", "a/b/c=x",
            "a=-x",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn object_form_and_null_versus_empty() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        assert!(!Selector::from_label_selector(None).unwrap().matches(&web));
        assert!(
            Selector::from_label_selector(Some(&LabelSelector::default()))
                .unwrap()
                .matches(&web)
        );
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["front".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let compiled = Selector::from_label_selector(Some(&sel)).unwrap();
        assert!(compiled.matches(&web));
        assert_eq!(compiled.to_string(), "app=web,!canary,tier in (front)");
        let bad = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Gt".into(),
                values: None,
            }]),
        };
        assert!(Selector::from_label_selector(Some(&bad)).is_err());
        assert!(Selector::from_map(&labels(&[("app", "web")])).matches(&web));
    }
}
