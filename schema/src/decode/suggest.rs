//! "Did you mean": the known field closest to an unknown one.

/// The known field closest to a misspelt one: same letters ignoring case, or at most two
/// edits away.
pub(super) fn suggest(name: &str, fields: &[&'static str]) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    fields
        .iter()
        .map(|f| (edit_distance(&lower, &f.to_ascii_lowercase()), *f))
        .filter(|(d, f)| *d <= 2.min(f.len() / 3 + 1))
        .min()
        .map(|(_, f)| f)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("imagee", &["image", "name"]), Some("image"));
        assert_eq!(
            suggest("containerport", &["containerPort"]),
            Some("containerPort")
        );
        assert_eq!(suggest("zzz", &["image", "name"]), None);
    }
}
