//! Tokens to the parse tree ([`super::syntax`]), by recursive descent.
//!
//! The grammar follows nft 1.0.6, including its strictness: every item of a
//! block ends with a newline or `;` (also the last one before `}`), names
//! are bare words that are not nft keywords, and a rule's `comment` comes
//! last. `include "file"` is read relative to the including file and its
//! items are parsed in the block where the include stands.
//!
//! Each `fn` below parses one construct and says so in its name; a newcomer
//! can read it top-down: `top_items` → `command` → `table_body` →
//! `chain_body` → `rule` → `stmt` → `after_key` (matches) → `rhs` (values).
//! `block` is the loop all blocks share (separators, includes, defines).

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ast::{Family, Fib, MatchOp, Placement, Selector, Span};
use super::error::{Error, MAX_ERRORS};
use super::keywords::is_reserved;
use super::lexer::{MAX_FILE_BYTES, Tok, Token, tokenize};
use super::suggest;
use super::syntax::*;

/// nft's own limit on nested includes.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// How deep `{`/`(` may nest inside one value; real rulesets need two.
pub const MAX_NESTING: usize = 32;
/// All files of one load together, includes counted every time they are
/// read, so that a file including itself twice per level stays small.
pub const MAX_TOTAL_BYTES: usize = 64 << 20;

type Result<T> = std::result::Result<T, Error>;

/// Parses `text` (named `name` in messages); includes are looked up relative
/// to `dir`.
/// The longest table, chain, set or map name the kernel takes: 255 bytes
/// and a NUL (`NFT_NAME_MAXLEN`).
pub const MAX_NAME_BYTES: usize = 255;

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

/// A field after a protocol word the loader does not read: nft syntax it
/// does not support (`ip ttl`), or a typo (`tcp dprot`: did you mean
/// `tcp dport`?).
fn unknown_field(protocol: &str, field: &str, span: Span, supported: &[(&str, Selector)]) -> Error {
    if suggest::nft_fields(protocol).contains(&field) {
        return Error::new(
            span,
            format!("'{protocol} {field}' is valid nft but not supported by this loader"),
        );
    }
    let hint = suggest::did_you_mean(
        field,
        supported.iter().map(|(name, _)| *name),
        &format!("{protocol} "),
    );
    Error::new(
        span,
        format!("syntax error, unexpected '{field}': '{protocol}' has no field '{field}'{hint}"),
    )
}

/// A word where a statement belongs that the loader does not read.
fn unknown_statement(word: &str, span: Span) -> Error {
    if suggest::is_nft_only(word) {
        return Error::new(
            span,
            format!("'{word}' is valid nft but not supported by this loader"),
        );
    }
    let hint = suggest::did_you_mean(word, suggest::STATEMENT_WORDS.iter().copied(), "");
    Error::new(
        span,
        format!("syntax error, unexpected '{word}', expecting a statement{hint}"),
    )
}

/// What a path names, for reading it as a ruleset file.
enum FileKind {
    Regular,
    Directory,
    /// Anything else, named for the message: "a FIFO", "a character device".
    Other(&'static str),
}

fn file_kind(path: &Path) -> std::io::Result<FileKind> {
    // Follows symbolic links, as opening the file would.
    let ty = std::fs::metadata(path)?.file_type();
    Ok(if ty.is_file() {
        FileKind::Regular
    } else if ty.is_dir() {
        FileKind::Directory
    } else {
        FileKind::Other(describe_kind(&ty))
    })
}

fn describe_kind(ty: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ty.is_fifo() {
        "a FIFO"
    } else if ty.is_char_device() {
        "a character device"
    } else if ty.is_block_device() {
        "a block device"
    } else if ty.is_socket() {
        "a socket"
    } else if ty.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// An I/O error for messages: a read that would block says why it matters.
pub fn io_reason(err: &std::io::Error) -> String {
    if err.kind() == std::io::ErrorKind::WouldBlock {
        "reading it would wait for more input (it is not a file that ends)".to_string()
    } else {
        err.to_string()
    }
}

fn not_regular(kind: &str) -> std::io::Error {
    std::io::Error::other(format!("{kind}, not a regular file"))
}

/// Reads a ruleset file, refusing what is not a regular file (a FIFO or
/// /proc/kmsg would never end, and opening a FIFO alone blocks until a
/// writer comes) and what is too large.
pub fn read_file(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    match file_kind(path)? {
        FileKind::Regular => {}
        FileKind::Directory => return Err(not_regular("a directory")),
        FileKind::Other(kind) => return Err(not_regular(kind)),
    }
    // Non-blocking, so that a FIFO swapped in since the check cannot make
    // the open wait; checked again on the open file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let ty = file.metadata()?.file_type();
    if !ty.is_file() {
        return Err(not_regular(describe_kind(&ty)));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_string(&mut text)?;
    if text.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(text)
}

/// The entries of `dir` whose names match the shell pattern `pattern`, as
/// nft's include finds them (glob(3)): names starting with `.` never match,
/// and the matches come in byte order of their names.
fn glob_entries(dir: &Path, pattern: &[u8]) -> std::io::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.as_encoded_bytes();
            !name.starts_with(b".") && glob_match(pattern, name)
        })
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    Ok(entries)
}

/// Whether `name` matches a shell pattern: `*` any run, `?` one byte,
/// `[abc]`, `[a-z]`, `[!a]` one byte of a class.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    // Iterative, with one backtrack point for the last `*`: linear enough
    // for any pattern (no exponential backtracking).
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class_match(pattern, p, name[n]),
            Some(&c) if c == name[n] => Some(p + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                n += 1;
            }
            (None, Some((star_p, star_n))) => {
                p = star_p + 1;
                n = star_n + 1;
                star = Some((star_p, star_n + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `byte` against the class starting at `pattern[open]` (`[`);
/// the index after the class when it matches. An unclosed `[` is a plain
/// character, as in glob(3).
fn class_match(pattern: &[u8], open: usize, byte: u8) -> Option<usize> {
    let mut i = open + 1;
    let negated = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let start = i;
    let mut matched = false;
    while let Some(&c) = pattern.get(i) {
        if c == b']' && i > start {
            return (matched != negated).then_some(i + 1);
        }
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&e| e != b']') {
            matched |= (c..=pattern[i + 2]).contains(&byte);
            i += 3;
        } else {
            matched |= c == byte;
            i += 1;
        }
    }
    (byte == b'[').then_some(open + 1)
}

fn has_wildcards(text: &str) -> bool {
    text.contains(['*', '?', '['])
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

    // ----- token helpers -------------------------------------------------

    fn token(&self, ahead: usize) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.pos + ahead).min(last)]
    }

    fn peek(&self) -> &Tok {
        &self.token(0).tok
    }

    fn span(&self) -> Span {
        self.token(0).span.clone()
    }

    fn advance(&mut self) -> Token {
        let token = self.token(0).clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        token
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w == word)
    }

    fn is_word_at(&self, ahead: usize, word: &str) -> bool {
        matches!(&self.token(ahead).tok, Tok::Word(w) if w == word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(word);
        if found {
            self.advance();
        }
        found
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        let found = self.peek() == tok;
        if found {
            self.advance();
        }
        found
    }

    fn unexpected(&self, expecting: &str) -> Error {
        Error::new(
            self.span(),
            format!(
                "syntax error, unexpected {}, expecting {expecting}",
                self.peek().describe()
            ),
        )
    }

    fn expect(&mut self, tok: &Tok, expecting: &str) -> Result<Span> {
        let span = self.span();
        if self.eat(tok) {
            Ok(span)
        } else {
            Err(self.unexpected(expecting))
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<Span> {
        let span = self.span();
        if self.eat_word(word) {
            Ok(span)
        } else {
            Err(self.unexpected(&format!("'{word}'")))
        }
    }

    /// Any bare word, keyword or not (types, hooks, flags, codes).
    fn word(&mut self, expecting: &str) -> Result<Name> {
        match self.peek().clone() {
            Tok::Word(text) => Ok(Name {
                text,
                span: self.advance().span,
            }),
            _ => Err(self.unexpected(expecting)),
        }
    }

    /// A table, chain, set or variable name: a bare word nft does not take
    /// for a keyword. Table, chain and set names are at most
    /// [`MAX_NAME_BYTES`] long, as the kernel takes them.
    fn name(&mut self, what: &str) -> Result<Name> {
        match self.peek().clone() {
            Tok::Word(text) if is_reserved(&text) => Err(Error::new(
                self.span(),
                format!("syntax error, unexpected keyword '{text}', expecting {what}"),
            )),
            Tok::Word(text) if text.len() > MAX_NAME_BYTES && what != "a variable name" => {
                Err(Error::new(
                    self.span(),
                    format!(
                        "{what} of {} bytes is longer than the kernel's limit of {MAX_NAME_BYTES} (NFT_NAME_MAXLEN)",
                        text.len()
                    ),
                ))
            }
            Tok::Word(text) if !text.contains('*') => Ok(Name {
                text,
                span: self.advance().span,
            }),
            _ => Err(self.unexpected(what)),
        }
    }

    fn string(&mut self, expecting: &str) -> Result<Name> {
        match self.peek().clone() {
            Tok::Str(text) => Ok(Name {
                text,
                span: self.advance().span,
            }),
            _ => Err(self.unexpected(expecting)),
        }
    }

    fn number(&mut self, expecting: &str) -> Result<(u64, Span)> {
        match *self.peek() {
            Tok::Number(n) => Ok((n, self.advance().span)),
            _ => Err(self.unexpected(expecting)),
        }
    }

    fn at_separator(&self) -> bool {
        matches!(self.peek(), Tok::Newline | Tok::Semicolon)
    }

    /// The newline or `;` that ends every item of a block.
    fn separator(&mut self) -> Result<()> {
        if self.at_separator() {
            self.advance();
            Ok(())
        } else {
            Err(self.unexpected("newline or ';'"))
        }
    }

    fn skip_separators(&mut self) {
        while self.at_separator() {
            self.advance();
        }
    }

    fn skip_newlines(&mut self) {
        while self.eat(&Tok::Newline) {}
    }

    /// Whether the block being parsed ends here, consuming its `}`.
    fn block_ends(&mut self, end: End) -> Result<bool> {
        match (end, self.peek()) {
            (End::Brace, Tok::RBrace) => {
                self.advance();
                Ok(true)
            }
            (End::File, Tok::Eof) => Ok(true),
            (End::Brace, Tok::Eof) => Err(self.unexpected("'}'")),
            (End::File, Tok::RBrace) => Err(self.unexpected("a command")),
            _ => Ok(false),
        }
    }

    fn nest(&mut self) -> Result<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(Error::new(
                self.span(),
                format!("values nest more than {MAX_NESTING} levels deep"),
            ));
        }
        Ok(())
    }

    fn unnest(&mut self) {
        self.nesting -= 1;
    }

    // ----- includes and variables ----------------------------------------

    /// `include "file"`: parses the file with `body` (the items of the block
    /// the include stands in) and returns them. Only regular files are
    /// read: a FIFO or a device is an error naming it, and a directory is
    /// read through a wildcard in the file name, as nft reads it
    /// (`include "rules.d/*.nft"`: every match but dot files, in name
    /// order, directories among them include nothing, no match is fine).
    fn include<T>(
        &mut self,
        mut body: impl FnMut(&mut Parser<'b>, End) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let span = self.expect_word("include")?;
        let file = self.string("a quoted file name")?;
        self.separator()?;
        if self.include_depth >= MAX_INCLUDE_DEPTH {
            return Err(Error::new(
                span,
                format!("includes nest more than {MAX_INCLUDE_DEPTH} levels deep"),
            ));
        }
        let cannot_read = |shown: &dyn std::fmt::Display, err: std::io::Error| {
            Error::new(
                file.span.clone(),
                format!("cannot read include \"{shown}\": {}", io_reason(&err)),
            )
        };
        let path = self.dir.join(&file.text);
        let (dir, pattern) = match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) if has_wildcards(&file.text) => (dir, name),
            _ => {
                if let FileKind::Directory =
                    file_kind(&path).map_err(|e| cannot_read(&file.text, e))?
                {
                    return Err(Error::new(
                        file.span.clone(),
                        format!(
                            "cannot read include \"{}\": a directory (nft includes nothing for it; to read its files write \"{}/*\")",
                            file.text,
                            file.text.trim_end_matches('/')
                        ),
                    ));
                }
                return self.include_file(&path, &file.text, &file.span, &mut body);
            }
        };
        if has_wildcards(&dir.to_string_lossy()) {
            return Err(Error::new(
                file.span.clone(),
                "include with wildcards in a directory name is not supported (only in the file name)",
            ));
        }
        let mut items = Vec::new();
        let matches = glob_entries(dir, pattern.as_encoded_bytes())
            .map_err(|e| cannot_read(&dir.display(), e))?;
        for entry in matches {
            let shown = entry.display().to_string();
            match file_kind(&entry).map_err(|e| cannot_read(&shown, e))? {
                FileKind::Directory => {}
                _ => items.extend(self.include_file(&entry, &shown, &file.span, &mut body)?),
            }
        }
        Ok(items)
    }

    /// Parses the regular file `path` of an include (`shown` in messages).
    fn include_file<T>(
        &mut self,
        path: &Path,
        shown: &str,
        at: &Span,
        body: &mut impl FnMut(&mut Parser<'b>, End) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let text = read_file(path).map_err(|err| {
            Error::new(
                at.clone(),
                format!("cannot read include \"{shown}\": {}", io_reason(&err)),
            )
        })?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let name = path.display().to_string();
        let mut sub = Parser::new(
            &name,
            &text,
            &dir,
            self.include_depth + 1,
            self.budget,
            self.errors,
        )?;
        body(&mut sub, End::File)
    }

    /// `define|redefine NAME = VALUE` or `undefine NAME`, if one is here.
    fn binding(&mut self) -> Result<Option<Binding>> {
        let kind = match self.peek() {
            Tok::Word(w) if w == "define" || w == "redefine" || w == "undefine" => w.clone(),
            _ => return Ok(None),
        };
        self.advance();
        let name = self.name("a variable name")?;
        let binding = if kind == "undefine" {
            Binding::Undefine { name }
        } else {
            self.expect(&Tok::Assign, "'='")?;
            let value = self.rhs()?;
            if kind == "define" {
                Binding::Define { name, value }
            } else {
                Binding::Redefine { name, value }
            }
        };
        self.separator()?;
        Ok(Some(binding))
    }

    // ----- top level -------------------------------------------------------

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

    fn top_items(&mut self) -> Result<Vec<TopItem>> {
        self.block(End::File, TopItem::Binding, |p| {
            let command = p.command()?;
            if *p.peek() != Tok::Eof {
                p.separator()?;
            }
            Ok(command)
        })
    }

    /// One command: `[add] table|chain|set|map|rule|element ...`,
    /// `insert rule`, `delete table`, `flush table|ruleset`.
    fn command(&mut self) -> Result<TopItem> {
        let span = self.span();
        let verb = match self.peek() {
            Tok::Word(w) if matches!(w.as_str(), "add" | "insert" | "delete" | "flush") => {
                let verb = w.clone();
                self.advance();
                verb
            }
            _ => "add".to_string(),
        };
        let object = self.word("a command such as 'table' or 'add rule'")?;
        match (verb.as_str(), object.text.as_str()) {
            ("flush", "ruleset") => Ok(TopItem::FlushRuleset(span)),
            ("flush", "table") => Ok(TopItem::FlushTable {
                span,
                table: self.table_name()?,
            }),
            ("delete", "table") => Ok(TopItem::DeleteTable {
                span,
                table: self.table_name()?,
            }),
            ("add", "table") => {
                let table = self.table_name()?;
                let body = if self.eat(&Tok::LBrace) {
                    self.table_body(End::Brace)?
                } else {
                    Vec::new()
                };
                Ok(TopItem::AddTable { span, table, body })
            }
            ("add", "chain") => {
                let table = self.table_name()?;
                let name = self.name("a chain name")?;
                let items = if self.eat(&Tok::LBrace) {
                    self.chain_body(End::Brace)?
                } else {
                    Vec::new()
                };
                let chain = ChainBlock {
                    span: span.clone(),
                    name,
                    items,
                };
                Ok(TopItem::AddChain { span, table, chain })
            }
            ("add", "set" | "map") => {
                let table = self.table_name()?;
                let set = self.set_block(span.clone(), object.text == "map")?;
                Ok(TopItem::AddSet { span, table, set })
            }
            ("add" | "insert", "rule") => {
                let table = self.table_name()?;
                let chain = self.name("a chain name")?;
                let placement = if verb == "insert" {
                    Placement::Prepend
                } else {
                    Placement::Append
                };
                let rule = self.rule()?;
                Ok(TopItem::AddRule {
                    span,
                    table,
                    chain,
                    placement,
                    rule,
                })
            }
            ("add", "element") => {
                let table = self.table_name()?;
                let set = self.name("a set name")?;
                let elements = self.set_literal_or_var()?;
                Ok(TopItem::AddElements {
                    span,
                    table,
                    set,
                    elements,
                })
            }
            _ => Err(Error::new(
                object.span,
                format!("'{verb} {}' is not supported by this loader", object.text),
            )),
        }
    }

    /// `[ip|ip6|inet|bridge] NAME`; without a family, nft means ip.
    fn table_name(&mut self) -> Result<TableName> {
        let family = match self.peek() {
            Tok::Word(w) => match w.as_str() {
                "ip" => Some(Family::Ip),
                "ip6" => Some(Family::Ip6),
                "inet" => Some(Family::Inet),
                "bridge" => Some(Family::Bridge),
                "arp" | "netdev" => {
                    return Err(Error::new(
                        self.span(),
                        format!("family '{w}' is not supported by this loader"),
                    ));
                }
                _ => None,
            },
            _ => None,
        };
        if family.is_some() {
            self.advance();
        }
        Ok(TableName {
            family: family.unwrap_or(Family::Ip),
            name: self.name("a table name")?,
        })
    }

    // ----- table, chain and set blocks -------------------------------------

    fn table_body(&mut self, end: End) -> Result<Vec<TableItem>> {
        self.block(end, TableItem::Binding, Self::table_item)
    }

    fn table_item(&mut self) -> Result<TableItem> {
        let span = self.span();
        let keyword = self.word("'chain', 'set', 'map' or '}'")?;
        let item = match keyword.text.as_str() {
            "chain" => {
                let name = self.name("a chain name")?;
                self.expect(&Tok::LBrace, "'{'")?;
                let items = self.chain_body(End::Brace)?;
                TableItem::Chain(ChainBlock { span, name, items })
            }
            "set" | "map" => TableItem::Set(self.set_block(span, keyword.text == "map")?),
            "comment" => TableItem::Comment(self.string("a quoted comment")?),
            other => {
                return Err(Error::new(
                    keyword.span,
                    format!("'{other}' is not supported in a table block"),
                ));
            }
        };
        self.separator()?;
        Ok(item)
    }

    fn chain_body(&mut self, end: End) -> Result<Vec<ChainItem>> {
        self.block(end, ChainItem::Binding, Self::chain_item)
    }

    fn chain_item(&mut self) -> Result<ChainItem> {
        let item = if self.is_word("type") {
            ChainItem::Hook(self.hook_spec()?)
        } else if self.eat_word("policy") {
            ChainItem::Policy(self.word("'accept' or 'drop'")?)
        } else if self.eat_word("comment") {
            ChainItem::Comment(self.string("a quoted comment")?)
        } else {
            ChainItem::Rule(self.rule()?)
        };
        self.separator()?;
        Ok(item)
    }

    /// `type T hook H priority P`
    fn hook_spec(&mut self) -> Result<HookSpec> {
        let span = self.expect_word("type")?;
        let chain_type = self.word("a chain type")?;
        self.expect_word("hook")?;
        let hook = self.word("a hook name")?;
        if self.is_word("device") {
            return Err(Error::new(
                self.span(),
                "'device' is not supported by this loader",
            ));
        }
        self.expect_word("priority")?;
        let priority = self.priority()?;
        Ok(HookSpec {
            span,
            chain_type,
            hook,
            priority,
        })
    }

    /// `N`, `-N`, `KEYWORD`, `KEYWORD + N`, `KEYWORD - N`.
    fn priority(&mut self) -> Result<Priority> {
        let span = self.span();
        let signed = |p: &mut Parser, negative: bool| -> Result<i64> {
            let (n, n_span) = p.number("a number")?;
            let n = i64::try_from(n)
                .ok()
                .filter(|n| *n <= i64::from(i32::MAX) + 1)
                .ok_or_else(|| Error::new(n_span, "priority out of range"))?;
            Ok(if negative { -n } else { n })
        };
        let base = match self.peek().clone() {
            Tok::Dash => {
                self.advance();
                PriorityBase::Number(signed(self, true)?)
            }
            Tok::Number(_) => PriorityBase::Number(signed(self, false)?),
            Tok::Word(_) => PriorityBase::Keyword(self.word("a priority")?),
            _ => return Err(self.unexpected("a priority number or keyword")),
        };
        let offset = match (&base, self.peek()) {
            (PriorityBase::Keyword(_), Tok::Plus) => {
                self.advance();
                signed(self, false)?
            }
            (PriorityBase::Keyword(_), Tok::Dash) => {
                self.advance();
                signed(self, true)?
            }
            _ => 0,
        };
        Ok(Priority { span, base, offset })
    }

    /// `NAME { ... }` after `set`/`map` (`span` is that keyword).
    fn set_block(&mut self, span: Span, is_map: bool) -> Result<SetBlock> {
        let name = self.name(if is_map { "a map name" } else { "a set name" })?;
        self.expect(&Tok::LBrace, "'{'")?;
        let items = self.set_body(End::Brace)?;
        Ok(SetBlock {
            span,
            is_map,
            name,
            items,
        })
    }

    fn set_body(&mut self, end: End) -> Result<Vec<SetItem>> {
        self.block(end, SetItem::Binding, Self::set_item)
    }

    fn set_item(&mut self) -> Result<SetItem> {
        let keyword = self.word("a set property or '}'")?;
        let item = match keyword.text.as_str() {
            "type" => {
                let key = self.type_list()?;
                let data = if self.eat(&Tok::Colon) {
                    Some(self.type_list()?)
                } else {
                    None
                };
                SetItem::Type {
                    span: keyword.span,
                    key,
                    data,
                }
            }
            "flags" => {
                let mut flags = vec![self.word("a set flag")?];
                while self.eat(&Tok::Comma) {
                    flags.push(self.word("a set flag")?);
                }
                SetItem::Flags(flags)
            }
            "timeout" => {
                // nft takes no bare number here: `timeout 30` is a syntax error.
                let text = match self.peek().clone() {
                    Tok::NumWord(text) => text,
                    _ => return Err(self.unexpected("a duration like 30s")),
                };
                SetItem::Timeout(Name {
                    text,
                    span: self.advance().span,
                })
            }
            "size" => {
                let (value, span) = self.number("a number")?;
                SetItem::Size { span, value }
            }
            "comment" => SetItem::Comment(self.string("a quoted comment")?),
            "elements" => {
                self.expect(&Tok::Assign, "'='")?;
                let elements = self.set_literal_or_var()?;
                // nft lets the closing brace follow the elements directly.
                if *self.peek() != Tok::RBrace {
                    self.separator()?;
                }
                return Ok(SetItem::Elements(elements));
            }
            other => {
                return Err(Error::new(
                    keyword.span,
                    format!("'{other}' is not supported in a set or map block"),
                ));
            }
        };
        self.separator()?;
        Ok(item)
    }

    /// `ipv4_addr . inet_service`
    fn type_list(&mut self) -> Result<Vec<Name>> {
        let mut types = vec![self.word("a type name")?];
        while self.eat(&Tok::Dot) {
            types.push(self.word("a type name")?);
        }
        Ok(types)
    }

    /// `{ ... }` or `$var` (elements of `add element` and `elements =`).
    fn set_literal_or_var(&mut self) -> Result<Expr> {
        match self.peek().clone() {
            Tok::LBrace => self.primary(),
            Tok::Var(_) => self.primary(),
            _ => Err(self.unexpected("'{'")),
        }
    }

    // ----- rules -------------------------------------------------------------

    /// Statements up to the end of the line, `;` or `}`; a `comment "..."`
    /// may only come last.
    fn rule(&mut self) -> Result<RuleLine> {
        let span = self.span();
        let mut stmts = Vec::new();
        let mut comment = None;
        while !matches!(
            self.peek(),
            Tok::Newline | Tok::Semicolon | Tok::RBrace | Tok::Eof
        ) {
            if self.eat_word("comment") {
                comment = Some(self.string("a quoted comment")?);
                break;
            }
            stmts.push(self.stmt()?);
        }
        if stmts.is_empty() && comment.is_none() {
            return Err(self.unexpected("a statement"));
        }
        Ok(RuleLine {
            span,
            stmts,
            comment,
        })
    }

    fn stmt(&mut self) -> Result<Stmt> {
        let span = self.span();
        if let Some(key) = self.key()? {
            let kind = self.after_key(key)?;
            return Ok(Stmt { span, kind });
        }
        let word = match self.peek().clone() {
            Tok::Word(w) => w,
            _ => return Err(self.unexpected("a statement")),
        };
        self.advance();
        let kind = match word.as_str() {
            "counter" => self.counter()?,
            "log" => {
                let prefix = if self.eat_word("prefix") {
                    Some(self.primary()?)
                } else {
                    None
                };
                if let Tok::Word(option) = self.peek() {
                    if matches!(option.as_str(), "level" | "group" | "snaplen" | "flags") {
                        return Err(Error::new(
                            self.span(),
                            format!("log option '{option}' is not supported by this loader"),
                        ));
                    }
                }
                StmtKind::Log { prefix }
            }
            "accept" | "drop" | "return" | "continue" => StmtKind::Verdict(Name {
                text: word,
                span: span.clone(),
            }),
            "jump" | "goto" => StmtKind::Jump {
                goto: word == "goto",
                target: self.name("a chain name")?,
            },
            "reject" => self.reject()?,
            "masquerade" => StmtKind::Masquerade {
                port: self.port_after_to(false)?,
                flags: self.nat_flags()?,
            },
            "redirect" => StmtKind::Redirect {
                port: self.port_after_to(true)?,
                flags: self.nat_flags()?,
            },
            "snat" | "dnat" => self.nat(word == "dnat")?,
            other => return Err(unknown_statement(other, span)),
        };
        Ok(Stmt { span, kind })
    }

    /// `counter [packets N bytes M]`
    fn counter(&mut self) -> Result<StmtKind> {
        if !self.eat_word("packets") {
            return Ok(StmtKind::Counter {
                packets: 0,
                bytes: 0,
            });
        }
        let (packets, _) = self.number("a packet count")?;
        self.expect_word("bytes")?;
        let (bytes, _) = self.number("a byte count")?;
        Ok(StmtKind::Counter { packets, bytes })
    }

    /// After `reject`: `[with tcp reset | with icmp|icmpv6|icmpx [type] CODE]`
    fn reject(&mut self) -> Result<StmtKind> {
        if !self.eat_word("with") {
            return Ok(StmtKind::Reject {
                with: None,
                code: None,
            });
        }
        let with = self.word("'tcp', 'icmp', 'icmpv6' or 'icmpx'")?;
        let code = match with.text.as_str() {
            "tcp" => {
                self.expect_word("reset")?;
                None
            }
            "icmp" | "icmpv6" | "icmpx" => {
                self.eat_word("type");
                Some(self.word("an icmp code name")?)
            }
            _ => {
                return Err(Error::new(
                    with.span,
                    format!(
                        "syntax error, unexpected '{}', expecting 'tcp', 'icmp', 'icmpv6' or 'icmpx'",
                        with.text
                    ),
                ));
            }
        };
        Ok(StmtKind::Reject {
            with: Some(with),
            code,
        })
    }

    /// `[to :PORT[-PORT]]` after masquerade; redirect also takes `to PORT`.
    fn port_after_to(&mut self, colon_optional: bool) -> Result<Option<Expr>> {
        if !self.eat_word("to") {
            return Ok(None);
        }
        if !self.eat(&Tok::Colon) && !colon_optional {
            return Err(self.unexpected("':' and a port"));
        }
        Ok(Some(self.range()?))
    }

    /// `random`, `fully-random`, `persistent`, comma separated.
    fn nat_flags(&mut self) -> Result<Vec<Name>> {
        let mut flags = Vec::new();
        while let Tok::Word(w) = self.peek() {
            if !matches!(w.as_str(), "random" | "fully-random" | "persistent") {
                break;
            }
            flags.push(self.word("a nat flag")?);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        Ok(flags)
    }

    /// After `snat`/`dnat`: `[ip|ip6] to TARGET [FLAGS]`
    fn nat(&mut self, dnat: bool) -> Result<StmtKind> {
        let family = if self.is_word("ip") || self.is_word("ip6") {
            Some(self.word("'ip' or 'ip6'")?)
        } else {
            None
        };
        self.expect_word("to")?;
        let target = if let Some(key) = self.key()? {
            let key = self.more_keys(key)?;
            self.expect_word("map")?;
            NatTarget::Map {
                key,
                map: self.map_ref()?,
            }
        } else {
            self.nat_address()?
        };
        Ok(StmtKind::Nat {
            dnat,
            family,
            target,
            flags: self.nat_flags()?,
        })
    }

    /// `ADDR[-ADDR][:PORT[-PORT]]`, `[ADDR6][:PORT]`, `:PORT`
    fn nat_address(&mut self) -> Result<NatTarget> {
        let addr = if self.eat(&Tok::LBracket) {
            let addr = self.range()?;
            self.expect(&Tok::RBracket, "']'")?;
            Some(addr)
        } else if *self.peek() == Tok::Colon {
            None
        } else {
            Some(self.range()?)
        };
        let port = if self.eat(&Tok::Colon) {
            Some(self.range()?)
        } else {
            None
        };
        Ok(NatTarget::Addr { addr, port })
    }

    /// `{ ... }`, `@name` or `$var` after `map`/`vmap`.
    fn map_ref(&mut self) -> Result<Expr> {
        match self.peek() {
            Tok::LBrace | Tok::SetRef(_) | Tok::Var(_) => self.primary(),
            _ => Err(self.unexpected("'{', '@name' or '$variable'")),
        }
    }

    // ----- selectors and matches --------------------------------------------

    /// A selector like `ip saddr` or `fib daddr type`, if one starts here.
    fn key(&mut self) -> Result<Option<Key>> {
        let span = self.span();
        let Tok::Word(first) = self.peek().clone() else {
            return Ok(None);
        };
        let unqualified = match first.as_str() {
            "iifname" => Some(Selector::Iifname),
            "oifname" => Some(Selector::Oifname),
            "iif" => Some(Selector::Iif),
            "oif" => Some(Selector::Oif),
            "mark" => Some(Selector::MetaMark),
            _ => None,
        };
        if let Some(selector) = unqualified {
            self.advance();
            return Ok(Some(Key { selector, span }));
        }
        if first == "fib" {
            self.advance();
            return Ok(Some(Key {
                selector: self.fib()?,
                span,
            }));
        }
        let fields: &[(&str, Selector)] = match first.as_str() {
            "meta" => &[
                ("iifname", Selector::Iifname),
                ("oifname", Selector::Oifname),
                ("iif", Selector::Iif),
                ("oif", Selector::Oif),
                ("l4proto", Selector::MetaL4proto),
                ("mark", Selector::MetaMark),
                ("nfproto", Selector::MetaNfproto),
                ("protocol", Selector::MetaProtocol),
            ],
            "ether" => &[
                ("saddr", Selector::EtherSaddr),
                ("daddr", Selector::EtherDaddr),
                ("type", Selector::EtherType),
            ],
            "arp" => &[
                ("htype", Selector::ArpHtype),
                ("ptype", Selector::ArpPtype),
                ("hlen", Selector::ArpHlen),
                ("plen", Selector::ArpPlen),
                ("operation", Selector::ArpOperation),
                ("saddr", Selector::ArpSaddrIp),
                ("daddr", Selector::ArpDaddrIp),
            ],
            "ip" => &[
                ("saddr", Selector::IpSaddr),
                ("daddr", Selector::IpDaddr),
                ("protocol", Selector::IpProtocol),
            ],
            "ip6" => &[("saddr", Selector::Ip6Saddr), ("daddr", Selector::Ip6Daddr)],
            "tcp" => &[
                ("sport", Selector::TcpSport),
                ("dport", Selector::TcpDport),
                ("flags", Selector::TcpFlags),
            ],
            "udp" => &[("sport", Selector::UdpSport), ("dport", Selector::UdpDport)],
            "th" => &[("sport", Selector::ThSport), ("dport", Selector::ThDport)],
            "ct" => &[
                ("state", Selector::CtState),
                ("status", Selector::CtStatus),
                ("mark", Selector::CtMark),
            ],
            _ => return Ok(None),
        };
        self.advance();
        let field_span = self.span();
        let field = match self.peek() {
            Tok::Word(w) => w.clone(),
            _ => return Err(self.unexpected(&format!("a field of '{first}'"))),
        };
        match fields.iter().find(|(name, _)| *name == field) {
            Some((_, selector))
                if first == "arp" && matches!(field.as_str(), "saddr" | "daddr") =>
            {
                // `arp saddr ip`, `arp saddr ether`: the address kind is a
                // third word.
                let selector = *selector;
                self.advance();
                let kind = self.word("'ip' or 'ether'")?;
                let selector = match (selector, kind.text.as_str()) {
                    (Selector::ArpSaddrIp, "ip") => Selector::ArpSaddrIp,
                    (Selector::ArpSaddrIp, "ether") => Selector::ArpSaddrEther,
                    (_, "ip") => Selector::ArpDaddrIp,
                    (_, "ether") => Selector::ArpDaddrEther,
                    _ => {
                        return Err(Error::new(
                            kind.span,
                            format!(
                                "syntax error, unexpected '{}', expecting 'ip' or 'ether'",
                                kind.text
                            ),
                        ));
                    }
                };
                Ok(Some(Key { selector, span }))
            }
            Some((_, selector)) => {
                self.advance();
                Ok(Some(Key {
                    selector: *selector,
                    span,
                }))
            }
            None => Err(unknown_field(&first, &field, field_span, fields)),
        }
    }

    /// After `fib`: `saddr|daddr [. iif|oif|mark]... type`
    fn fib(&mut self) -> Result<Selector> {
        let addr = self.word("'saddr' or 'daddr'")?;
        let mut fib = Fib {
            saddr: false,
            iif: false,
            oif: false,
            mark: false,
        };
        match addr.text.as_str() {
            "saddr" => fib.saddr = true,
            "daddr" => {}
            _ => {
                return Err(Error::new(
                    addr.span,
                    format!(
                        "syntax error, unexpected '{}', expecting 'saddr' or 'daddr'",
                        addr.text
                    ),
                ));
            }
        }
        while self.eat(&Tok::Dot) {
            let flag = self.word("'iif', 'oif' or 'mark'")?;
            let seen = match flag.text.as_str() {
                "iif" => &mut fib.iif,
                "oif" => &mut fib.oif,
                "mark" => &mut fib.mark,
                _ => {
                    return Err(Error::new(
                        flag.span,
                        format!(
                            "syntax error, unexpected '{}', expecting 'iif', 'oif' or 'mark'",
                            flag.text
                        ),
                    ));
                }
            };
            *seen = true;
        }
        let result = self.word("'type'")?;
        if result.text != "type" {
            return Err(Error::new(
                result.span,
                format!(
                    "fib result '{}' is not supported by this loader (only 'type')",
                    result.text
                ),
            ));
        }
        Ok(Selector::Fib(fib))
    }

    /// `. SELECTOR` continuations of a concatenated key.
    fn more_keys(&mut self, first: Key) -> Result<Vec<Key>> {
        let mut keys = vec![first];
        while *self.peek() == Tok::Dot {
            self.advance();
            match self.key()? {
                Some(key) => keys.push(key),
                None => return Err(self.unexpected("a selector such as 'ip saddr'")),
            }
        }
        Ok(keys)
    }

    /// What follows a selector: `vmap ...`, `set ...`, or a match.
    fn after_key(&mut self, first: Key) -> Result<StmtKind> {
        let key = self.more_keys(first)?;
        if self.eat_word("vmap") {
            return Ok(StmtKind::Vmap {
                key,
                map: self.map_ref()?,
            });
        }
        if self.is_word("set") {
            let ct = match key.as_slice() {
                [
                    Key {
                        selector: Selector::MetaMark,
                        ..
                    },
                ] => false,
                [
                    Key {
                        selector: Selector::CtMark,
                        ..
                    },
                ] => true,
                _ => {
                    return Err(Error::new(
                        self.span(),
                        "only 'meta mark set' and 'ct mark set' are supported",
                    ));
                }
            };
            self.advance();
            return Ok(StmtKind::MarkSet {
                ct,
                value: self.mark_source()?,
            });
        }
        let mut mask = None;
        if self.eat(&Tok::Amp) || self.eat_word("and") {
            mask = Some(self.primary()?);
        }
        let op_span = self.span();
        // `tcp flags ! fin,syn` is nft's "none of these": `& (fin|syn) == 0`.
        if mask.is_none() && self.eat(&Tok::Bang) {
            let flags = self.list()?;
            return Ok(StmtKind::Match {
                key,
                mask: Some(flags),
                op: MatchOp::Eq,
                rhs: Expr::Number(0, op_span.clone()),
                op_span,
            });
        }
        let mut op = match self.peek() {
            Tok::Eq => MatchOp::Eq,
            Tok::Ne => MatchOp::Ne,
            Tok::Word(w) if w == "eq" => MatchOp::Eq,
            Tok::Word(w) if w == "ne" => MatchOp::Ne,
            Tok::Relational(op) => {
                return Err(Error::new(
                    op_span,
                    format!(
                        "operator '{op}' is not supported by this loader; use a range like 1024-65535"
                    ),
                ));
            }
            _ => MatchOp::Implicit,
        };
        if op != MatchOp::Implicit {
            self.advance();
        }
        let rhs = self.rhs()?;
        // `tcp flags syn / syn,ack` is nft's short form of
        // `tcp flags & (syn|ack) == syn` (and `!= syn / ...` of `!=`).
        if *self.peek() == Tok::Slash && mask.is_none() {
            self.advance();
            mask = Some(self.list()?);
            if op == MatchOp::Implicit {
                op = MatchOp::Eq;
            }
        }
        Ok(StmtKind::Match {
            key,
            mask,
            op,
            op_span,
            rhs,
        })
    }

    /// After `meta mark set` / `ct mark set`.
    fn mark_source(&mut self) -> Result<MarkSource> {
        if self.is_word("mark") {
            self.advance();
            return Ok(MarkSource::MetaMark);
        }
        if self.is_word_at(1, "mark") && (self.is_word("meta") || self.is_word("ct")) {
            let ct = self.is_word("ct");
            self.advance();
            self.advance();
            return Ok(if ct {
                MarkSource::CtMark
            } else {
                MarkSource::MetaMark
            });
        }
        Ok(MarkSource::Value(self.primary()?))
    }

    // ----- values -------------------------------------------------------------

    /// The right-hand side of a match or define: a flag list, concatenation,
    /// range, prefix, set or single value.
    pub(crate) fn rhs(&mut self) -> Result<Expr> {
        self.list()
    }

    /// `a,b,c` / `a|b|c`
    fn list(&mut self) -> Result<Expr> {
        let span = self.span();
        let first = self.concat()?;
        if !matches!(self.peek(), Tok::Comma | Tok::Pipe) {
            return Ok(first);
        }
        let mut items = vec![first];
        while matches!(self.peek(), Tok::Comma | Tok::Pipe) {
            self.advance();
            items.push(self.concat()?);
        }
        Ok(Expr::List(items, span))
    }

    /// `a . b . c`
    fn concat(&mut self) -> Result<Expr> {
        let span = self.span();
        let first = self.range()?;
        if *self.peek() != Tok::Dot {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat(&Tok::Dot) {
            parts.push(self.range()?);
        }
        Ok(Expr::Concat(parts, span))
    }

    /// `low-high` or `addr/len`
    fn range(&mut self) -> Result<Expr> {
        let span = self.span();
        let low = self.primary()?;
        match (self.peek(), &self.token(1).tok) {
            (Tok::Dash, _) => {
                self.advance();
                let high = self.primary()?;
                Ok(Expr::Range(Box::new(low), Box::new(high), span))
            }
            (Tok::Slash, Tok::Number(len)) => {
                let len = *len;
                self.advance();
                self.advance();
                Ok(Expr::Prefix(Box::new(low), len, span))
            }
            _ => Ok(low),
        }
    }

    /// One value, a `{ ... }` set or a parenthesised list.
    fn primary(&mut self) -> Result<Expr> {
        let token = self.token(0).clone();
        let span = token.span.clone();
        let name = |text: String| Name {
            text,
            span: span.clone(),
        };
        let expr = match token.tok {
            Tok::Word(w) => Expr::Word(name(w)),
            Tok::Str(s) => Expr::Str(name(s)),
            Tok::NumWord(w) => Expr::NumWord(name(w)),
            Tok::Number(n) => Expr::Number(n, span),
            Tok::Ipv4(a) => Expr::Ipv4(a, span),
            Tok::Ipv6(a) => Expr::Ipv6(a, span),
            Tok::EtherAddr(a) => Expr::EtherAddr(a, span),
            Tok::Var(v) => Expr::Var(name(v)),
            Tok::SetRef(s) => Expr::SetRef(name(s)),
            Tok::LBrace => {
                self.advance();
                return self.set_elements(span);
            }
            Tok::LParen => {
                self.advance();
                self.nest()?;
                let inner = self.list()?;
                self.unnest();
                self.expect(&Tok::RParen, "')'")?;
                return Ok(inner);
            }
            _ => return Err(self.unexpected("a value")),
        };
        self.advance();
        Ok(expr)
    }

    /// The elements of a `{ ... }` after its `{`.
    fn set_elements(&mut self, span: Span) -> Result<Expr> {
        self.nest()?;
        let mut elements = Vec::new();
        loop {
            self.skip_newlines();
            // nft refuses `{ }`, but allows a trailing comma.
            if !elements.is_empty() && self.eat(&Tok::RBrace) {
                break;
            }
            elements.push(self.set_element()?);
            self.skip_newlines();
            if self.eat(&Tok::Comma) {
                continue;
            }
            self.expect(&Tok::RBrace, "',' or '}'")?;
            break;
        }
        self.unnest();
        Ok(Expr::Set(elements, span))
    }

    /// `KEY [comment "..."] [: DATA]`
    fn set_element(&mut self) -> Result<SetElem> {
        let span = self.span();
        let key = self.concat()?;
        let comment = if self.eat_word("comment") {
            Some(self.string("a quoted comment")?)
        } else {
            None
        };
        let data = if self.eat(&Tok::Colon) {
            self.skip_newlines();
            Some(self.map_data()?)
        } else {
            None
        };
        Ok(SetElem {
            span,
            key,
            comment,
            data,
        })
    }

    /// A map element's data: a verdict (`accept`, `jump NAME`) or values.
    fn map_data(&mut self) -> Result<Expr> {
        let span = self.span();
        if self.is_word("jump") || self.is_word("goto") {
            let goto = self.is_word("goto");
            self.advance();
            let target = self.name("a chain name")?;
            return Ok(Expr::Jump { goto, target, span });
        }
        self.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn shell_patterns_match_as_glob_matches_file_names() {
        let yes = |p: &str, n: &str| assert!(glob_match(p.as_bytes(), n.as_bytes()), "{p} {n}");
        let no = |p: &str, n: &str| assert!(!glob_match(p.as_bytes(), n.as_bytes()), "{p} {n}");
        yes("*", "a.nft");
        yes("*.nft", "a.nft");
        no("*.nft", "a.nft.bak");
        yes("a*b*c", "axxbyyc");
        no("a*b*c", "axxbyy");
        yes("?-x", "1-x");
        no("?-x", "12-x");
        yes("[0-9]*", "10-a");
        no("[!0-9]*", "10-a");
        yes("[ab]", "b");
        no("[ab]", "c");
        yes("[", "[");
        yes("**", "");
        no("x", "");
        // Many stars on a long name stay fast (no exponential backtracking).
        no(&"*a".repeat(50), &"a".repeat(40));
    }
}
