//! Kubernetes resource quantities (`250m`, `0.5`, `128Mi`, `1G`, `1e3`), parsed exactly into
//! integers: millicores for CPU, bytes for memory. No step goes through a float.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A quantity as written in the manifest. Parsing happens on use ([`Quantity::millis`],
/// [`Quantity::value`]) and in validation, which reports a malformed quantity with its path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Quantity(pub String);

impl Quantity {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The quantity times 1000, rounded up (CPU in millicores), as Kubernetes' `MilliValue`.
    pub fn millis(&self) -> Result<i64, QuantityError> {
        parse(&self.0)?.scaled_ceil(3)
    }

    /// The quantity rounded up to a whole number (memory in bytes), as Kubernetes' `Value`.
    pub fn value(&self) -> Result<i64, QuantityError> {
        parse(&self.0)?.scaled_ceil(0)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Malformed,
    #[error("quantity is too large")]
    TooLarge,
}

/// Significant digits kept exactly (i128 holds 38).
const MAX_DIGITS: usize = 36;

/// `digits × 10^exp10 × 1024^pow1024`, exactly, plus a little more when `truncated`.
struct Parsed {
    digits: i128,
    exp10: i32,
    pow1024: u32,
    /// Nonzero digits beyond [`MAX_DIGITS`] were dropped (the value is slightly larger).
    truncated: bool,
}

fn parse(text: &str) -> Result<Parsed, QuantityError> {
    let text = text.trim();
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    // A sign may only lead; `1e-3` has its sign in the suffix part.
    let (number, suffix) = text.split_at(number_end);
    let (negative, whole, frac) = split_number(number)?;
    // Trailing fractional zeros say nothing; fractional digits beyond what i128 holds are
    // dropped and remembered, so the result still rounds up as Kubernetes does.
    let frac = frac.trim_end_matches('0');
    let whole = whole.trim_start_matches('0');
    let keep = MAX_DIGITS.saturating_sub(whole.len()).min(frac.len());
    let truncated = frac[keep..].chars().any(|c| c != '0');
    let frac = &frac[..keep];
    let mut digits = decimal_digits(whole, frac)?;
    if negative {
        digits = -digits;
    }
    let frac_len = i32::try_from(frac.len()).map_err(|_| QuantityError::TooLarge)?;
    let (exp10, pow1024) = parse_suffix(suffix)?;
    Ok(Parsed {
        digits,
        exp10: exp10.checked_sub(frac_len).ok_or(QuantityError::TooLarge)?,
        pow1024,
        truncated,
    })
}

/// `-12.50` → (negative, "12", "50"): an optional leading sign, digits, at most one dot.
fn split_number(number: &str) -> Result<(bool, &str, &str), QuantityError> {
    let (negative, unsigned) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    if unsigned.is_empty()
        || unsigned.contains(['+', '-'])
        || unsigned.matches('.').count() > 1
        || unsigned == "."
    {
        return Err(QuantityError::Malformed);
    }
    let (whole, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if !whole
        .chars()
        .chain(frac.chars())
        .all(|c| c.is_ascii_digit())
    {
        return Err(QuantityError::Malformed);
    }
    Ok((negative, whole, frac))
}

/// The whole and fractional digits read as one integer.
fn decimal_digits(whole: &str, frac: &str) -> Result<i128, QuantityError> {
    let mut digits: i128 = 0;
    for c in whole.chars().chain(frac.chars()) {
        let d = i128::from(c.to_digit(10).ok_or(QuantityError::Malformed)?);
        digits = digits
            .checked_mul(10)
            .and_then(|v| v.checked_add(d))
            .ok_or(QuantityError::TooLarge)?;
    }
    Ok(digits)
}

/// A suffix as (power of ten, power of 1024): SI, binary, or a decimal exponent.
fn parse_suffix(suffix: &str) -> Result<(i32, u32), QuantityError> {
    Ok(match suffix {
        "" => (0, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        s if s.starts_with(['e', 'E']) => {
            let exp = &s[1..];
            let body = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit()) {
                return Err(QuantityError::Malformed);
            }
            (exp.parse::<i32>().map_err(|_| QuantityError::TooLarge)?, 0)
        }
        _ => return Err(QuantityError::Malformed),
    })
}

impl Parsed {
    /// `ceil(value × 10^extra)` as an i64.
    fn scaled_ceil(&self, extra: i32) -> Result<i64, QuantityError> {
        let mut numerator = self.digits;
        for _ in 0..self.pow1024 {
            numerator = numerator.checked_mul(1024).ok_or(QuantityError::TooLarge)?;
        }
        let exp = self.exp10.saturating_add(extra);
        let result = if exp >= 0 {
            if numerator == 0 {
                0
            } else {
                let scale = 10i128
                    .checked_pow(exp.unsigned_abs())
                    .ok_or(QuantityError::TooLarge)?;
                let whole = numerator
                    .checked_mul(scale)
                    .ok_or(QuantityError::TooLarge)?;
                whole + i128::from(self.truncated)
            }
        } else {
            match 10i128.checked_pow(exp.unsigned_abs()) {
                Some(den) => {
                    let q = numerator.div_euclid(den);
                    let exact = numerator.rem_euclid(den) == 0 && !self.truncated;
                    if exact { q } else { q + 1 }
                }
                // Smaller than any representable unit: rounds up to 1 when positive.
                None => i128::from(numerator > 0 || self.truncated),
            }
        };
        i64::try_from(result).map_err(|_| QuantityError::TooLarge)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as 250m, 0.5 or 128Mi")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A resource quantity such as 250m, 0.5, 2, 128Mi or 1G.",
            "anyOf": [
                {"type": "string", "pattern": "^[+-]?[0-9.]+([eE][-+]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"},
                {"type": "number"}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<i64, QuantityError>;

    #[test]
    fn parses_exactly() {
        let table: &[(&str, Parsed, Parsed)] = &[
            // text, millis, value
            ("250m", Ok(250), Ok(1)),
            ("0.5", Ok(500), Ok(1)),
            ("2", Ok(2000), Ok(2)),
            ("1.5", Ok(1500), Ok(2)),
            ("128Mi", Ok(134_217_728_000), Ok(134_217_728)),
            ("1G", Ok(1_000_000_000_000), Ok(1_000_000_000)),
            ("1e3", Ok(1_000_000), Ok(1000)),
            ("1E3", Ok(1_000_000), Ok(1000)),
            ("1e-3", Ok(1), Ok(1)),
            ("0.1m", Ok(1), Ok(1)),
            ("100n", Ok(1), Ok(1)),
            ("0.000001", Ok(1), Ok(1)),
            ("1.25Ki", Ok(1_280_000), Ok(1280)),
            ("0", Ok(0), Ok(0)),
            ("-1", Ok(-1000), Ok(-1)),
            (".5", Ok(500), Ok(1)),
            ("5.", Ok(5000), Ok(5)),
            ("0.3333333333333333333333333", Ok(334), Ok(1)),
            ("1e-50", Ok(1), Ok(1)),
            (
                "0.10000000000000000000000000000000000000000",
                Ok(100),
                Ok(1),
            ),
            (
                "1.0000000000000000000000000000000000000001",
                Ok(1001),
                Ok(2),
            ),
            (
                "1.5e-2147483648",
                Err(QuantityError::TooLarge),
                Err(QuantityError::TooLarge),
            ),
            ("007", Ok(7000), Ok(7)),
            (
                "12x",
                Err(QuantityError::Malformed),
                Err(QuantityError::Malformed),
            ),
            (
                "1K",
                Err(QuantityError::Malformed),
                Err(QuantityError::Malformed),
            ),
            (
                "",
                Err(QuantityError::Malformed),
                Err(QuantityError::Malformed),
            ),
            (
                "1..2",
                Err(QuantityError::Malformed),
                Err(QuantityError::Malformed),
            ),
            (
                "--1",
                Err(QuantityError::Malformed),
                Err(QuantityError::Malformed),
            ),
            (
                "1e",
                Err(QuantityError::Malformed),
                Err(QuantityError::Malformed),
            ),
            (
                "Mi",
                Err(QuantityError::Malformed),
                Err(QuantityError::Malformed),
            ),
            (
                "1e40",
                Err(QuantityError::TooLarge),
                Err(QuantityError::TooLarge),
            ),
            (
                "9Ei",
                Err(QuantityError::TooLarge),
                Err(QuantityError::TooLarge),
            ),
        ];
        for (text, millis, value) in table {
            let q = Quantity::new(*text);
            assert_eq!(&q.millis(), millis, "millis of {text:?}");
            assert_eq!(&q.value(), value, "value of {text:?}");
        }
    }
}
