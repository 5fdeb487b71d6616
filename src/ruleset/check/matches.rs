//! Matches: the selectors of a key (and the protocol context they give the
//! rule), the value they are compared with, masks and verdict maps.

use super::sets::check_key_types;
use super::*;

impl Checker {
    /// Notes what a selector tells about the rule's protocols, refusing
    /// conflicts as nft does (`tcp dport 22 udp dport 53`).
    fn selector_context(&mut self, ctx: &mut RuleCtx, key: &Key) -> Result<()> {
        use Selector as S;
        let conflict = |have: &str, want: &str| {
            Error::new(
                key.span.clone(),
                format!("conflicting protocols specified: {have} vs. {want}"),
            )
        };
        let l3_name = |l3: L3| match l3 {
            L3::Ip => "ip",
            L3::Ip6 => "ip6",
            L3::Arp => "arp",
        };
        let bridge_only = |what: &str| {
            Error::new(
                key.span.clone(),
                format!(
                    "'{what}' is only supported by this loader in bridge tables, not in {} tables",
                    ctx.table.family.name()
                ),
            )
        };
        match key.selector {
            S::IpSaddr | S::IpDaddr | S::IpProtocol => match ctx.l3 {
                Some(other @ (L3::Ip6 | L3::Arp)) => return Err(conflict(l3_name(other), "ip")),
                _ => ctx.l3 = Some(L3::Ip),
            },
            S::Ip6Saddr
            | S::Ip6Daddr
            | S::Ip6Version
            | S::Ip6Dscp
            | S::Ip6Ecn
            | S::Ip6Flowlabel
            | S::Ip6Length
            | S::Ip6Nexthdr
            | S::Ip6Hoplimit => match ctx.l3 {
                Some(other @ (L3::Ip | L3::Arp)) => return Err(conflict(l3_name(other), "ip6")),
                _ => ctx.l3 = Some(L3::Ip6),
            },
            // A conntrack address names its IP version and needs no check
            // of it, but one the table or the rule excludes could never
            // match: nft refuses it (and it loaded, silently dead).
            S::CtAddr(addr) => {
                let (wanted, excluded): (&str, &[L3]) = match addr.ipv6 {
                    false => ("ip", &[L3::Ip6, L3::Arp]),
                    true => ("ip6", &[L3::Ip, L3::Arp]),
                };
                if let Some(other) = ctx.l3.filter(|l3| excluded.contains(l3)) {
                    return Err(conflict(l3_name(other), wanted));
                }
            }
            // nft drops `meta protocol ip` in an ip table as implied by the
            // family, but keeps `meta protocol { ip, arp }`: too subtle to
            // mirror for a match that tells nothing there.
            S::MetaProtocol if matches!(ctx.table.family, Family::Ip | Family::Ip6) => {
                return Err(Error::new(
                    key.span.clone(),
                    format!(
                        "'meta protocol' is only supported by this loader in bridge and inet tables, not in {} tables",
                        ctx.table.family.name()
                    ),
                ));
            }
            S::EtherSaddr | S::EtherDaddr | S::EtherType if ctx.table.family != Family::Bridge => {
                return Err(bridge_only("ether"));
            }
            S::ArpHtype
            | S::ArpPtype
            | S::ArpHlen
            | S::ArpPlen
            | S::ArpOperation
            | S::ArpSaddrIp
            | S::ArpDaddrIp
            | S::ArpSaddrEther
            | S::ArpDaddrEther => {
                if ctx.table.family != Family::Bridge {
                    return Err(bridge_only("arp"));
                }
                match ctx.l3 {
                    Some(other @ (L3::Ip | L3::Ip6)) => {
                        return Err(conflict(l3_name(other), "arp"));
                    }
                    _ => ctx.l3 = Some(L3::Arp),
                }
            }
            S::TcpSport | S::TcpDport | S::TcpFlags | S::UdpSport | S::UdpDport => {
                let (proto, name) = match key.selector {
                    S::UdpSport | S::UdpDport => (17, "udp"),
                    _ => (6, "tcp"),
                };
                // With several protocols in the context nft names the
                // first one that is not this one.
                match ctx.l4.iter().find(|&&have| have != proto) {
                    Some(&other) => return Err(conflict(&proto_name(other), name)),
                    None => ctx.learn_l4(proto),
                }
            }
            S::Icmpv6Type
            | S::Icmpv6Code
            | S::Icmpv6Checksum
            | S::Icmpv6Id
            | S::Icmpv6Sequence
            | S::Icmpv6Mtu
            | S::Icmpv6MaxDelay => {
                if let Some(&other) = ctx.l4.iter().find(|&&have| have != IPPROTO_ICMPV6) {
                    return Err(conflict(&proto_name(other), "icmpv6"));
                }
                ctx.learn_l4(IPPROTO_ICMPV6);
                // Where the family is open nft checks for IPv6 first, but
                // an earlier `ip ...` match is no conflict to nft.
                if ctx.l3.is_none() {
                    ctx.l3 = Some(L3::Ip6);
                }
                if let (Some(need), Some(have)) =
                    (key.selector.icmpv6_types_needed(), ctx.icmpv6_type)
                {
                    if !need.contains(&have) {
                        return Err(Error::new(
                            key.span.clone(),
                            format!("incompatible icmp match: rule has {have}, need {}", need[0]),
                        ));
                    }
                }
            }
            S::IgmpType | S::IcmpType | S::IcmpCode => {
                let (proto, name) = match key.selector {
                    S::IgmpType => (IPPROTO_IGMP, "igmp"),
                    _ => (IPPROTO_ICMP, "icmp"),
                };
                if let Some(&other) = ctx.l4.iter().find(|&&have| have != proto) {
                    return Err(conflict(&proto_name(other), name));
                }
                match ctx.l3 {
                    Some(L3::Arp) => return Err(conflict(l3_name(L3::Arp), name)),
                    // As for icmpv6: nft checks for IPv4 first where the
                    // family is open, an earlier `ip6 ...` is no conflict.
                    None => ctx.l3 = Some(L3::Ip),
                    Some(_) => {}
                }
                ctx.learn_l4(proto);
            }
            S::MetaNfproto if ctx.table.family != Family::Inet => {
                return Err(Error::new(
                    key.span.clone(),
                    "meta nfproto is only useful in the inet family",
                ));
            }
            S::Fib(_) if ctx.table.family == Family::Bridge => {
                return Err(Error::new(
                    key.span.clone(),
                    "fib is not possible in a bridge table (the kernel has fib lookups for ip, ip6 and inet only)",
                ));
            }
            S::Fib(fib) => {
                if fib.iif && fib.oif {
                    return Err(Error::new(
                        key.span.clone(),
                        "fib: iif and oif are mutually exclusive",
                    ));
                }
                let hooks: &'static [Hook] = if fib.iif {
                    &[Hook::Prerouting, Hook::Input, Hook::Forward]
                } else if fib.oif {
                    &[Hook::Output, Hook::Postrouting, Hook::Forward]
                } else {
                    &[]
                };
                if !hooks.is_empty() {
                    let what = if fib.iif {
                        "fib with iif"
                    } else {
                        "fib with oif"
                    };
                    self.need(ctx, &key.span, what, false, hooks);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The types of a (concatenated) key, noting its protocols.
    pub(super) fn key_types(&mut self, ctx: &mut RuleCtx, key: &[Key]) -> Result<Vec<DataType>> {
        for k in key {
            self.selector_context(ctx, k)?;
            // nft 1.0.6 shifts such a field in a concatenation and lists
            // it back as something else (`ip6 dscp >> 6 . tcp dport { cs0
            // . 22 }`): what it loads cannot be read again.
            if key.len() > 1 && k.selector.is_sub_byte() {
                return Err(Error::new(
                    k.span.clone(),
                    format!(
                        "'{}' in a concatenation is not supported by this loader",
                        selector_words(k.selector)
                    ),
                ));
            }
        }
        Ok(key.iter().map(|k| k.selector.data_type()).collect())
    }

    /// `KEY [& MASK] [OP] RHS`
    pub(super) fn match_stmt(
        &mut self,
        ctx: &mut RuleCtx,
        key: &[Key],
        mask: Option<&Expr>,
        op: MatchOp,
        op_span: &Span,
        rhs: &Expr,
    ) -> Result<Match> {
        let types = self.key_types(ctx, key)?;
        let mask = match mask {
            None => None,
            Some(expr) => Some(self.mask(key, &types, expr)?),
        };
        let rhs_expr = self.scopes.expand(rhs)?;
        let rhs = self.rhs(ctx, &types, &rhs_expr)?;
        if let (Some(_), Rhs::Set(_) | Rhs::Named(_)) = (&mask, &rhs) {
            return Err(Error::new(
                op_span.clone(),
                "a masked match compares with one value, not a set",
            ));
        }
        // `meta l4proto tcp` and `ip protocol udp` tell the rule's transport.
        if op != MatchOp::Ne {
            if let [
                Key {
                    selector: Selector::MetaL4proto | Selector::IpProtocol | Selector::Ip6Nexthdr,
                    ..
                },
            ] = key
            {
                // As the compiler learns them: single protocols, alone or
                // in an anonymous set; ranges and named sets add none.
                let protos: Vec<u8> = match &rhs {
                    Rhs::Value(v) => v.iter().collect::<Vec<_>>(),
                    Rhs::Set(elements) => elements.iter().flat_map(|e| &e.key).collect(),
                    Rhs::Named(_) => Vec::new(),
                }
                .into_iter()
                .filter_map(|value| match value {
                    Value::Single(Scalar::Proto(p)) => Some(*p),
                    _ => None,
                })
                .collect();
                for proto in protos {
                    ctx.learn_l4(proto);
                }
                ctx.l4_matched = true;
            }
            if let (
                [
                    Key {
                        selector: Selector::Icmpv6Type,
                        ..
                    },
                ],
                Rhs::Value(v),
            ) = (key, &rhs)
            {
                if let [Value::Single(Scalar::Icmpv6Type(t))] = v.as_slice() {
                    ctx.icmpv6_type = Some(*t);
                }
            }
            if let (
                [
                    Key {
                        selector: Selector::MetaNfproto,
                        ..
                    },
                ],
                Rhs::Value(v),
            ) = (key, &rhs)
            {
                match v.as_slice() {
                    [Value::Single(Scalar::NfProto(2))] => ctx.l3 = Some(L3::Ip),
                    [Value::Single(Scalar::NfProto(10))] => ctx.l3 = Some(L3::Ip6),
                    _ => {}
                }
            }
        }
        Ok(Match {
            key: key.iter().map(|k| k.selector).collect(),
            mask,
            op,
            rhs,
        })
    }

    /// `& MASK`: flags or a number, on one bitmask or mark key.
    fn mask(&self, key: &[Key], types: &[DataType], expr: &Expr) -> Result<u32> {
        let expr = self.scopes.expand(expr)?;
        match types {
            [ty] if values::is_bitmask(*ty) => Ok(match values::flags(&expr, *ty)? {
                Scalar::CtState(b) | Scalar::CtStatus(b) => b,
                Scalar::TcpFlags(b) => u32::from(b),
                _ => 0,
            }),
            [DataType::Mark] => match values::scalar(&expr, DataType::Mark)? {
                Scalar::Mark(m) => Ok(m),
                _ => unreachable_mark(&expr),
            },
            _ => Err(Error::new(
                key[0].span.clone(),
                "a mask (&) only applies to ct state, ct status, tcp flags and marks",
            )),
        }
    }

    fn rhs(&mut self, ctx: &RuleCtx, types: &[DataType], expr: &Expr) -> Result<Rhs> {
        match expr {
            Expr::Set(elems, _) => {
                let mut elements = Vec::with_capacity(elems.len());
                for elem in elems {
                    elements.push(self.element(ctx.table, elem, types, None, &mut Vec::new())?);
                }
                let elements = intervals::dedupe(elements);
                Ok(Rhs::Set(if needs_interval(&elements) {
                    intervals::merge(elements)
                } else {
                    elements
                }))
            }
            Expr::SetRef(name) => {
                // A map's keys are a set too (the kernel looks a named
                // map up without its data; nft allows it).
                let info = self.set_info(ctx.table, name)?;
                check_key_types(name, &info.key, types)?;
                Ok(Rhs::Named(SetRef {
                    name: name.text.clone(),
                    span: name.span.clone(),
                }))
            }
            _ => Ok(Rhs::Value(values::tuple(expr, types)?)),
        }
    }

    /// `KEY vmap { ... }` / `KEY vmap @m`
    pub(super) fn vmap(
        &mut self,
        ctx: &mut RuleCtx,
        key: &[Key],
        map: &Expr,
    ) -> Result<VerdictMap> {
        let types = self.key_types(ctx, key)?;
        let map = match self.scopes.expand(map)? {
            Expr::Set(elems, _) => self.anonymous_map(ctx, &elems, &types, &MapData::Verdict)?,
            Expr::SetRef(name) => {
                let vmap = Edge::Vmap(name.text.clone());
                let verdicts =
                    |data: Option<&MapData>| (data == Some(&MapData::Verdict)).then_some(());
                let needs = "is not a verdict map (type ... : verdict)";
                let (map, ()) = self.named_map(ctx.table, name, &types, verdicts, needs)?;
                self.edge(ctx, vmap);
                map
            }
            other => return Err(not_a_map(&other)),
        };
        Ok(VerdictMap {
            key: key.iter().map(|k| k.selector).collect(),
            map,
        })
    }
}

const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_IGMP: u8 = 2;
const IPPROTO_ICMP: u8 = 1;

fn selector_words(sel: Selector) -> &'static str {
    match sel {
        Selector::Ip6Version => "ip6 version",
        Selector::Ip6Dscp => "ip6 dscp",
        Selector::Ip6Ecn => "ip6 ecn",
        Selector::Ip6Flowlabel => "ip6 flowlabel",
        _ => "this field",
    }
}

pub(super) fn not_a_map(expr: &Expr) -> Error {
    Error::new(
        expr.span().clone(),
        format!(
            "expected a map {{ ... }} or @name, got {}",
            values::describe(expr)
        ),
    )
}

pub(super) fn unreachable_mark<T>(expr: &Expr) -> Result<T> {
    Err(Error::new(
        expr.span().clone(),
        format!("expected a mark, got {}", values::describe(expr)),
    ))
}

#[cfg(test)]
mod tests {
    use crate::ruleset::test_support::{check_error, check_ok, in_input_chain};

    #[test]
    fn two_transport_protocols_in_one_rule_conflict_at_the_second() {
        assert_eq!(
            check_error(&in_input_chain("tcp dport 22 udp dport 53 accept")),
            "t.nft:4:14: conflicting protocols specified: tcp vs. udp"
        );
    }

    #[test]
    fn ip_and_ip6_in_one_rule_conflict_at_the_second() {
        assert_eq!(
            check_error(&in_input_chain("ip saddr 1.2.3.4 ip6 saddr ::1 accept")),
            "t.nft:4:18: conflicting protocols specified: ip vs. ip6"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_error_at_the_value() {
        assert_eq!(
            check_error(&in_input_chain("ip saddr 22 accept")),
            "t.nft:4:10: expected an IPv4 address, got number 22"
        );
    }

    #[test]
    fn a_verdict_map_must_be_declared() {
        assert_eq!(
            check_error(&in_input_chain("tcp dport vmap @nope")),
            "t.nft:4:16: no such set or map 'nope' in table ip t"
        );
    }

    #[test]
    fn an_anonymous_verdict_map_checks() {
        check_ok(&in_input_chain("tcp dport vmap { 22 : accept, 80 : drop }"));
    }
}
