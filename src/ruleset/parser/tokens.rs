//! Token helpers: looking ahead, eating words and separators, names within
//! the kernel's length, and the nesting limit.

use super::*;

impl<'b> Parser<'b> {
    pub(super) fn token(&self, ahead: usize) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.pos + ahead).min(last)]
    }

    pub(super) fn peek(&self) -> &Tok {
        &self.token(0).tok
    }

    pub(super) fn span(&self) -> Span {
        self.token(0).span.clone()
    }

    pub(super) fn advance(&mut self) -> Token {
        let token = self.token(0).clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        token
    }

    pub(super) fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w == word)
    }

    pub(super) fn is_word_at(&self, ahead: usize, word: &str) -> bool {
        matches!(&self.token(ahead).tok, Tok::Word(w) if w == word)
    }

    pub(super) fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(word);
        if found {
            self.advance();
        }
        found
    }

    pub(super) fn eat(&mut self, tok: &Tok) -> bool {
        let found = self.peek() == tok;
        if found {
            self.advance();
        }
        found
    }

    pub(super) fn unexpected(&self, expecting: &str) -> Error {
        Error::new(
            self.span(),
            format!(
                "syntax error, unexpected {}, expecting {expecting}",
                self.peek().describe()
            ),
        )
    }

    pub(super) fn expect(&mut self, tok: &Tok, expecting: &str) -> Result<Span> {
        let span = self.span();
        if self.eat(tok) {
            Ok(span)
        } else {
            Err(self.unexpected(expecting))
        }
    }

    pub(super) fn expect_word(&mut self, word: &str) -> Result<Span> {
        let span = self.span();
        if self.eat_word(word) {
            Ok(span)
        } else {
            Err(self.unexpected(&format!("'{word}'")))
        }
    }

    /// Any bare word, keyword or not (types, hooks, flags, codes).
    pub(super) fn word(&mut self, expecting: &str) -> Result<Name> {
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
    pub(super) fn name(&mut self, what: &str) -> Result<Name> {
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

    pub(super) fn string(&mut self, expecting: &str) -> Result<Name> {
        match self.peek().clone() {
            Tok::Str(text) => Ok(Name {
                text,
                span: self.advance().span,
            }),
            _ => Err(self.unexpected(expecting)),
        }
    }

    pub(super) fn number(&mut self, expecting: &str) -> Result<(u64, Span)> {
        match *self.peek() {
            Tok::Number(n) => Ok((n, self.advance().span)),
            _ => Err(self.unexpected(expecting)),
        }
    }

    fn at_separator(&self) -> bool {
        matches!(self.peek(), Tok::Newline | Tok::Semicolon)
    }

    /// The newline or `;` that ends every item of a block.
    pub(super) fn separator(&mut self) -> Result<()> {
        if self.at_separator() {
            self.advance();
            Ok(())
        } else {
            Err(self.unexpected("newline or ';'"))
        }
    }

    pub(super) fn skip_separators(&mut self) {
        while self.at_separator() {
            self.advance();
        }
    }

    pub(super) fn skip_newlines(&mut self) {
        while self.eat(&Tok::Newline) {}
    }

    /// Whether the block being parsed ends here, consuming its `}`.
    pub(super) fn block_ends(&mut self, end: End) -> Result<bool> {
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

    pub(super) fn nest(&mut self) -> Result<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(Error::new(
                self.span(),
                format!("values nest more than {MAX_NESTING} levels deep"),
            ));
        }
        Ok(())
    }

    pub(super) fn unnest(&mut self) {
        self.nesting -= 1;
    }
}

#[cfg(test)]
mod tests {
    use crate::ruleset::test_support::parse_error;

    #[test]
    fn a_name_longer_than_the_kernel_takes_is_an_error_at_the_name() {
        let text = format!("table ip {} {{}}\n", "a".repeat(256));
        assert_eq!(
            parse_error(&text),
            "t.nft:1:10: a table name of 256 bytes is longer than the kernel's limit of 255 (NFT_NAME_MAXLEN)"
        );
    }

    #[test]
    fn two_items_on_one_line_need_a_separator_between_them() {
        assert_eq!(
            parse_error("table ip t {\nchain c {} chain d {}\n}\n"),
            "t.nft:2:12: syntax error, unexpected 'chain', expecting newline or ';'"
        );
    }
}
