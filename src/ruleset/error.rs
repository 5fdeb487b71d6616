//! The loader's one error type: a message at a place in the source.

use std::fmt;
use std::sync::Arc;

use super::ast::Span;

/// Something wrong at `span`. Displays as one line, `FILE:LINE:COL: message`,
/// like nft's own diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub span: Span,
    pub message: String,
}

impl Error {
    pub fn new(span: Span, message: impl Into<String>) -> Error {
        Error {
            span,
            message: message.into(),
        }
    }

    /// An error about a whole file (it could not be read).
    pub fn file(file: Arc<str>, message: impl Into<String>) -> Error {
        Error::new(Span::whole_file(file), message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.span, self.message)
    }
}

impl std::error::Error for Error {}
