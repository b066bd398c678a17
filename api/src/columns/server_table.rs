//! The columns of a server-side Table: every column, each marked with whether only `-o wide`
//! shows it (kubectl's priority 1).

use chrono::{DateTime, Utc};
use keel_schema::types::apiextensions::CustomResourceColumnDefinition;
use keel_schema::{Kind, Object};

use super::{custom_table, table};

/// A server-side Table's columns for `kind`: each header with whether it is one only
/// `-o wide` shows, and a row per object with every column (`custom`: a custom kind's
/// printer columns from its definition).
pub fn all_columns<O: std::borrow::Borrow<Object>>(
    kind: Kind,
    objects: &[O],
    custom: &[CustomResourceColumnDefinition],
    now: DateTime<Utc>,
) -> (Vec<(String, bool)>, Vec<Vec<String>>) {
    let (narrow, wide, rows) = match kind {
        Kind::Custom(_) => {
            let narrow = custom_table::<Object>(&[], custom, false, now).0;
            let (wide, rows) = custom_table(objects, custom, true, now);
            (narrow, wide, rows)
        }
        _ => {
            let narrow = table::<Object>(kind, &[], false, now).0;
            let (wide, rows) = table(kind, objects, true, now);
            let owned = |h: Vec<&str>| h.into_iter().map(str::to_string).collect::<Vec<_>>();
            (owned(narrow), owned(wide), rows)
        }
    };
    // Wide columns follow the narrow ones; when they do not (a custom kind whose columns
    // are all wide shows NAME and AGE otherwise), every column is shown.
    let prefix = wide.starts_with(&narrow);
    let header = wide
        .into_iter()
        .enumerate()
        .map(|(i, h)| (h, prefix && i >= narrow.len()))
        .collect();
    (header, rows)
}
