//! `IntOrString`: a port number or port name (`targetPort`), a count or a percentage
//! (`maxSurge`).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::Str(s) => f.write_str(s),
        }
    }
}

/// A malformed percentage such as `25` written as a string or `abc%`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')"
)]
pub struct PercentError;

impl IntOrString {
    /// The percentage, when this is a string like `25%`.
    pub fn percent(&self) -> Option<Result<i64, PercentError>> {
        match self {
            IntOrString::Int(_) => None,
            IntOrString::Str(s) => Some(
                s.strip_suffix('%')
                    .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                    .and_then(|d| d.parse::<i64>().ok())
                    .ok_or(PercentError),
            ),
        }
    }

    /// The absolute value against `total`, as Kubernetes' `GetScaledValueFromIntOrPercent`:
    /// a percentage is rounded up or down as asked.
    pub fn scaled(&self, total: i64, round_up: bool) -> Result<i64, PercentError> {
        match self {
            IntOrString::Int(i) => Ok(*i),
            IntOrString::Str(_) => {
                let pct = i128::from(self.percent().unwrap_or(Err(PercentError))?);
                let product = pct * i128::from(total);
                let scaled = if round_up {
                    (product + 99).div_euclid(100)
                } else {
                    product.div_euclid(100)
                };
                Ok(i64::try_from(scaled).unwrap_or(if scaled < 0 { i64::MIN } else { i64::MAX }))
            }
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => s.serialize_i64(*i),
            IntOrString::Str(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom(format!("number {v} is out of range")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for IntOrString {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IntOrString".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A number, or a name (ports) or percentage (rollouts).",
            "anyOf": [{"type": "integer"}, {"type": "string"}]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_scale_like_kubernetes() {
        let pct = IntOrString::Str("25%".into());
        assert_eq!(pct.scaled(10, true), Ok(3));
        assert_eq!(pct.scaled(10, false), Ok(2));
        assert_eq!(IntOrString::Int(4).scaled(10, true), Ok(4));
        let huge = IntOrString::Str("9223372036854775807%".into());
        assert_eq!(
            huge.scaled(i64::MAX, true),
            Ok(i64::MAX),
            "saturates, never overflows"
        );
        assert_eq!(
            IntOrString::Str("x%".into()).scaled(10, true),
            Err(PercentError)
        );
        assert_eq!(
            IntOrString::Str("25".into()).percent(),
            Some(Err(PercentError))
        );
    }
}
