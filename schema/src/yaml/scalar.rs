//! Resolution of plain scalars, following YAML 1.1 as Kubernetes' own YAML reader does
//! (so `defaultMode: 0644` is octal 420 and `yes` is a boolean where a boolean is asked for).

/// `~`, `null` and the empty plain scalar are null.
pub fn resolve_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

pub fn resolve_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "y" | "Y" | "on" | "On" | "ON" => {
            Some(true)
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "n" | "N" | "off" | "Off" | "OFF" => {
            Some(false)
        }
        _ => None,
    }
}

/// Integers: decimal, `0x` hex, `0b` binary, `0o` or leading-zero octal, `_` separators.
/// `None` when the text is not an integer or does not fit in an `i64`.
pub fn resolve_int(text: &str) -> Option<i64> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(rest) = body.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = body.strip_prefix("0b") {
        (2, rest)
    } else if let Some(rest) = body.strip_prefix("0o") {
        (8, rest)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    let cleaned: String = digits.chars().filter(|c| *c != '_').collect();
    if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(&cleaned, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_yaml_1_1() {
        let table: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("42", Some(42)),
            ("-7", Some(-7)),
            ("+7", Some(7)),
            ("0644", Some(420)),
            ("0o644", Some(420)),
            ("0x1F", Some(31)),
            ("0b101", Some(5)),
            ("1_000", Some(1000)),
            ("09", None),
            ("1.5", None),
            ("1e3", None),
            ("", None),
            ("-", None),
            ("abc", None),
            ("99999999999999999999", None),
        ];
        for (text, want) in table {
            assert_eq!(resolve_int(text), *want, "resolve_int({text:?})");
        }
    }

    #[test]
    fn booleans_and_nulls() {
        assert_eq!(resolve_bool("true"), Some(true));
        assert_eq!(resolve_bool("off"), Some(false));
        assert_eq!(resolve_bool("maybe"), None);
        assert!(resolve_null("~") && resolve_null("") && !resolve_null("nil"));
    }
}
