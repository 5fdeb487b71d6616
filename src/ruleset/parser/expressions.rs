//! Values: lists, concatenations, ranges, prefixes, anonymous sets and
//! maps, and references to named ones.

use super::*;

impl<'b> Parser<'b> {
    /// `{ ... }`, `@name` or `$var` after `map`/`vmap`.
    pub(super) fn map_ref(&mut self) -> Result<Expr> {
        match self.peek() {
            Tok::LBrace | Tok::SetRef(_) | Tok::Var(_) => self.primary(),
            _ => Err(self.unexpected("'{', '@name' or '$variable'")),
        }
    }

    /// The right-hand side of a match or define: a flag list, concatenation,
    /// range, prefix, set or single value.
    pub(crate) fn rhs(&mut self) -> Result<Expr> {
        self.list()
    }

    /// `a,b,c` / `a|b|c`
    pub(super) fn list(&mut self) -> Result<Expr> {
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
    pub(super) fn range(&mut self) -> Result<Expr> {
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
    pub(super) fn primary(&mut self) -> Result<Expr> {
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
    use super::*;
    use crate::ruleset::test_support::{in_input_chain, parse_error, stmts};

    fn rhs(rule: &str) -> Expr {
        match stmts(rule).into_iter().next() {
            Some(StmtKind::Match { rhs, .. }) => rhs,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_anonymous_set_holds_ranges_and_prefixes() {
        let Expr::Set(elems, _) = rhs("ip saddr { 10.0.0.1-10.0.0.9, 192.168.0.0/16 }") else {
            panic!();
        };
        assert!(matches!(elems[0].key, Expr::Range(..)), "{elems:?}");
        assert!(matches!(elems[1].key, Expr::Prefix(_, 16, _)), "{elems:?}");
    }

    #[test]
    fn a_concatenation_is_one_value_of_several_parts() {
        let Expr::Set(elems, _) = rhs("ip saddr . tcp dport { 1.2.3.4 . 22 }") else {
            panic!();
        };
        assert!(
            matches!(&elems[0].key, Expr::Concat(parts, _) if parts.len() == 2),
            "{elems:?}"
        );
    }

    #[test]
    fn a_concatenation_missing_its_last_part_is_an_error_at_the_brace() {
        assert_eq!(
            parse_error(&in_input_chain("ip saddr { 1.2.3.4 . }")),
            "t.nft:4:22: syntax error, unexpected '}', expecting a value"
        );
    }

    #[test]
    fn an_unclosed_set_is_an_error_at_the_end_of_the_file() {
        assert_eq!(
            parse_error(&in_input_chain("ip saddr { 10.0.0.1")),
            "t.nft:7:1: syntax error, unexpected end of file, expecting '}'"
        );
    }
}
