//! Source text to tokens, each with the line and column it starts at.
//!
//! nft syntax is line oriented: a newline ends a statement like `;` does, so
//! newlines are tokens. `#` starts a comment to the end of the line.
//! Addresses are recognised here, because their `.` and `:` would otherwise
//! read as concatenation and map punctuation: `10.0.0.1`, `fe80::1`,
//! `::ffff:1.2.3.4`. An IPv6 address next to a port needs brackets, as in nft:
//! `[fe80::1]:80`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::ast::Span;
use super::error::Error;

/// The largest file the loader reads: far above any real ruleset (10,000
/// rules are about 1 MiB), and small enough that nothing runs out of memory.
pub const MAX_FILE_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A keyword or an identifier: `table`, `tcp`, `established`, `eth0`,
    /// `port-unreachable`, `eth0.100`. A trailing `*` is kept (`veth*`).
    Word(String),
    /// Digits run together with letters, like `30s` or `1h30m` (durations).
    NumWord(String),
    /// A decimal or `0x` hexadecimal number.
    Number(u64),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    /// A MAC address: six groups of one or two hex digits, `02:42:ac:10:0:2`.
    EtherAddr([u8; 6]),
    /// `"..."`, without the quotes.
    Str(String),
    /// `$name`
    Var(String),
    /// `@name`
    SetRef(String),
    Newline,
    Semicolon,
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Dot,
    Slash,
    Dash,
    Plus,
    Assign,
    Eq,
    Ne,
    Amp,
    Pipe,
    /// `!`: "none of these flags" (`tcp flags ! fin,syn`).
    Bang,
    /// `<`, `>`, `<=`, `>=`: lexed only to refuse them with a clear message.
    Relational(&'static str),
    Eof,
}

impl Tok {
    /// How an error message names the token.
    pub fn describe(&self) -> String {
        match self {
            Tok::Word(w) | Tok::NumWord(w) => format!("'{w}'"),
            Tok::Number(n) => format!("'{n}'"),
            Tok::Ipv4(a) => format!("'{a}'"),
            Tok::Ipv6(a) => format!("'{a}'"),
            Tok::EtherAddr(a) => format!("'{}'", format_ether(a)),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Var(v) => format!("'${v}'"),
            Tok::SetRef(s) => format!("'@{s}'"),
            Tok::Newline => "end of line".to_string(),
            Tok::Eof => "end of file".to_string(),
            Tok::Relational(op) => format!("'{op}'"),
            other => format!("'{}'", other.punct()),
        }
    }

    fn punct(&self) -> &'static str {
        match self {
            Tok::Semicolon => ";",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Colon => ":",
            Tok::Dot => ".",
            Tok::Slash => "/",
            Tok::Dash => "-",
            Tok::Plus => "+",
            Tok::Assign => "=",
            Tok::Eq => "==",
            Tok::Ne => "!=",
            Tok::Amp => "&",
            Tok::Pipe => "|",
            Tok::Bang => "!",
            _ => "?",
        }
    }
}

/// A MAC address as nft prints it: `02:42:ac:10:00:02`.
pub fn format_ether(addr: &[u8; 6]) -> String {
    addr.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Splits `text` into tokens; the last one is always `Eof`.
pub fn tokenize(file: &Arc<str>, text: &str) -> Result<Vec<Token>, Error> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Error::file(
            file.clone(),
            format!("file is larger than {} MiB", MAX_FILE_BYTES >> 20),
        ));
    }
    let mut lexer = Lexer {
        file: file.clone(),
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        col: 1,
    };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let done = token.tok == Tok::Eof;
        tokens.push(token);
        if done {
            return Ok(tokens);
        }
    }
}

struct Lexer {
    file: Arc<str>,
    chars: Vec<char>,
    pos: usize,
    line: u32,
    col: u32,
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// Characters that continue a word, as in nft (`seen-reply`, `eth0.100`).
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// Characters of a variable, set or chain name after `$` or `@`.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn is_ipv6_char(c: char) -> bool {
    c.is_ascii_hexdigit() || c == ':' || c == '.'
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek(0).filter(|&c| keep(c)) {
            out.push(c);
            self.bump();
        }
        out
    }

    fn span(&self) -> Span {
        Span::new(self.file.clone(), self.line, self.col)
    }

    fn next_token(&mut self) -> Result<Token, Error> {
        // Blanks and comments; a backslash before a newline joins lines.
        loop {
            match self.peek(0) {
                Some(' ' | '\t') => {
                    self.bump();
                }
                // nft takes no carriage return anywhere ("unexpected junk").
                Some('\r') => {
                    return Err(Error::new(
                        self.span(),
                        "unexpected carriage return: nft does not read CRLF line endings (convert the file to LF, e.g. with dos2unix)",
                    ));
                }
                Some('\\') if self.peek(1) == Some('\n') => {
                    self.bump();
                    self.bump();
                }
                Some('#') => {
                    self.take_while(|c| c != '\n');
                }
                _ => break,
            }
        }
        let span = self.span();
        let Some(c) = self.peek(0) else {
            return Ok(Token {
                tok: Tok::Eof,
                span,
            });
        };
        let tok = if let Some(addr) = self.ether_address() {
            Tok::EtherAddr(addr)
        } else if let Some(addr) = self.ipv6_address() {
            Tok::Ipv6(addr)
        } else if c.is_ascii_digit() {
            self.number_or_address(&span)?
        } else if is_word_start(c) {
            let mut word = self.take_while(is_word_char);
            if self.peek(0) == Some('*') {
                self.bump();
                word.push('*');
            }
            Tok::Word(word)
        } else if c == '"' {
            self.string(&span)?
        } else if c == '$' || c == '@' {
            self.bump();
            let name = self.take_while(is_name_char);
            if name.is_empty() || !name.starts_with(is_word_start) {
                return Err(Error::new(span, format!("expected a name after '{c}'")));
            }
            if c == '$' {
                Tok::Var(name)
            } else {
                Tok::SetRef(name)
            }
        } else {
            self.punctuation(c, &span)?
        };
        Ok(Token { tok, span })
    }

    /// A MAC address starting here: exactly six groups of one or two hex
    /// digits joined by `:`, not followed by more of a word or address (so
    /// an IPv6 address, a port and a map colon stay what they are).
    fn ether_address(&mut self) -> Option<[u8; 6]> {
        let mut addr = [0u8; 6];
        let mut at = 0;
        for (i, byte) in addr.iter_mut().enumerate() {
            if i > 0 {
                if self.peek(at) != Some(':') {
                    return None;
                }
                at += 1;
            }
            let digits = (0..2)
                .take_while(|&k| self.peek(at + k).is_some_and(|c| c.is_ascii_hexdigit()))
                .count();
            if digits == 0 {
                return None;
            }
            let text: String = (0..digits).filter_map(|k| self.peek(at + k)).collect();
            *byte = u8::from_str_radix(&text, 16).ok()?;
            at += digits;
        }
        if self
            .peek(at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '*'))
        {
            return None;
        }
        for _ in 0..at {
            self.bump();
        }
        Some(addr)
    }

    /// The longest IPv6 address starting here, if any. It must hold at
    /// least two colons, so `80:` or `ab:` stay a number or word and a colon.
    fn ipv6_address(&mut self) -> Option<Ipv6Addr> {
        // No IPv6 address is longer than 45 characters; bounding the run
        // keeps this linear on hostile input.
        let run: String = self.chars[self.pos..]
            .iter()
            .take(46)
            .take_while(|&&c| is_ipv6_char(c))
            .collect();
        if run.matches(':').count() < 2 {
            return None;
        }
        let followed_by_word = |len: usize| {
            self.peek(len)
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        for len in (2..=run.len()).rev() {
            let candidate = &run[..len];
            if candidate.matches(':').count() < 2 || followed_by_word(len) {
                continue;
            }
            if let Ok(addr) = candidate.parse::<Ipv6Addr>() {
                for _ in 0..len {
                    self.bump();
                }
                return Some(addr);
            }
        }
        None
    }

    fn number_or_address(&mut self, span: &Span) -> Result<Tok, Error> {
        if self.peek(0) == Some('0') && matches!(self.peek(1), Some('x' | 'X')) {
            self.bump();
            self.bump();
            let digits = self.take_while(|c| c.is_ascii_alphanumeric());
            return u64::from_str_radix(&digits, 16)
                .map(Tok::Number)
                .map_err(|_| Error::new(span.clone(), format!("invalid number '0x{digits}'")));
        }
        let text = self.take_while(|c| c.is_ascii_alphanumeric() || c == '.');
        if text.contains('.') {
            return text
                .parse::<Ipv4Addr>()
                .map(Tok::Ipv4)
                .map_err(|_| Error::new(span.clone(), format!("invalid address '{text}'")));
        }
        if text.chars().all(|c| c.is_ascii_digit()) {
            return text
                .parse::<u64>()
                .map(Tok::Number)
                .map_err(|_| Error::new(span.clone(), format!("number '{text}' is too large")));
        }
        Ok(Tok::NumWord(text))
    }

    fn string(&mut self, span: &Span) -> Result<Tok, Error> {
        self.bump();
        let text = self.take_while(|c| c != '"' && c != '\n');
        if self.bump() != Some('"') {
            return Err(Error::new(span.clone(), "unterminated string"));
        }
        Ok(Tok::Str(text))
    }

    fn punctuation(&mut self, c: char, span: &Span) -> Result<Tok, Error> {
        let double = match (c, self.peek(1)) {
            ('=', Some('=')) => Some(Tok::Eq),
            ('!', Some('=')) => Some(Tok::Ne),
            ('<', Some('=')) => Some(Tok::Relational("<=")),
            ('>', Some('=')) => Some(Tok::Relational(">=")),
            _ => None,
        };
        if let Some(tok) = double {
            self.bump();
            self.bump();
            return Ok(tok);
        }
        let tok = match c {
            '\n' => Tok::Newline,
            ';' => Tok::Semicolon,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            ':' => Tok::Colon,
            '.' => Tok::Dot,
            '/' => Tok::Slash,
            '-' => Tok::Dash,
            '+' => Tok::Plus,
            '=' => Tok::Assign,
            '&' => Tok::Amp,
            '|' => Tok::Pipe,
            '!' => Tok::Bang,
            '<' => Tok::Relational("<"),
            '>' => Tok::Relational(">"),
            other => {
                let shown = if other.is_control() {
                    format!("{:?}", other)
                } else {
                    format!("'{other}'")
                };
                return Err(Error::new(
                    span.clone(),
                    format!("unexpected character {shown}"),
                ));
            }
        };
        self.bump();
        Ok(tok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        let file: Arc<str> = Arc::from("t.nft");
        tokenize(&file, text)
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn addresses_ports_and_map_colons_are_told_apart() {
        assert_eq!(
            toks("80 : 10.0.0.2 . 8080"),
            vec![
                Tok::Number(80),
                Tok::Colon,
                Tok::Ipv4("10.0.0.2".parse().unwrap()),
                Tok::Dot,
                Tok::Number(8080),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("fe80::1/64"),
            vec![
                Tok::Ipv6("fe80::1".parse().unwrap()),
                Tok::Slash,
                Tok::Number(64),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("[::1]:80"),
            vec![
                Tok::LBracket,
                Tok::Ipv6("::1".parse().unwrap()),
                Tok::RBracket,
                Tok::Colon,
                Tok::Number(80),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn mac_addresses_are_one_token_but_ipv6_ports_and_map_colons_are_not() {
        assert_eq!(
            toks("02:42:ac:10:0:2 . ff:FF:ff:ff:ff:ff-00:00:00:00:00:00"),
            vec![
                Tok::EtherAddr([2, 0x42, 0xac, 0x10, 0, 2]),
                Tok::Dot,
                Tok::EtherAddr([0xff; 6]),
                Tok::Dash,
                Tok::EtherAddr([0; 6]),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("1:2:3:4:5:6:7:8"),
            vec![Tok::Ipv6("1:2:3:4:5:6:7:8".parse().unwrap()), Tok::Eof]
        );
        assert_eq!(toks("02:42:ac:10:00")[0], Tok::Number(2));
        assert_eq!(toks("ab:cd")[0], Tok::Word("ab".into()));
    }

    #[test]
    fn words_keep_dashes_dots_and_a_trailing_star() {
        assert_eq!(
            toks("seen-reply eth0.100 veth* 0x10 30s"),
            vec![
                Tok::Word("seen-reply".into()),
                Tok::Word("eth0.100".into()),
                Tok::Word("veth*".into()),
                Tok::Number(16),
                Tok::NumWord("30s".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn comments_end_at_the_newline_which_is_a_token() {
        assert_eq!(
            toks("accept # c\n$x @s"),
            vec![
                Tok::Word("accept".into()),
                Tok::Newline,
                Tok::Var("x".into()),
                Tok::SetRef("s".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let file: Arc<str> = Arc::from("t.nft");
        let tokens = tokenize(&file, "a\n  b").unwrap();
        assert_eq!((tokens[2].span.line, tokens[2].span.col), (2, 3));
    }

    #[test]
    fn an_unterminated_string_is_an_error_at_its_quote() {
        let file: Arc<str> = Arc::from("t.nft");
        let err = tokenize(&file, "x \"abc\n").unwrap_err();
        assert_eq!(err.to_string(), "t.nft:1:3: unterminated string");
    }
}
