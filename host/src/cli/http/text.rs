//! How the summaries are written: commands to paste next, and tables that
//! read like the rest of a summary.

use std::borrow::Cow;

use comfy_table::{presets, Table};

/// `s` as one shell word, so a printed command can be pasted as is.
pub(in crate::cli) fn sh(s: &str) -> Cow<'_, str> {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@%+=,".contains(c));
    if plain {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

/// Rows (under a header, if any) as left-aligned columns two spaces apart,
/// indented by two, one line each with no trailing spaces: a table without
/// borders, so that it reads like the rest of the summary and greps by
/// line.
pub(in crate::cli) fn table(header: Option<&[&str]>, rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut t = Table::new();
    // No borders; each cell padded by one space each side, so columns are
    // two apart. The first column gets one more on its left: the indent.
    t.load_style(presets::NOTHING);
    if let Some(h) = header {
        t.set_header(h.to_vec());
    }
    t.add_rows(rows);
    if let Some(first) = t.column_mut(0) {
        first.set_padding((2, 1));
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let rows = vec![
            vec!["a".to_owned(), "bb".to_owned(), "c".to_owned()],
            vec!["dddd".to_owned(), String::new(), "é".to_owned()],
        ];
        assert_eq!(table(None, &rows), "  a     bb  c\n  dddd      é\n");
        assert_eq!(
            table(Some(&["H", "", "LONGER"]), &rows),
            "  H         LONGER\n  a     bb  c\n  dddd      é\n"
        );
        assert_eq!(table(None, &[]), "");
        assert_eq!(table(Some(&["H"]), &[]), "", "no header without rows");
    }

    #[test]
    fn shell_words() {
        assert_eq!(sh("bp-1"), "bp-1");
        assert_eq!(sh("a b"), "'a b'");
        assert_eq!(sh("t 4"), "'t 4'");
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(sh(""), "''");
    }
}
