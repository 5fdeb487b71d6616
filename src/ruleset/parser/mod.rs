//! Tokens to the parse tree ([`super::syntax`]), by recursive descent.
//!
//! The grammar follows nft 1.0.6, including its strictness: every item of a
//! block ends with a newline or `;` (also the last one before `}`), names
//! are bare words that are not nft keywords, and a rule's `comment` comes
//! last. `include "file"` is read relative to the including file and its
//! items are parsed in the block where the include stands.
//!
//! Each `fn` parses one construct and says so in its name; a newcomer
//! can read it top-down: `top_items` → `command` → `table_body` →
//! `chain_body` → `rule` → `stmt` → `after_key` (matches) → `rhs` (values).
//! `block` (here) is the loop all blocks share (separators, includes,
//! defines). The parts, one `impl Parser` each:
//!
//! - `tokens.rs`: looking ahead and eating tokens, names, separators;
//! - `files.rs`: reading files, `include` and its wildcards;
//! - `declarations.rs`: top-level commands, `define`s, table and chain blocks;
//! - `hooks.rs`: a base chain's `type … hook … priority …`;
//! - `sets.rs`: `set` and `map` blocks;
//! - `statements.rs`: a rule and its statements;
//! - `matches.rs`: keys (`ip saddr`, `meta …`, `fib …`) and what follows them;
//! - `nat.rs`: `snat`, `dnat`, `masquerade`, `redirect`;
//! - `expressions.rs`: values, anonymous sets and maps.

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ast::{CtAddr, Family, Fib, MatchOp, Placement, Selector, Span};
use super::error::{Error, MAX_ERRORS};
use super::keywords::is_reserved;
use super::lexer::{MAX_FILE_BYTES, Tok, Token, tokenize};
use super::suggest;
use super::syntax::*;

mod declarations;
mod expressions;
mod files;
mod hooks;
mod matches;
mod nat;
mod sets;
mod statements;
mod tokens;

pub use files::{io_reason, read_file};

/// nft's own limit on nested includes.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// How deep `{`/`(` may nest inside one value; real rulesets need two.
pub const MAX_NESTING: usize = 32;

/// All files of one load together, includes counted every time they are
/// read, so that a file including itself twice per level stays small.
pub const MAX_TOTAL_BYTES: usize = 64 << 20;

type Result<T> = std::result::Result<T, Error>;

/// The longest table, chain, set or map name the kernel takes: 255 bytes
/// and a NUL (`NFT_NAME_MAXLEN`).
pub const MAX_NAME_BYTES: usize = 255;

/// Parses `text` (named `name` in messages); includes are looked up relative
/// to `dir`.
pub fn parse_source(name: &str, text: &str, dir: &Path) -> Result<Source> {
    let (source, errors) = parse_source_all(name, text, dir);
    match Error::many(errors) {
        Some(err) => Err(err),
        None => Ok(source),
    }
}

/// Parses `text` as far as it goes: a line that does not parse is an error
/// and is skipped, and parsing goes on with the next (up to
/// [`MAX_ERRORS`]), so one load reports every syntax error. Returns what
/// parsed, and the errors.
pub fn parse_source_all(name: &str, text: &str, dir: &Path) -> (Source, Vec<Error>) {
    let budget = Cell::new(0);
    let errors = RefCell::new(Vec::new());
    let items = Parser::new(name, text, dir, 0, &budget, &errors).and_then(|mut p| p.top_items());
    let mut errors = errors.into_inner();
    match items {
        Ok(items) => (Source { items }, errors),
        Err(err) => {
            errors.push(err);
            (Source::default(), errors)
        }
    }
}

/// Parses the VALUE of `-D NAME=VALUE` as the value of a `define`.
pub fn parse_define_value(name: &str, value: &str) -> Result<Expr> {
    let budget = Cell::new(0);
    let errors = RefCell::new(Vec::new());
    let file = format!("-D {name}");
    let mut parser = Parser::new(&file, value, Path::new("."), 0, &budget, &errors)?;
    let expr = parser.rhs()?;
    match parser.peek() {
        Tok::Eof => Ok(expr),
        _ => Err(parser.unexpected("end of the value")),
    }
}

struct Parser<'b> {
    tokens: Vec<Token>,
    pos: usize,
    /// Directory of the file being parsed: includes are relative to it.
    dir: PathBuf,
    include_depth: usize,
    nesting: usize,
    /// Bytes read so far by this load, includes included.
    budget: &'b Cell<usize>,
    /// The errors of lines skipped so far by this load, includes included.
    errors: &'b RefCell<Vec<Error>>,
}

/// How a block ends: at its `}`, or at the end of an included file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Brace,
    File,
}

impl<'b> Parser<'b> {
    fn new(
        name: &str,
        text: &str,
        dir: &Path,
        include_depth: usize,
        budget: &'b Cell<usize>,
        errors: &'b RefCell<Vec<Error>>,
    ) -> Result<Parser<'b>> {
        let file: Arc<str> = Arc::from(name);
        let total = budget.get().saturating_add(text.len());
        if total > MAX_TOTAL_BYTES {
            return Err(Error::file(
                file,
                format!(
                    "the files of this load exceed {} MiB",
                    MAX_TOTAL_BYTES >> 20
                ),
            ));
        }
        budget.set(total);
        Ok(Parser {
            tokens: tokenize(&file, text)?,
            pos: 0,
            dir: dir.to_path_buf(),
            include_depth,
            nesting: 0,
            budget,
            errors,
        })
    }

    /// The loop every block shares: separators, its end, `include`s and
    /// variables, and otherwise one `item` of the block's kind, which reads
    /// its own trailing separator.
    fn block<T>(
        &mut self,
        end: End,
        binding: fn(Binding) -> T,
        item: fn(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut items = Vec::new();
        loop {
            self.skip_separators();
            if self.block_ends(end)? {
                return Ok(items);
            }
            let (start, nesting) = (self.pos, self.nesting);
            let parsed = if self.is_word("include") {
                self.include(|p, end| p.block(end, binding, item))
            } else {
                match self.binding() {
                    Ok(Some(b)) => Ok(vec![binding(b)]),
                    Ok(None) => item(self).map(|i| vec![i]),
                    Err(err) => Err(err),
                }
            };
            match parsed {
                Ok(parsed) => items.extend(parsed),
                Err(err) => {
                    self.record(err)?;
                    self.skip_item(start, nesting);
                }
            }
        }
    }

    /// Keeps an error of an item and lets parsing go on, unless the load
    /// already has [`MAX_ERRORS`]: then parsing stops with this one.
    fn record(&mut self, mut err: Error) -> Result<()> {
        let mut errors = self.errors.borrow_mut();
        if errors.len() + 1 >= MAX_ERRORS {
            err.truncated = true;
            return Err(err);
        }
        errors.push(err);
        Ok(())
    }

    /// After an error in the item that started at token `start`: skips to
    /// its end, the `;` or newline after the brackets it opened are closed,
    /// or the `}` of the block it stands in (left for the block to read).
    fn skip_item(&mut self, start: usize, nesting: usize) {
        self.nesting = nesting;
        let mut depth: usize = 0;
        for token in &self.tokens[start.min(self.pos)..self.pos] {
            match token.tok {
                Tok::LBrace | Tok::LParen => depth += 1,
                Tok::RBrace | Tok::RParen => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        let before = self.pos;
        loop {
            match self.peek() {
                Tok::Eof => break,
                Tok::LBrace | Tok::LParen => depth += 1,
                Tok::RBrace | Tok::RParen if depth == 0 => break,
                Tok::RBrace | Tok::RParen => depth -= 1,
                Tok::Newline | Tok::Semicolon if depth == 0 => {
                    self.advance();
                    break;
                }
                _ => {}
            }
            self.advance();
        }
        // Never stand still: an item that failed on a `}` it cannot take
        // would otherwise fail again forever.
        if self.pos == before && self.pos == start && *self.peek() != Tok::Eof {
            self.advance();
        }
    }
}
