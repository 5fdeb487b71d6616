//! A rule and its statements: verdicts, counter, log, reject, and the
//! words the loader does not read.

use super::*;

impl<'b> Parser<'b> {
    /// Statements up to the end of the line, `;` or `}`; a `comment "..."`
    /// may only come last.
    pub(super) fn rule(&mut self) -> Result<RuleLine> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::test_support::{in_input_chain, parse_error, stmts};

    #[test]
    fn a_rule_is_its_statements_in_order() {
        let kinds = stmts("counter packets 1 bytes 2 log accept");
        assert!(
            matches!(
                kinds.as_slice(),
                [
                    StmtKind::Counter {
                        packets: 1,
                        bytes: 2
                    },
                    StmtKind::Log { prefix: None },
                    StmtKind::Verdict(_)
                ]
            ),
            "{kinds:?}"
        );
    }

    #[test]
    fn reject_with_tcp_reset_names_tcp() {
        let kinds = stmts("reject with tcp reset");
        assert!(
            matches!(&kinds[..], [StmtKind::Reject { with: Some(w), code: None }] if w.text == "tcp"),
            "{kinds:?}"
        );
    }

    #[test]
    fn a_misspelt_statement_suggests_the_word_meant() {
        assert_eq!(
            parse_error(&in_input_chain("acept")),
            "t.nft:4:1: syntax error, unexpected 'acept', expecting a statement; did you mean 'accept'?"
        );
    }
}
