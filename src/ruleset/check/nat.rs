//! NAT statements: `snat`, `dnat`, `masquerade` and `redirect`, their
//! addresses, ports and flags, and `dnat to KEY map { ... }`.

use super::matches::not_a_map;
use super::*;

impl Checker {
    /// The `:PORT[-PORT]` of masquerade, redirect and nat: it needs a
    /// transport protocol match earlier in the rule, as in nft.
    fn nat_port(&self, ctx: &RuleCtx, port: Option<&Expr>) -> Result<Option<PortRange>> {
        let Some(port) = port else {
            return Ok(None);
        };
        let port = self.scopes.expand(port)?;
        if !ctx.has_l4() {
            return Err(Error::new(
                port.span().clone(),
                "transport protocol mapping is only valid after transport protocol match",
            ));
        }
        Ok(Some(match values::value(&port, DataType::InetService)? {
            Value::Single(Scalar::Service(p)) => PortRange { min: p, max: p },
            Value::Range(Scalar::Service(min), Scalar::Service(max)) => PortRange { min, max },
            _ => {
                return Err(Error::new(
                    port.span().clone(),
                    format!(
                        "expected a port or port range, got {}",
                        values::describe(&port)
                    ),
                ));
            }
        }))
    }

    /// `masquerade [to :PORT] [FLAGS]` (postrouting only) or, with
    /// `redirect`, `redirect [to [:]PORT] [FLAGS]` (to the host itself, so
    /// prerouting or output): both keep the address the kernel picks.
    pub(super) fn masquerade_or_redirect(
        &mut self,
        ctx: &mut RuleCtx,
        span: &Span,
        redirect: bool,
        port: Option<&Expr>,
        flags: &[Name],
    ) -> Result<StmtKind> {
        let (what, hooks): (&'static str, &'static [Hook]) = if redirect {
            ("redirect", &[Hook::Prerouting, Hook::Output])
        } else {
            ("masquerade", &[Hook::Postrouting])
        };
        self.need(ctx, span, what, true, hooks);
        let port = self.nat_port(ctx, port)?;
        let flags = nat_flags(flags);
        Ok(if redirect {
            StmtKind::Redirect { port, flags }
        } else {
            StmtKind::Masquerade { port, flags }
        })
    }

    pub(super) fn nat(
        &mut self,
        ctx: &mut RuleCtx,
        span: &Span,
        dnat: bool,
        family: Option<&Name>,
        target: &syntax::NatTarget,
        flags: &[Name],
    ) -> Result<Nat> {
        let (what, hooks): (&'static str, &'static [Hook]) = if dnat {
            ("dnat", &[Hook::Prerouting, Hook::Output])
        } else {
            ("snat", &[Hook::Postrouting, Hook::Input])
        };
        self.need(ctx, span, what, true, hooks);
        let written = family.map(|name| match name.text.as_str() {
            "ip" => L3::Ip,
            _ => L3::Ip6,
        });
        let table_l3 = match ctx.table.family {
            Family::Ip => Some(L3::Ip),
            Family::Ip6 => Some(L3::Ip6),
            Family::Inet | Family::Bridge => None,
        };
        if let (Some(table), Some(written), Some(name)) = (table_l3, written, family) {
            if table != written {
                // nft's words and place: the statement, not the family.
                return Err(Error::new(
                    span.clone(),
                    format!(
                        "conflicting protocols specified: {} vs. {}. You must specify ip or ip6 family in nat statement",
                        ctx.table.family.name(),
                        name.text,
                    ),
                ));
            }
        }
        let l3 = written.or(ctx.l3).ok_or_else(|| {
            Error::new(
                span.clone(),
                "ip or ip6 must be specified with address for inet tables.",
            )
        })?;
        let (nat_family, addr_type) = match l3 {
            // ARP matches exist only in bridge tables, which refuse NAT
            // before this point.
            L3::Ip | L3::Arp => (NatFamily::Ipv4, DataType::Ipv4Addr),
            L3::Ip6 => (NatFamily::Ipv6, DataType::Ipv6Addr),
        };
        let target = match target {
            syntax::NatTarget::Addr { addr: None, port } => {
                let at = port.as_ref().map_or(span, |p| p.span());
                return Err(Error::new(
                    at.clone(),
                    format!("{what} without an address is not supported by this loader"),
                ));
            }
            syntax::NatTarget::Addr {
                addr: Some(addr),
                port,
            } => {
                let addr = self.scopes.expand(addr)?;
                let (min, max) = match values::value(&addr, addr_type)? {
                    Value::Single(s) => (ip_of(&s), ip_of(&s)),
                    Value::Range(a, b) => (ip_of(&a), ip_of(&b)),
                    Value::Prefix(..) => {
                        return Err(Error::new(
                            addr.span().clone(),
                            "a nat address is an address or a range, not a prefix",
                        ));
                    }
                };
                let (Some(min), Some(max)) = (min, max) else {
                    return Err(Error::new(addr.span().clone(), "expected an address"));
                };
                NatTarget::Addr {
                    min,
                    max,
                    port: self.nat_port(ctx, port.as_ref())?,
                }
            }
            syntax::NatTarget::Map { key, map } => self.nat_map(ctx, addr_type, key, map)?,
        };
        Ok(Nat {
            kind: if dnat { NatKind::Dnat } else { NatKind::Snat },
            family: nat_family,
            target,
            flags: nat_flags(flags),
        })
    }

    /// `to KEY map @m` / `to KEY map { ... }`: the data is an address, or an
    /// address and a port.
    fn nat_map(
        &mut self,
        ctx: &mut RuleCtx,
        addr_type: DataType,
        key: &[Key],
        map: &Expr,
    ) -> Result<NatTarget> {
        let types = self.key_types(ctx, key)?;
        let with_port = vec![addr_type, DataType::InetService];
        let (source, data) = match self.scopes.expand(map)? {
            Expr::Set(elems, _) => {
                let data = match elems.first().and_then(|e| e.data.as_ref()) {
                    Some(Expr::Concat(..)) => with_port.clone(),
                    _ => vec![addr_type],
                };
                let map_data = MapData::Values(data.clone());
                (self.anonymous_map(ctx, &elems, &types, &map_data)?, data)
            }
            Expr::SetRef(name) => {
                let addresses = |data: Option<&MapData>| match data {
                    Some(MapData::Values(d)) if *d == [addr_type] || *d == with_port => {
                        Some(d.clone())
                    }
                    _ => None,
                };
                let needs = format!(
                    "must map to {} or {}",
                    addr_type.name(),
                    values::type_names(&with_port)
                );
                self.named_map(ctx.table, name, &types, addresses, &needs)?
            }
            other => return Err(not_a_map(&other)),
        };
        if data.len() == 2 && !ctx.has_l4() {
            return Err(Error::new(
                key[0].span.clone(),
                "transport protocol mapping is only valid after transport protocol match",
            ));
        }
        Ok(NatTarget::Map {
            key: key.iter().map(|k| k.selector).collect(),
            map: source,
            data,
        })
    }
}

fn ip_of(scalar: &Scalar) -> Option<std::net::IpAddr> {
    match scalar {
        Scalar::Ipv4(a) => Some((*a).into()),
        Scalar::Ipv6(a) => Some((*a).into()),
        _ => None,
    }
}

fn nat_flags(names: &[Name]) -> NatFlags {
    let mut flags = NatFlags::default();
    for name in names {
        match name.text.as_str() {
            "random" => flags.random = true,
            "fully-random" => flags.fully_random = true,
            _ => flags.persistent = true,
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use crate::ruleset::test_support::{check_error, check_ok, in_chain};

    fn prerouting(rule: &str) -> String {
        in_chain("ip", "type nat hook prerouting priority dstnat", rule)
    }

    #[test]
    fn a_nat_port_needs_a_transport_protocol_match_before_it() {
        let postrouting = |rule| in_chain("ip", "type nat hook postrouting priority srcnat", rule);
        for (bare, col, matched) in [
            (
                prerouting("dnat to 10.0.0.1:80"),
                18,
                prerouting("tcp dport 80 dnat to 10.0.0.1:8080"),
            ),
            (
                prerouting("redirect to :8080"),
                14,
                prerouting("tcp dport 80 redirect to :8080"),
            ),
            (
                postrouting("masquerade to :1024"),
                16,
                postrouting("meta l4proto tcp masquerade to :1024-2048 random"),
            ),
        ] {
            assert_eq!(
                check_error(&bare),
                format!(
                    "t.nft:4:{col}: transport protocol mapping is only valid after transport protocol match"
                )
            );
            check_ok(&matched);
        }
    }

    #[test]
    fn snat_to_an_ipv6_address_is_refused_in_an_ip_table() {
        let text = in_chain(
            "ip",
            "type nat hook postrouting priority srcnat",
            "snat to ::1",
        );
        assert_eq!(
            check_error(&text),
            "t.nft:4:9: expected an IPv4 address, got IPv6 address ::1"
        );
    }

    #[test]
    fn dnat_without_an_address_is_refused() {
        assert_eq!(
            check_error(&prerouting("dnat to :80")),
            "t.nft:4:10: dnat without an address is not supported by this loader"
        );
    }

    #[test]
    fn a_named_dnat_map_must_map_to_addresses_and_take_the_rules_key() {
        let with_map = |map_type: &str| {
            format!(
                "table ip t {{\nmap m {{ type {map_type}; }}\nchain c {{\ntype nat hook prerouting priority dstnat\ntcp dport 80 dnat to tcp dport map @m\n}}\n}}\n"
            )
        };
        assert_eq!(
            check_error(&with_map("inet_service : mark")),
            "t.nft:5:36: @m must map to ipv4_addr or ipv4_addr . inet_service"
        );
        assert_eq!(
            check_error(&with_map("ipv4_addr : ipv4_addr")),
            "t.nft:5:36: @m has type ipv4_addr, but the key is inet_service"
        );
        check_ok(&with_map("inet_service : ipv4_addr . inet_service"));
    }

    #[test]
    fn dnat_through_a_map_checks() {
        check_ok(&prerouting(
            "dnat to tcp dport map { 80 : 10.0.0.1, 443 : 10.0.0.2 }",
        ));
    }
}
