//! How cells show values: kubectl's short ages and `<none>`.

/// kubectl's short ages: `45s`, `12m`, `5h`, `3d`.
pub fn human_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..10_800 => format!("{}m", s / 60),
        10_800..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `text`, or `<none>` when it is empty, as kubectl shows missing values.
pub fn or_none(text: String) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_are_short() {
        let s = chrono::Duration::seconds;
        assert_eq!(super::human_duration(s(5)), "5s");
        assert_eq!(super::human_duration(s(600)), "10m");
        assert_eq!(super::human_duration(s(5 * 3600)), "5h");
        assert_eq!(super::human_duration(s(3 * 86_400)), "3d");
    }
}
