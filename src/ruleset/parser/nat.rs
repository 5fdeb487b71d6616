//! NAT statements: `snat`, `dnat`, `masquerade`, `redirect`, with their
//! addresses, ports and flags.

use super::*;

impl<'b> Parser<'b> {
    /// `[to :PORT[-PORT]]` after masquerade; redirect also takes `to PORT`.
    pub(super) fn port_after_to(&mut self, colon_optional: bool) -> Result<Option<Expr>> {
        if !self.eat_word("to") {
            return Ok(None);
        }
        if !self.eat(&Tok::Colon) && !colon_optional {
            return Err(self.unexpected("':' and a port"));
        }
        Ok(Some(self.range()?))
    }

    /// `random`, `fully-random`, `persistent`, comma separated.
    pub(super) fn nat_flags(&mut self) -> Result<Vec<Name>> {
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
    pub(super) fn nat(&mut self, dnat: bool) -> Result<StmtKind> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::test_support::{in_input_chain, parse_error, stmts};

    #[test]
    fn dnat_to_an_address_and_port_has_both() {
        let kinds = stmts("dnat to 10.0.0.1:8080");
        assert!(
            matches!(
                &kinds[..],
                [StmtKind::Nat {
                    dnat: true,
                    target: NatTarget::Addr {
                        addr: Some(_),
                        port: Some(_)
                    },
                    ..
                }]
            ),
            "{kinds:?}"
        );
    }

    #[test]
    fn masquerade_takes_a_port_range_and_flags() {
        let kinds = stmts("masquerade to :1024-2048 random");
        let [
            StmtKind::Masquerade {
                port: Some(Expr::Range(..)),
                flags,
            },
        ] = kinds.as_slice()
        else {
            panic!("{kinds:?}");
        };
        assert_eq!(flags[0].text, "random");
    }

    #[test]
    fn dnat_without_a_target_is_an_error_at_the_end_of_the_line() {
        assert_eq!(
            parse_error(&in_input_chain("dnat to")),
            "t.nft:4:8: syntax error, unexpected end of line, expecting a value"
        );
    }
}
