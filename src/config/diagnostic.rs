//! Config errors as admins read them: `file:line:col: message` and the
//! offending line, every problem of both files at once.
//!
//! Validation records problems as byte offsets ([`Sink`]); they become
//! line:col [`Diagnostic`]s only at the end, once every secret value found in
//! the text is known and can be masked in the lines shown.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use thiserror::Error;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in chars.
    pub col: usize,
    pub message: String,
    /// The line the problem is on, with any secret value masked.
    pub source_line: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )?;
        writeln!(f, "    | {}", self.source_line)
    }
}

/// Every problem found in the daemon config and its journey, daemon config
/// first, each file in line order.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigErrors {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.diagnostics {
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Which of the two files a problem is in; the order is the report's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum FileId {
    Daemon,
    Journey,
}

/// A config file's text, as read once by `load`.
#[derive(Debug)]
pub(super) struct SourceFile {
    pub id: FileId,
    /// As given (daemon config) or as joined to it (journey).
    pub path: PathBuf,
    pub text: String,
}

#[derive(Debug)]
struct Pending {
    file: FileId,
    offset: usize,
    message: String,
}

/// Collects problems from every stage of loading.
#[derive(Debug, Default)]
pub(super) struct Sink {
    pending: Vec<Pending>,
    /// Byte ranges of secret values, never to be shown.
    masks: Vec<(FileId, Range<usize>)>,
}

impl Sink {
    pub fn error(&mut self, file: FileId, offset: usize, message: impl Into<String>) {
        self.pending.push(Pending {
            file,
            offset,
            message: message.into(),
        });
    }

    /// Hides `span` of `file` in every line shown.
    pub fn mask(&mut self, file: FileId, span: Range<usize>) {
        self.masks.push((file, span));
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Resolves offsets to line:col in `files`, in report order. A problem in
    /// a file that was never read (cannot happen by construction) is shown at
    /// 1:1 with no line.
    pub fn finish(self, files: &[&SourceFile]) -> Vec<Diagnostic> {
        let mut diagnostics: Vec<(FileId, Diagnostic)> = self
            .pending
            .into_iter()
            .map(|pending| {
                let file = files.iter().find(|f| f.id == pending.file);
                let masks: Vec<Range<usize>> = self
                    .masks
                    .iter()
                    .filter(|(id, _)| *id == pending.file)
                    .map(|(_, span)| span.clone())
                    .collect();
                let diagnostic = match file {
                    Some(file) => locate(file, pending.offset, pending.message, &masks),
                    None => Diagnostic {
                        file: PathBuf::new(),
                        line: 1,
                        col: 1,
                        message: pending.message,
                        source_line: String::new(),
                    },
                };
                (pending.file, diagnostic)
            })
            .collect();
        diagnostics.sort_by(|(a, x), (b, y)| (a, x.line, x.col).cmp(&(b, y.line, y.col)));
        diagnostics.into_iter().map(|(_, d)| d).collect()
    }
}

/// Messages start lowercase, whatever the library that wrote them says; a
/// trailing period goes too.
pub(super) fn lowercase_first(message: &str) -> String {
    let message = message.trim().trim_end_matches('.');
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The 1-based line `offset` is on.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn locate(file: &SourceFile, offset: usize, message: String, masks: &[Range<usize>]) -> Diagnostic {
    let text = &file.text;
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |at| at + 1);
    let line_end = text[offset..]
        .find('\n')
        .map_or(text.len(), |at| offset + at);
    let line = text[..line_start].matches('\n').count() + 1;
    let col = text[line_start..offset].chars().count() + 1;
    Diagnostic {
        file: file.path.clone(),
        line,
        col,
        message,
        source_line: masked_line(text, line_start..line_end, masks)
            .trim_end_matches('\r')
            .to_owned(),
    }
}

/// The line with every masked span that touches it replaced by `"***"`; a
/// span running past the line's end masks the rest of the line.
fn masked_line(text: &str, line: Range<usize>, masks: &[Range<usize>]) -> String {
    let mut spans: Vec<Range<usize>> = masks
        .iter()
        .filter(|m| m.start < line.end && m.end > line.start)
        .map(|m| m.start.max(line.start)..m.end.min(line.end))
        .collect();
    spans.sort_by_key(|s| s.start);
    let mut out = String::new();
    let mut at = line.start;
    for span in spans {
        if span.start >= at {
            out.push_str(&text[at..span.start]);
            out.push_str("\"***\"");
        }
        at = at.max(span.end);
    }
    out.push_str(&text[at..line.end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile {
            id: FileId::Daemon,
            path: "journeyd.toml".into(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn columns_count_chars_not_bytes() {
        let file = file("a = 1\nname = \"Büro\" x\n");
        let at = file.text.find('x').unwrap_or_default();
        let diagnostic = locate(&file, at, "m".into(), &[]);
        assert_eq!((diagnostic.line, diagnostic.col), (2, 15));
        assert_eq!(diagnostic.source_line, "name = \"Büro\" x");
    }

    #[test]
    fn masked_values_never_reach_the_shown_line() {
        let file = file("token = \"hunter2\" # x\n");
        let start = file.text.find('"').unwrap_or_default();
        let mask = start..start + 9;
        let diagnostic = locate(&file, 0, "m".into(), std::slice::from_ref(&mask));
        assert_eq!(diagnostic.source_line, "token = \"***\" # x");
    }
}
