//! Keys and matches: `ip saddr`, `tcp dport`, `meta ...`, `fib ...`,
//! concatenations, and what follows a key (a value, `vmap`, `set`).

use super::*;

impl<'b> Parser<'b> {
    /// A selector like `ip saddr` or `fib daddr type`, if one starts here.
    pub(super) fn key(&mut self) -> Result<Option<Key>> {
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
                ("pkttype", Selector::MetaPkttype),
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
            "ip6" => &[
                ("saddr", Selector::Ip6Saddr),
                ("daddr", Selector::Ip6Daddr),
                ("version", Selector::Ip6Version),
                ("dscp", Selector::Ip6Dscp),
                ("ecn", Selector::Ip6Ecn),
                ("flowlabel", Selector::Ip6Flowlabel),
                ("length", Selector::Ip6Length),
                ("nexthdr", Selector::Ip6Nexthdr),
                ("hoplimit", Selector::Ip6Hoplimit),
            ],
            "icmpv6" => &[
                ("type", Selector::Icmpv6Type),
                ("code", Selector::Icmpv6Code),
                ("checksum", Selector::Icmpv6Checksum),
                ("id", Selector::Icmpv6Id),
                ("sequence", Selector::Icmpv6Sequence),
                ("mtu", Selector::Icmpv6Mtu),
                ("max-delay", Selector::Icmpv6MaxDelay),
            ],
            "igmp" => &[("type", Selector::IgmpType)],
            "icmp" => &[("type", Selector::IcmpType), ("code", Selector::IcmpCode)],
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
                ("direction", Selector::CtDirection),
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
        if first == "ct" && matches!(field.as_str(), "original" | "reply") {
            self.advance();
            return Ok(Some(Key {
                selector: self.ct_addr(field == "reply")?,
                span,
            }));
        }
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

    /// After `ct original|reply`: `ip|ip6 saddr|daddr`.
    fn ct_addr(&mut self, reply: bool) -> Result<Selector> {
        let ipv6 = self.one_of("'ip' or 'ip6'", &[("ip", false), ("ip6", true)])?;
        let saddr = self.one_of("'saddr' or 'daddr'", &[("saddr", true), ("daddr", false)])?;
        Ok(Selector::CtAddr(CtAddr { reply, ipv6, saddr }))
    }

    /// The value of the word here among `choices`, or a syntax error
    /// naming what was `expecting`.
    fn one_of<T: Copy>(&mut self, expecting: &str, choices: &[(&str, T)]) -> Result<T> {
        let word = self.word(expecting)?;
        match choices.iter().find(|(name, _)| *name == word.text) {
            Some((_, value)) => Ok(*value),
            None => Err(Error::new(
                word.span,
                format!(
                    "syntax error, unexpected '{}', expecting {expecting}",
                    word.text
                ),
            )),
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
    pub(super) fn more_keys(&mut self, first: Key) -> Result<Vec<Key>> {
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
    pub(super) fn after_key(&mut self, first: Key) -> Result<StmtKind> {
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
        if let Some(first) = self.key()? {
            let key = self.more_keys(first)?;
            self.expect_word("map")?;
            return Ok(MarkSource::Map {
                key,
                map: self.map_ref()?,
            });
        }
        Ok(MarkSource::Value(self.primary()?))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::test_support::{in_input_chain, parse_error, stmts};

    #[test]
    fn a_match_has_its_key_operator_and_value() {
        let kinds = stmts("ip saddr != 10.0.0.1");
        let [StmtKind::Match { key, op, rhs, .. }] = kinds.as_slice() else {
            panic!("{kinds:?}");
        };
        assert_eq!(key.len(), 1);
        assert_eq!(*op, MatchOp::Ne);
        assert!(
            matches!(rhs, Expr::Ipv4(addr, _) if addr.octets() == [10, 0, 0, 1]),
            "{rhs:?}"
        );
    }

    #[test]
    fn a_fib_lookup_is_one_key() {
        let kinds = stmts("fib daddr type local accept");
        assert!(
            matches!(&kinds[0], StmtKind::Match { key, .. } if matches!(key[0].selector, Selector::Fib(_))),
            "{kinds:?}"
        );
    }

    #[test]
    fn a_misspelt_field_suggests_the_field_meant() {
        assert_eq!(
            parse_error(&in_input_chain("tcp dprot 22")),
            "t.nft:4:5: syntax error, unexpected 'dprot': 'tcp' has no field 'dprot'; did you mean 'tcp dport'?"
        );
    }

    #[test]
    fn a_ct_tuple_address_names_its_direction_family_and_end() {
        let kinds = stmts("ct reply ip6 saddr fd00::2");
        let want = Selector::CtAddr(CtAddr {
            reply: true,
            ipv6: true,
            saddr: true,
        });
        assert!(
            matches!(&kinds[0], StmtKind::Match { key, .. } if key[0].selector == want),
            "{kinds:?}"
        );
    }

    #[test]
    fn a_ct_tuple_address_of_no_family_is_refused_at_the_word() {
        assert_eq!(
            parse_error(&in_input_chain("ct original inet saddr 10.0.0.1")),
            "t.nft:4:13: syntax error, unexpected 'inet', expecting 'ip' or 'ip6'"
        );
    }
}
