//! The loader's one error type: a message at a place in the source, with
//! the further errors the same load found.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::ast::Span;

/// The most errors one load reports; past them the load stops.
pub const MAX_ERRORS: usize = 20;

/// Something wrong at `span`. Displays as one line, `FILE:LINE:COL: message`,
/// like nft's own diagnostics; [`Error::report`] shows every error of the
/// load with its source line and a caret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub span: Span,
    pub message: String,
    /// The other errors of the same load, in source order (at most
    /// [`MAX_ERRORS`] in all).
    pub more: Vec<Error>,
    /// Whether the load stopped at [`MAX_ERRORS`] with more to find.
    pub truncated: bool,
}

impl Error {
    pub fn new(span: Span, message: impl Into<String>) -> Error {
        Error {
            span,
            message: message.into(),
            more: Vec::new(),
            truncated: false,
        }
    }

    /// An error about a whole file (it could not be read).
    pub fn file(file: Arc<str>, message: impl Into<String>) -> Error {
        Error::new(Span::whole_file(file), message)
    }

    /// Every error of `errors` (each with its own `more`) as one, in
    /// source order: files in the order they first appear, then line and
    /// column; the same error twice is kept once. `None` when empty.
    pub fn many(errors: impl IntoIterator<Item = Error>) -> Option<Error> {
        let mut all = Vec::new();
        let mut truncated = false;
        for mut err in errors {
            truncated |= err.truncated;
            let more = std::mem::take(&mut err.more);
            all.push(err);
            all.extend(more);
        }
        let mut files: Vec<Arc<str>> = Vec::new();
        for err in &all {
            if !files.contains(&err.span.file) {
                files.push(err.span.file.clone());
            }
        }
        let file_rank = |file: &Arc<str>| files.iter().position(|f| f == file);
        all.sort_by_key(|e| (file_rank(&e.span.file), e.span.line, e.span.col));
        all.dedup_by(|a, b| a.span == b.span && a.message == b.message);
        if all.len() > MAX_ERRORS {
            all.truncate(MAX_ERRORS);
            truncated = true;
        }
        let mut iter = all.into_iter();
        let mut first = iter.next()?;
        first.more = iter.collect();
        first.truncated = truncated;
        Some(first)
    }

    /// How many errors this one stands for.
    pub fn count(&self) -> usize {
        1 + self.more.len()
    }

    /// Every error, each as `FILE:LINE:COL: message`, then the source line
    /// and a caret under the column (when the file can be read again), as
    /// nft shows them.
    pub fn report(&self) -> String {
        let mut sources: HashMap<Arc<str>, Option<Vec<String>>> = HashMap::new();
        let mut out = String::new();
        for (i, err) in std::iter::once(self).chain(&self.more).enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!("{}: {}", err.span, err.message));
            let lines = sources
                .entry(err.span.file.clone())
                .or_insert_with(|| read_lines(&err.span.file));
            if let Some(line) = lines
                .as_ref()
                .and_then(|lines| lines.get((err.span.line as usize).checked_sub(1)?))
            {
                out.push('\n');
                out.push_str(&caret(line, err.span.col));
            }
        }
        if self.truncated {
            out.push_str(&format!(
                "\nstopped after {MAX_ERRORS} errors; fix these and check again"
            ));
        }
        out
    }
}

/// A file's lines for error reports, if it can be read again (not for
/// `-D` values, which are no files).
fn read_lines(file: &str) -> Option<Vec<String>> {
    let text = super::parser::read_file(std::path::Path::new(file)).ok()?;
    Some(text.lines().map(str::to_string).collect())
}

/// The line, and under it a caret at 1-based character column `col`
/// (tabs kept, so the caret lines up in a terminal). Long lines are cut
/// around the column.
fn caret(line: &str, col: u32) -> String {
    const WIDTH: usize = 160;
    let chars: Vec<char> = line.chars().collect();
    let at = (col as usize).saturating_sub(1).min(chars.len());
    let start = at.saturating_sub(WIDTH / 2);
    let end = chars.len().min(start + WIDTH);
    let shown: String = chars[start..end].iter().collect();
    let pad: String = chars[start..at]
        .iter()
        .map(|&c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("{shown}\n{pad}^")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.span, self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u32, col: u32, message: &str) -> Error {
        Error::new(Span::new("a.nft".into(), line, col), message)
    }

    #[test]
    fn several_errors_come_in_source_order_once_each() {
        let all = Error::many([at(9, 1, "late"), at(2, 5, "early"), at(2, 5, "early")]).unwrap();
        assert_eq!(all.to_string(), "a.nft:2:5: early");
        assert_eq!(all.count(), 2);
        assert!(Error::many([]).is_none());
    }

    #[test]
    fn the_caret_stands_under_the_column_with_tabs_kept() {
        assert_eq!(caret("\t\ttcp dprot 22", 7), "\t\ttcp dprot 22\n\t\t    ^");
        assert_eq!(caret("", 1), "\n^");
        let long = "x".repeat(1_000);
        let shown = caret(&long, 900);
        assert!(shown.lines().next().unwrap().len() <= 160);
    }
}
