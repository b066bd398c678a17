//! Value checks containers and volumes share: resource quantities and relative paths.

use super::super::Errors;
use crate::path::FieldPath;
use crate::quantity::{Quantity, QuantityError};

/// Parses a quantity for validation: CPU in millicores, anything else in whole units.
pub(super) fn check_quantity(
    q: &Quantity,
    resource: &str,
    path: &FieldPath,
    errs: &mut Errors,
) -> Option<i64> {
    let parsed = if resource == "cpu" {
        q.millis()
    } else {
        q.value()
    };
    match parsed {
        Ok(v) if v < 0 => {
            errs.invalid(path, q.as_str(), "must be greater than or equal to 0");
            None
        }
        Ok(v) => Some(v),
        Err(e @ (QuantityError::Malformed | QuantityError::TooLarge)) => {
            errs.invalid(path, q.as_str(), e);
            None
        }
    }
}

/// A path inside a volume: relative, and never climbing out of it.
pub(super) fn check_relative_path(p: &str, path: &FieldPath, errs: &mut Errors) {
    if p.starts_with('/') {
        errs.invalid(path, p, "must be a relative path");
    } else if p.split('/').any(|part| part == "..") {
        errs.invalid(path, p, "must not contain '..'");
    }
}
