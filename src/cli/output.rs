//! Tables on a terminal, plain aligned text elsewhere, JSON on request.
//!
//! Text from a CRM or an import file reaches human-readable output only
//! through [`text`] (or a [`table`] cell, which escapes too): a record name
//! holding an ANSI escape or a control character would otherwise move the
//! cursor, retitle or clear the admin's terminal. JSON keeps text exact.

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

/// `value` with every character a terminal would act on written as a
/// visible escape: control characters (C0 with tab and newlines, DEL, C1)
/// as `\xNN` (`\n`, `\r`, `\t` as such), and the bidirectional controls
/// that reorder what follows them as `\u{NNNN}`.
pub fn text(value: &str) -> Cow<'_, str> {
    escape(value, false)
}

/// As [`text`], keeping line breaks: for a table cell that is several lines
/// on purpose.
fn multiline(value: &str) -> Cow<'_, str> {
    escape(value, true)
}

fn escape(value: &str, keep_newlines: bool) -> Cow<'_, str> {
    let acts = |c: char| (c.is_control() && !(keep_newlines && c == '\n')) || is_bidi_control(c);
    if !value.chars().any(acts) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            _ if !acts(c) => escaped.push(c),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if u32::from(c) <= 0xff => {
                let _ = write!(escaped, "\\x{:02x}", u32::from(c));
            }
            c => {
                let _ = write!(escaped, "\\u{{{:04x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(escaped)
}

/// The Unicode controls that reorder the text around them (the "Trojan
/// Source" characters): they make a terminal show other text than is there.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A table of `rows` under `headers`; every cell is escaped as [`text`]
/// does, line breaks kept.
pub fn table<R, C>(headers: &[&str], rows: R) -> String
where
    R: IntoIterator<Item = C>,
    C: IntoIterator<Item = String>,
{
    let mut table = Table::new();
    if std::io::stdout().is_terminal() {
        table
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        table.load_preset(presets::NOTHING);
    }
    table.set_header(headers.iter().copied());
    for row in rows {
        table.add_row(
            row.into_iter()
                .map(|cell| multiline(&cell).into_owned())
                .collect::<Vec<_>>(),
        );
    }
    table.to_string()
}

/// Written to stdout as it is encoded: a large report is never held twice,
/// as values and as text.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// The value, escaped as [`text`] does, or `-`.
pub fn opt(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| text(&v.to_string()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_passes_through_unchanged_and_unallocated() {
        let name = "Acme GmbH – Erweiterung 2027 (€48k) \"pilot\"";
        assert!(matches!(text(name), Cow::Borrowed(n) if n == name));
    }

    #[test]
    fn ansi_escapes_and_control_characters_are_shown_not_obeyed() {
        assert_eq!(
            text("Acme\u{1b}]0;owned\u{7}\u{1b}[2J\r\n\tx\u{7f}\u{9b}31m\0"),
            "Acme\\x1b]0;owned\\x07\\x1b[2J\\r\\n\\tx\\x7f\\x9b31m\\x00"
        );
    }

    #[test]
    fn bidirectional_overrides_are_shown_not_obeyed() {
        assert_eq!(
            text("invoice\u{202e}fdp.exe\u{2066}"),
            "invoice\\u{202e}fdp.exe\\u{2066}"
        );
    }

    #[test]
    fn a_table_cell_keeps_its_line_breaks_and_escapes_the_rest() {
        let out = table(&["NAME"], [vec!["one\ntwo\u{1b}[1m".to_owned()]]);
        assert!(out.contains("two\\x1b[1m"), "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
        assert!(out.contains("one"), "{out}");
    }
}
