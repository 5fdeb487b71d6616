//! The nft-syntax ruleset loader's front end: lexer, parser, checks.
//!
//! Text goes through [`lexer`] (tokens with positions), [`parser`] (the
//! [`syntax`] tree, `include`s inlined) and [`check()`] (variables expanded,
//! values typed, references resolved) to the [`ast::Ruleset`] the compiler
//! turns into one netlink batch. Every failure is one [`Error`] that prints
//! as `FILE:LINE:COL: message`. The accepted subset is documented in
//! `nft/README.md`.
//!
//! ```no_run
//! use supervisor::ruleset::{self, Define};
//! let defines = vec!["bridge=\"sv0\"".parse::<Define>()?];
//! let ruleset = ruleset::load_file("nft/supervisor.nft".as_ref(), &defines)?;
//! # Ok::<(), ruleset::Error>(())
//! ```

mod apply;
pub mod ast;
mod check;
pub mod compile;
pub mod error;
mod intervals;
mod keywords;
pub mod lexer;
pub mod parser;
mod suggest;
mod symbols;
pub mod syntax;
mod values;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

pub use apply::{ApplyError, apply, prepare, send};
pub use check::check;
pub use error::{Error, MAX_ERRORS};

/// A variable given from outside, as `nft -D NAME=VALUE` does: it is
/// defined before the first line of the first file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Define {
    pub name: String,
    /// nft syntax, parsed like the right side of `define NAME = VALUE`.
    pub value: String,
}

impl Define {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Define {
        Define {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl FromStr for Define {
    type Err = Error;

    /// `NAME=VALUE`.
    fn from_str(arg: &str) -> Result<Define, Error> {
        let file: Arc<str> = Arc::from(format!("-D {arg}"));
        let Some((name, value)) = arg.split_once('=') else {
            return Err(Error::file(file, "expected NAME=VALUE"));
        };
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid || keywords::is_reserved(name) {
            return Err(Error::file(file, format!("invalid variable name '{name}'")));
        }
        Ok(Define::new(name, value))
    }
}

/// Parses as far as the text goes: what parsed, and the errors of the
/// lines that did not (an `Err` only for defines that do not parse).
fn parse_str_all(
    name: &str,
    text: &str,
    base_dir: &Path,
    defines: &[Define],
) -> Result<(syntax::Source, Vec<Error>), Error> {
    let mut items = define_items(defines)?;
    let (source, errors) = parser::parse_source_all(name, text, base_dir);
    items.extend(source.items);
    Ok((syntax::Source { items }, errors))
}

/// [`parse_str_all`] of a file; `Err` when it cannot be read at all.
fn parse_file_all(path: &Path, defines: &[Define]) -> Result<(syntax::Source, Vec<Error>), Error> {
    let name = path.display().to_string();
    let text = parser::read_file(path).map_err(|err| {
        Error::file(
            Arc::from(name.as_str()),
            format!("cannot read: {}", parser::io_reason(&err)),
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse_str_all(&name, &text, dir, defines)
}

/// Checks what parsed even when some lines did not, so one run reports
/// the syntax errors and the errors of the rules that parsed together.
fn check_all(source: &syntax::Source, parse_errors: Vec<Error>) -> Result<ast::Ruleset, Error> {
    let checked = check(source);
    let check_errors = checked.as_ref().err().cloned();
    match Error::many(parse_errors.into_iter().chain(check_errors)) {
        Some(err) => Err(err),
        None => checked,
    }
}

/// Parses and checks one file.
pub fn load_file(path: &Path, defines: &[Define]) -> Result<ast::Ruleset, Error> {
    let (source, errors) = parse_file_all(path, defines)?;
    check_all(&source, errors)
}

/// Parses and checks text (the supervisor's embedded ruleset).
pub fn load_str(
    name: &str,
    text: &str,
    base_dir: &Path,
    defines: &[Define],
) -> Result<ast::Ruleset, Error> {
    let (source, errors) = parse_str_all(name, text, base_dir, defines)?;
    check_all(&source, errors)
}

/// Several files as one transaction, in order: later files see the
/// tables, sets and variables of earlier ones. Every file is parsed and
/// checked, so the errors of all of them come out together.
pub fn load_files(paths: &[PathBuf], defines: &[Define]) -> Result<ast::Ruleset, Error> {
    let mut source = syntax::Source {
        items: define_items(defines)?,
    };
    let mut errors = Vec::new();
    for path in paths {
        match parse_file_all(path, &[]) {
            Ok((parsed, mut parse_errors)) => {
                source.items.extend(parsed.items);
                errors.append(&mut parse_errors);
            }
            Err(err) => errors.push(err),
        }
    }
    check_all(&source, errors)
}

fn define_items(defines: &[Define]) -> Result<Vec<syntax::TopItem>, Error> {
    defines
        .iter()
        .map(|define| {
            let file: Arc<str> = Arc::from(format!("-D {}", define.name));
            let value = parser::parse_define_value(&define.name, &define.value)?;
            Ok(syntax::TopItem::Binding(syntax::Binding::Define {
                name: syntax::Name {
                    text: define.name.clone(),
                    span: ast::Span::new(file, 1, 1),
                },
                value,
            }))
        })
        .collect()
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
