//! Aligned columns as kubectl prints them: a header in capitals, cells padded to the widest,
//! three spaces between columns, no trailing spaces.

pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (cell, w) in cells.zip(&widths) {
            s.push_str(cell);
            let pad = w.saturating_sub(cell.chars().count()) + 3;
            s.extend(std::iter::repeat_n(' ', pad));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_without_trailing_spaces() {
        let out = super::render(
            &["NAME", "READY", "STATUS"],
            &[
                vec!["web-1".into(), "1/1".into(), "Running".into()],
                vec!["a-much-longer-name".into(), "0/1".into(), "".into()],
            ],
        );
        assert_eq!(
            out,
            "NAME                 READY   STATUS\n\
             web-1                1/1     Running\n\
             a-much-longer-name   0/1\n"
        );
    }
}
