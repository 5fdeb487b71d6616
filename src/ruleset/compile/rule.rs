//! One rule's statements to bytecode, as nft 1.0.6 linearizes them: implicit
//! protocol dependencies first (`meta nfproto` in inet tables, `meta
//! protocol` in bridge tables, `meta l4proto`) unless the rule already
//! established the protocol; adjacent payload matches merged into one load
//! (nft's `stmt_reduce`); prefixes on byte boundaries as shorter loads;
//! host-order numbers converted before range checks; one-element anonymous
//! sets as plain comparisons; registers numbered as nft numbers them.

use std::ffi::CString;

use crate::nftables::{self as nft, CmpOp, Expr, Log, NatKind, PayloadBase, Reg, set_flags};

use super::super::ast::{
    self, DataType, Element, Family, MapSource, MarkValue, Match, MatchOp, NatTarget, Reject, Rhs,
    Scalar, Selector, Span, Stmt, StmtKind, Value, concat_len, concat_type_id, needs_interval,
};
use super::super::error::Error;
use super::elements::{self, Shape};
use super::types::{
    self, BYTEORDER_INVALID, Dep, NFPROTO_IPV4, NFPROTO_IPV6, bounds, dependency, dependency_exprs,
    field_mask, is_host_number, key_typeof, load, load_masked, ordered_bytes, payload,
    prefix_mask_byte, scalar_bytes, selector_byteorder, type_byteorder, typeof_udata,
};
use super::{AnonNames, DeclaredSet, Sets, nat_family, verdict};

/// An anonymous set or map a rule needs, added to the batch before it.
pub(super) struct AnonSet<'a> {
    pub set: nft::Set,
    pub elements: elements::Lowered<'a>,
    /// The statement that needs the set.
    pub span: &'a Span,
}

/// The compiled rule: its expressions and the anonymous sets it uses.
pub(super) struct Compiled<'a> {
    pub exprs: Vec<Expr>,
    pub anon: Vec<AnonSet<'a>>,
}

/// A payload match on one value: nft may merge it with adjacent ones.
#[derive(Debug)]
struct PayloadCmp {
    base: PayloadBase,
    offset: u32,
    len: u32,
    /// `Eq` or `Neq` (an implicit match counts as `Eq`).
    op: CmpOp,
    value: Vec<u8>,
    /// An implicit match on a bitmask: any of the bits (`tcp flags syn`).
    any_bit: bool,
}

/// A lowered statement. Payload matches merge across expression statements
/// but never across other statements (counters, verdicts, nat, ...).
enum Lowered {
    Candidate(PayloadCmp),
    Expression(Vec<Expr>),
    Statement(Vec<Expr>),
}

struct Ctx<'a, 'b> {
    family: Family,
    table: &'a ast::TableId,
    sets: &'b Sets,
    batch: &'b mut nft::Batch,
    names: &'b mut AnonNames,
    nfproto: Option<u8>,
    /// Transport protocols the rule has established, in order (nft's
    /// protocol context): a dependency or an equality match adds one; more
    /// than one makes transport matches ambiguous, which nft refuses.
    l4protos: Vec<u8>,
    /// ICMPv6 types an equality match (or set) of the rule fixed.
    icmpv6_types: Vec<u8>,
    out: Vec<Lowered>,
    anon: Vec<AnonSet<'a>>,
}

pub(super) fn compile<'a>(
    rule: &'a ast::Rule,
    sets: &Sets,
    batch: &mut nft::Batch,
    names: &mut AnonNames,
) -> Result<Compiled<'a>, Error> {
    let family = rule.table.family;
    let mut ctx = Ctx {
        family,
        table: &rule.table,
        sets,
        batch,
        names,
        nfproto: match family {
            Family::Ip => Some(NFPROTO_IPV4),
            Family::Ip6 => Some(NFPROTO_IPV6),
            Family::Inet | Family::Bridge => None,
        },
        l4protos: Vec::new(),
        icmpv6_types: Vec::new(),
        out: Vec::new(),
        anon: Vec::new(),
    };
    for stmt in &rule.stmts {
        ctx.stmt(stmt)?;
    }
    let anon = std::mem::take(&mut ctx.anon);
    Ok(Compiled {
        exprs: linearize(merge(ctx.out)),
        anon,
    })
}

impl<'a> Ctx<'a, '_> {
    fn stmt(&mut self, stmt: &'a Stmt) -> Result<(), Error> {
        let span = &stmt.span;
        match &stmt.kind {
            StmtKind::Match(m) => self.matches(m, span)?,
            StmtKind::Counter { packets, bytes } => self.statement(vec![Expr::Counter {
                packets: *packets,
                bytes: *bytes,
            }]),
            StmtKind::Log { prefix } => {
                let prefix = prefix
                    .as_deref()
                    .map(|p| super::cstring(p, span))
                    .transpose()?;
                self.statement(vec![Expr::Log(Log {
                    prefix,
                    ..Log::default()
                })])
            }
            StmtKind::MetaMarkSet(value) => {
                let mut exprs = self.mark_value(value, span)?;
                exprs.push(Expr::MetaSet {
                    key: nft::MetaKey::Mark,
                    sreg: Reg::R1,
                });
                self.statement(exprs)
            }
            StmtKind::CtMarkSet(value) => {
                let mut exprs = self.mark_value(value, span)?;
                exprs.push(Expr::CtSet {
                    key: nft::CtKey::Mark,
                    sreg: Reg::R1,
                });
                self.statement(exprs)
            }
            StmtKind::Verdict(v) => self.statement(vec![Expr::Verdict(verdict(v)?)]),
            StmtKind::VerdictMap(vmap) => {
                self.deps(&vmap.key, span)?;
                let lookup = self.map_lookup(&vmap.key, &vmap.map, None, Reg::VERDICT, span)?;
                self.statement(lookup)
            }
            StmtKind::Reject(reject) => self.reject(*reject, span)?,
            StmtKind::Masquerade { port, flags } => {
                let (mut exprs, min, max) = port_registers(port.as_ref());
                let flags = nat_flag_bits(flags, port.is_some());
                exprs.push(Expr::Masquerade {
                    flags,
                    proto_min: min,
                    proto_max: max,
                });
                self.statement(exprs)
            }
            StmtKind::Redirect { port, flags } => {
                let (mut exprs, min, max) = port_registers(port.as_ref());
                let flags = nat_flag_bits(flags, port.is_some());
                exprs.push(Expr::Redirect {
                    flags,
                    proto_min: min,
                    proto_max: max,
                });
                self.statement(exprs)
            }
            StmtKind::Nat(nat) => self.nat(nat, span)?,
        }
        Ok(())
    }

    fn statement(&mut self, exprs: Vec<Expr>) {
        self.out.push(Lowered::Statement(exprs));
    }

    /// Adds the checks the selectors depend on, unless already known.
    fn deps(&mut self, key: &[Selector], span: &'a Span) -> Result<(), Error> {
        for sel in key {
            if let Some((nfproto, l4proto)) = types::network_first(*sel) {
                if self.nfproto.is_none() && !self.l4protos.contains(&l4proto) {
                    // nft checks for the IP version first where the family
                    // is open (a known other version is no conflict to it),
                    // unless the rule already matched the transport protocol.
                    self.nfproto = Some(nfproto);
                    let exprs = match self.family {
                        Family::Bridge => types::ether_type_network_exprs(nfproto),
                        _ => dependency_exprs(Dep::NfProto(nfproto), self.family),
                    };
                    self.out.push(Lowered::Expression(exprs.to_vec()));
                }
            }
            if let Some(dep) = dependency(*sel, self.family) {
                self.require(dep, span)?;
            }
            if let Some(need) = sel.icmpv6_types_needed() {
                self.require_icmpv6_type(need, span)?;
            }
        }
        Ok(())
    }

    /// `icmpv6 type echo-request` or `icmpv6 type { echo-request,
    /// echo-reply }` before a field of those messages, unless known.
    fn require_icmpv6_type(&mut self, need: &'static [u8], span: &'a Span) -> Result<(), Error> {
        if !self.icmpv6_types.is_empty() {
            return Ok(());
        }
        self.icmpv6_types.extend_from_slice(need);
        let mut exprs = load_masked(Selector::Icmpv6Type, Reg::R1);
        if let [one] = need {
            exprs.push(Expr::Cmp {
                op: CmpOp::Eq,
                sreg: Reg::R1,
                data: vec![*one],
            });
        } else {
            let elements = echo_type_elements();
            let (name, id) = self.anon_set(&[Selector::Icmpv6Type], elements, None, span)?;
            exprs.push(Expr::Lookup {
                set: name,
                set_id: Some(id),
                sreg: Reg::R1,
                dreg: None,
                invert: false,
            });
        }
        self.out.push(Lowered::Expression(exprs));
        Ok(())
    }

    fn require(&mut self, dep: Dep, span: &Span) -> Result<(), Error> {
        if self.admit(dep, span)? {
            self.out.push(Lowered::Expression(
                dependency_exprs(dep, self.family).to_vec(),
            ));
        }
        Ok(())
    }

    /// [`Ctx::require`] for a reject's protocol: nft puts that check at the
    /// start of the rule, not before the reject.
    fn require_first(&mut self, dep: Dep, span: &Span) -> Result<(), Error> {
        if self.admit(dep, span)? {
            self.out.insert(
                0,
                Lowered::Expression(dependency_exprs(dep, self.family).to_vec()),
            );
        }
        Ok(())
    }

    /// Records that the rule depends on `dep`: whether its check is still
    /// to be made (false: the rule established it already), or an error if
    /// the rule established another protocol.
    fn admit(&mut self, dep: Dep, span: &Span) -> Result<bool, Error> {
        let conflict = |was: Dep| {
            Error::new(
                span.clone(),
                format!(
                    "conflicting protocols specified: {} vs. {}",
                    types::proto_name(was),
                    types::proto_name(dep)
                ),
            )
        };
        match dep {
            Dep::NfProto(wanted) => match self.nfproto {
                Some(known) if known == wanted => return Ok(false),
                Some(known) => return Err(conflict(Dep::NfProto(known))),
                None => self.nfproto = Some(wanted),
            },
            Dep::L4Proto(wanted) => match self.l4protos.as_slice() {
                [] => self.l4protos.push(wanted),
                [known] if *known == wanted => return Ok(false),
                [known] => return Err(conflict(Dep::L4Proto(*known))),
                several => {
                    let other = several
                        .iter()
                        .find(|&&p| p != wanted)
                        .copied()
                        .unwrap_or(wanted);
                    return Err(conflict(Dep::L4Proto(other)));
                }
            },
        }
        Ok(true)
    }

    /// Loads a (possibly concatenated) key into consecutive registers from
    /// `base`, each part at the next 4-byte word.
    ///
    /// For an interval lookup, each host-order number is converted to
    /// network order in its register (nft's `byteorder hton`), as the set
    /// holds it: a concatenation's were not, and no range of theirs ever
    /// matched.
    fn load_key(key: &[Selector], base: Reg, interval: bool) -> Vec<Expr> {
        let mut words = 0;
        key.iter()
            .flat_map(|sel| {
                let (reg, ty) = (base.word(words), sel.data_type());
                let mut exprs = load_masked(*sel, reg);
                if interval && is_host_number(ty) {
                    exprs.push(hton(ty, reg));
                }
                words += (ty.byte_len() as u32).div_ceil(4);
                exprs
            })
            .collect()
    }

    fn matches(&mut self, m: &'a Match, span: &'a Span) -> Result<(), Error> {
        self.deps(&m.key, span)?;
        let invert = m.op == MatchOp::Ne;
        match &m.rhs {
            Rhs::Named(set_ref) => {
                let declared = self.declared(&set_ref.name, &set_ref.span)?;
                let mut exprs = Self::load_key(&m.key, Reg::R1, declared.interval);
                exprs.push(Expr::Lookup {
                    set: declared.name.clone(),
                    set_id: Some(declared.id),
                    sreg: Reg::R1,
                    dreg: None,
                    invert,
                });
                self.out.push(Lowered::Expression(exprs));
            }
            Rhs::Set(elements) if m.key.len() == 1 && elements.len() == 1 && m.mask.is_none() => {
                self.value_match(m, &elements[0].key, span)?;
            }
            Rhs::Set(elements) => {
                let interval = needs_interval(elements);
                let (name, id) = self.anon_set(&m.key, elements, None, span)?;
                let mut exprs = Self::load_key(&m.key, Reg::R1, interval);
                exprs.push(Expr::Lookup {
                    set: name,
                    set_id: Some(id),
                    sreg: Reg::R1,
                    dreg: None,
                    invert,
                });
                self.out.push(Lowered::Expression(exprs));
                if let ([sel], false) = (m.key.as_slice(), invert) {
                    for element in elements {
                        if let [Value::Single(scalar)] = element.key.as_slice() {
                            self.learn(*sel, scalar);
                        }
                    }
                }
            }
            Rhs::Value(values) => self.value_match(m, values, span)?,
        }
        Ok(())
    }

    fn value_match(&mut self, m: &Match, values: &[Value], span: &Span) -> Result<(), Error> {
        let ([sel], [value]) = (m.key.as_slice(), values) else {
            return Err(Error::new(
                span.clone(),
                "Use concatenations with sets and maps, not singleton values",
            ));
        };
        let sel = *sel;
        let ty = sel.data_type();
        let op = match m.op {
            MatchOp::Implicit | MatchOp::Eq => CmpOp::Eq,
            MatchOp::Ne => CmpOp::Neq,
        };
        let at = |message: String| Error::new(span.clone(), message);
        let bitmask = matches!(
            ty,
            DataType::CtState | DataType::CtStatus | DataType::TcpFlag
        );
        match value {
            Value::Single(scalar) => {
                let bytes = scalar_bytes(scalar).map_err(at)?;
                if let Some(mask) = m.mask {
                    let mask = mask_bytes(ty, mask);
                    let xor = vec![0; mask.len()];
                    let exprs = vec![
                        load(sel, Reg::R1),
                        Expr::Bitwise {
                            sreg: Reg::R1,
                            dreg: Reg::R1,
                            mask,
                            xor,
                        },
                        Expr::Cmp {
                            op,
                            sreg: Reg::R1,
                            data: bytes,
                        },
                    ];
                    self.out.push(Lowered::Expression(exprs));
                    return Ok(());
                }
                let any_bit = bitmask && m.op == MatchOp::Implicit;
                let prefix_only = matches!(scalar, Scalar::Ifname(name) if name.wildcard);
                if let (Some((base, offset, len)), false, None) =
                    (payload(sel), prefix_only, field_mask(sel))
                {
                    self.out.push(Lowered::Candidate(PayloadCmp {
                        base,
                        offset,
                        len,
                        op,
                        value: bytes,
                        any_bit,
                    }));
                } else if any_bit {
                    let zero = vec![0; bytes.len()];
                    self.out.push(Lowered::Expression(vec![
                        load(sel, Reg::R1),
                        Expr::Bitwise {
                            sreg: Reg::R1,
                            dreg: Reg::R1,
                            mask: bytes,
                            xor: zero.clone(),
                        },
                        Expr::Cmp {
                            op: CmpOp::Neq,
                            sreg: Reg::R1,
                            data: zero,
                        },
                    ]));
                } else {
                    let mut exprs = load_masked(sel, Reg::R1);
                    exprs.push(Expr::Cmp {
                        op,
                        sreg: Reg::R1,
                        data: bytes,
                    });
                    self.out.push(Lowered::Expression(exprs));
                }
                if m.op != MatchOp::Ne {
                    self.learn(sel, scalar);
                }
            }
            Value::Range(..) => {
                let (low, high) = bounds(value).map_err(at)?;
                let mut exprs = load_masked(sel, Reg::R1);
                if is_host_number(ty) {
                    exprs.push(hton(ty, Reg::R1));
                }
                if op == CmpOp::Eq {
                    exprs.push(Expr::Cmp {
                        op: CmpOp::Gte,
                        sreg: Reg::R1,
                        data: low,
                    });
                    exprs.push(Expr::Cmp {
                        op: CmpOp::Lte,
                        sreg: Reg::R1,
                        data: high,
                    });
                } else {
                    exprs.push(Expr::Range {
                        op,
                        sreg: Reg::R1,
                        from: low,
                        to: high,
                    });
                }
                self.out.push(Lowered::Expression(exprs));
            }
            Value::Prefix(addr, len) => {
                let bytes = ordered_bytes(&match addr {
                    std::net::IpAddr::V4(a) => Scalar::Ipv4(*a),
                    std::net::IpAddr::V6(a) => Scalar::Ipv6(*a),
                })
                .map_err(at)?;
                let full = load(sel, Reg::R1);
                let exprs = match (full, *len) {
                    (
                        Expr::Payload {
                            base, offset, dreg, ..
                        },
                        len,
                    ) if len % 8 == 0 && len > 0 => {
                        let n = u32::from(len / 8);
                        vec![
                            Expr::Payload {
                                base,
                                offset,
                                len: n,
                                dreg,
                            },
                            Expr::Cmp {
                                op,
                                sreg: Reg::R1,
                                data: bytes[..n as usize].to_vec(),
                            },
                        ]
                    }
                    (full, len) => {
                        let mask: Vec<u8> =
                            (0..bytes.len()).map(|i| prefix_mask_byte(i, len)).collect();
                        let masked = bytes.iter().zip(&mask).map(|(b, m)| b & m).collect();
                        vec![
                            full,
                            Expr::Bitwise {
                                sreg: Reg::R1,
                                dreg: Reg::R1,
                                mask,
                                xor: vec![0; bytes.len()],
                            },
                            Expr::Cmp {
                                op,
                                sreg: Reg::R1,
                                data: masked,
                            },
                        ]
                    }
                };
                self.out.push(Lowered::Expression(exprs));
            }
        }
        Ok(())
    }

    /// An equality match on a protocol selector tells later selectors which
    /// protocol the packet has, so nft adds no dependency for them.
    fn learn(&mut self, sel: Selector, scalar: &Scalar) {
        match (sel, scalar) {
            (Selector::MetaNfproto, Scalar::NfProto(p)) => self.nfproto = Some(*p),
            (Selector::MetaProtocol | Selector::EtherType, Scalar::EtherType(t))
                if self.family == Family::Bridge =>
            {
                if let Some(p) = types::ethertype_nfproto(*t) {
                    self.nfproto = Some(p);
                }
            }
            (
                Selector::MetaL4proto | Selector::IpProtocol | Selector::Ip6Nexthdr,
                Scalar::Proto(p),
            ) if !self.l4protos.contains(p) => self.l4protos.push(*p),
            (Selector::Icmpv6Type, Scalar::Icmpv6Type(t)) if !self.icmpv6_types.contains(t) => {
                self.icmpv6_types.push(*t)
            }
            _ => {}
        }
    }

    fn declared(&self, name: &str, span: &Span) -> Result<&DeclaredSet, Error> {
        self.sets
            .get(&(self.table.clone(), name.to_string()))
            .ok_or_else(|| {
                Error::new(
                    span.clone(),
                    format!("set {name} is not declared in this table"),
                )
            })
    }

    /// Declares an anonymous set (or map, with `data`) for this rule.
    fn anon_set(
        &mut self,
        key: &[Selector],
        source: &'a [Element],
        data: Option<&ast::MapData>,
        span: &'a Span,
    ) -> Result<(CString, u32), Error> {
        let types: Vec<DataType> = key.iter().map(|s| s.data_type()).collect();
        let interval = needs_interval(source);
        let shape = Shape {
            key: &types,
            data,
            interval,
            anonymous: true,
            first_segment: true,
        };
        let lowered = elements::lower(&shape, source)?;

        let name = self.names.next(self.table, data.is_some());
        let id = self.batch.next_set_id();
        let table = super::cstring(&self.table.name, span)?;
        let mut set = nft::Set::new(
            super::family(self.family),
            table,
            name.clone(),
            id,
            concat_type_id(&types),
            concat_len(&types) as u32,
        );
        set.flags = set_flags::ANONYMOUS | set_flags::CONSTANT;
        if interval {
            set.flags |= set_flags::INTERVAL;
            if types.len() > 1 {
                set.flags |= set_flags::CONCAT;
                set.field_lens = types.iter().map(|t| t.byte_len() as u32).collect();
            }
        }
        set.size = Some(lowered.size);

        let key_order = if key.len() == 1 {
            selector_byteorder(key[0])
        } else {
            BYTEORDER_INVALID
        };
        let mut udata = nft::Udata::new();
        udata.put_u32(super::UDATA_SET_KEYBYTEORDER, key_order);
        match data {
            None => {
                if interval {
                    udata.put_u32(super::UDATA_SET_MERGE_ELEMENTS, 1);
                }
                udata.put_nest(super::UDATA_SET_KEY_TYPEOF, &key_typeof(key));
            }
            Some(map) => {
                set.flags |= set_flags::MAP;
                set.data = Some(super::map_data_type(map));
                let (order, typeof_record) = match map {
                    ast::MapData::Verdict => (
                        BYTEORDER_INVALID,
                        Some(typeof_udata(types::EXPR_VERDICT, &nft::Udata::new())),
                    ),
                    ast::MapData::Values(parts) if parts.len() == 1 => {
                        (type_byteorder(parts[0]), None)
                    }
                    ast::MapData::Values(_) => (BYTEORDER_INVALID, None),
                };
                udata.put_u32(super::UDATA_SET_DATABYTEORDER, order);
                // nft records the key's typeof for anonymous maps only when
                // the key is a concatenation.
                if key.len() > 1 {
                    udata.put_nest(super::UDATA_SET_KEY_TYPEOF, &key_typeof(key));
                }
                if let Some(record) = typeof_record {
                    udata.put_nest(super::UDATA_SET_DATA_TYPEOF, &record);
                }
                udata.put_u32(super::UDATA_SET_DATA_INTERVAL, 0);
            }
        }
        set.udata = Some(udata);
        self.anon.push(AnonSet {
            set,
            elements: lowered,
            span,
        });
        Ok((name.to_owned(), id))
    }

    /// Loads `key` and looks it up in a map, leaving the data in `dreg`.
    fn map_lookup(
        &mut self,
        key: &[Selector],
        map: &'a MapSource,
        data: Option<&ast::MapData>,
        dreg: Reg,
        span: &'a Span,
    ) -> Result<Vec<Expr>, Error> {
        let (set, set_id, interval) = match map {
            MapSource::Named(set_ref) => {
                let declared = self.declared(&set_ref.name, &set_ref.span)?;
                (declared.name.clone(), declared.id, declared.interval)
            }
            MapSource::Anonymous(elements) => {
                let data = data.cloned().unwrap_or(ast::MapData::Verdict);
                let interval = needs_interval(elements);
                let (name, id) = self.anon_set(key, elements, Some(&data), span)?;
                (name, id, interval)
            }
        };
        // A data lookup loads its key into the data register, as nft does.
        let sreg = if dreg == Reg::VERDICT { Reg::R1 } else { dreg };
        let mut exprs = Self::load_key(key, sreg, interval);
        exprs.push(Expr::Lookup {
            set,
            set_id: Some(set_id),
            sreg,
            dreg: Some(dreg),
            invert: false,
        });
        Ok(exprs)
    }

    /// The mark to set, in register 1.
    fn mark_value(&mut self, value: &'a MarkValue, span: &'a Span) -> Result<Vec<Expr>, Error> {
        Ok(match value {
            MarkValue::Const(v) => vec![Expr::Immediate {
                dreg: Reg::R1,
                data: v.to_ne_bytes().to_vec(),
            }],
            MarkValue::MetaMark => vec![Expr::Meta {
                key: nft::MetaKey::Mark,
                dreg: Reg::R1,
            }],
            MarkValue::CtMark => vec![Expr::Ct {
                key: nft::CtKey::Mark,
                dir: None,
                dreg: Reg::R1,
            }],
            MarkValue::Map { key, map } => {
                self.deps(key, span)?;
                self.map_lookup(key, map, None, Reg::R1, span)?
            }
        })
    }

    fn reject(&mut self, reject: Reject, span: &Span) -> Result<(), Error> {
        const ICMP_UNREACH: u32 = 0;
        const TCP_RST: u32 = 1;
        const ICMPX_UNREACH: u32 = 2;
        let (kind, code) = match reject {
            Reject::Default => match self.nfproto {
                Some(NFPROTO_IPV4) => (ICMP_UNREACH, 3),
                Some(NFPROTO_IPV6) => (ICMP_UNREACH, 4),
                _ => (ICMPX_UNREACH, 1),
            },
            Reject::TcpReset => {
                if self.l4protos.len() > 1 {
                    return Err(Error::new(
                        span.clone(),
                        "you cannot use tcp reset with this protocol",
                    ));
                }
                self.require_first(Dep::L4Proto(6), span)?;
                (TCP_RST, 0)
            }
            Reject::Icmp(code) => {
                self.require_first(Dep::NfProto(NFPROTO_IPV4), span)?;
                (ICMP_UNREACH, code)
            }
            Reject::Icmpv6(code) => {
                self.require_first(Dep::NfProto(NFPROTO_IPV6), span)?;
                (ICMP_UNREACH, code)
            }
            Reject::Icmpx(code) => (ICMPX_UNREACH, code),
        };
        self.statement(vec![Expr::Reject {
            kind,
            code: Some(code),
        }]);
        Ok(())
    }

    fn nat(&mut self, nat: &'a ast::Nat, span: &'a Span) -> Result<(), Error> {
        let kind = match nat.kind {
            ast::NatKind::Snat => NatKind::Snat,
            ast::NatKind::Dnat => NatKind::Dnat,
        };
        let family = nat_family(nat.family);
        let mut exprs = Vec::new();
        let mut expr = Expr::Nat {
            kind,
            family,
            addr_min: None,
            addr_max: None,
            proto_min: None,
            proto_max: None,
            flags: 0,
        };
        let Expr::Nat {
            addr_min,
            addr_max,
            proto_min,
            proto_max,
            flags,
            ..
        } = &mut expr
        else {
            unreachable!("just built a nat expression")
        };
        match &nat.target {
            NatTarget::Addr { min, max, port } => {
                // nft gives each value its own 16-byte register, in order.
                let mut next = 1;
                let mut take = |data: Vec<u8>| {
                    let reg = Reg(next);
                    next += 1;
                    exprs.push(Expr::Immediate { dreg: reg, data });
                    reg
                };
                *addr_min = Some(take(ip_bytes(min)));
                if max != min {
                    *addr_max = Some(take(ip_bytes(max)));
                }
                if let Some(port) = port {
                    *proto_min = Some(take(port.min.to_be_bytes().to_vec()));
                    if port.max != port.min {
                        *proto_max = Some(take(port.max.to_be_bytes().to_vec()));
                    }
                }
                *flags = nat_flag_bits(&nat.flags, port.is_some());
            }
            NatTarget::Map { key, map, data } => {
                self.deps(key, span)?;
                let map_data = ast::MapData::Values(data.clone());
                exprs.extend(self.map_lookup(key, map, Some(&map_data), Reg::R1, span)?);
                *addr_min = Some(Reg::R1);
                if let [addr, _port] = data.as_slice() {
                    *proto_min = Some(Reg::R1.word(addr.byte_len() as u32 / 4));
                }
                *flags = nat_flag_bits(&nat.flags, false);
            }
        }
        exprs.push(expr);
        self.statement(exprs);
        Ok(())
    }
}

/// The anonymous set nft checks before `icmpv6 id|sequence`: the echo
/// types. Made once, as anonymous sets borrow their elements.
fn echo_type_elements() -> &'static [Element] {
    static ECHO: std::sync::OnceLock<Vec<Element>> = std::sync::OnceLock::new();
    ECHO.get_or_init(|| {
        let span = ast::Span::new(std::sync::Arc::from("icmpv6"), 1, 1);
        [128u8, 129]
            .iter()
            .map(|t| Element {
                key: vec![Value::Single(Scalar::Icmpv6Type(*t))],
                data: None,
                comment: None,
                span: span.clone(),
            })
            .collect()
    })
}

fn ip_bytes(addr: &std::net::IpAddr) -> Vec<u8> {
    match addr {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn hton(ty: DataType, reg: Reg) -> Expr {
    let len = ty.byte_len() as u32;
    Expr::Byteorder {
        sreg: reg,
        dreg: reg,
        to_network: true,
        len,
        size: len,
    }
}

/// A mask in the layout of the selector's type.
fn mask_bytes(ty: DataType, mask: u32) -> Vec<u8> {
    match ty.byte_len() {
        1 => vec![mask as u8],
        2 => (mask as u16).to_be_bytes().to_vec(),
        _ if types::type_byteorder(ty) == types::BYTEORDER_HOST => mask.to_ne_bytes().to_vec(),
        _ => mask.to_be_bytes().to_vec(),
    }
}

/// Immediates for a masquerade/redirect port range, and their registers.
fn port_registers(port: Option<&ast::PortRange>) -> (Vec<Expr>, Option<Reg>, Option<Reg>) {
    let Some(port) = port else {
        return (Vec::new(), None, None);
    };
    let mut exprs = vec![Expr::Immediate {
        dreg: Reg::R1,
        data: port.min.to_be_bytes().to_vec(),
    }];
    if port.max == port.min {
        return (exprs, Some(Reg::R1), None);
    }
    exprs.push(Expr::Immediate {
        dreg: Reg::R2,
        data: port.max.to_be_bytes().to_vec(),
    });
    (exprs, Some(Reg::R1), Some(Reg::R2))
}

fn nat_flag_bits(flags: &ast::NatFlags, port: bool) -> u32 {
    use nft::nat_flags::*;
    let mut bits = 0;
    if port {
        bits |= PROTO_SPECIFIED;
    }
    if flags.random {
        bits |= PROTO_RANDOM;
    }
    if flags.fully_random {
        bits |= PROTO_RANDOM_FULLY;
    }
    if flags.persistent {
        bits |= PERSISTENT;
    }
    bits
}

/// nft's `stmt_reduce`: within each run of expression statements, payload
/// matches on adjacent bytes with the same operator join into one load,
/// kept where the lowest-offset one stood.
fn merge(mut stmts: Vec<Lowered>) -> Vec<Lowered> {
    let mut start = 0;
    while start < stmts.len() {
        let end = stmts[start..]
            .iter()
            .position(|s| matches!(s, Lowered::Statement(_)))
            .map_or(stmts.len(), |i| start + i);
        merge_run(&mut stmts[start..end]);
        start = end + 1;
    }
    stmts.retain(|s| !matches!(s, Lowered::Expression(e) if e.is_empty()));
    stmts
}

fn merge_run(run: &mut [Lowered]) {
    let mut candidates: Vec<usize> = (0..run.len())
        .filter(|&i| matches!(run[i], Lowered::Candidate(_)))
        .collect();
    if candidates.len() < 2 {
        return;
    }
    let key = |s: &Lowered| match s {
        Lowered::Candidate(c) => (c.base as u32, c.offset),
        _ => (0, 0),
    };
    candidates.sort_by_key(|&i| key(&run[i]));
    let mut last = candidates[0];
    for &this in &candidates[1..] {
        let (Lowered::Candidate(a), Lowered::Candidate(b)) = (&run[last], &run[this]) else {
            continue;
        };
        if !can_merge(a, b) || a.op != b.op {
            last = this;
            continue;
        }
        let Lowered::Candidate(b) =
            std::mem::replace(&mut run[this], Lowered::Expression(Vec::new()))
        else {
            continue;
        };
        if let Lowered::Candidate(a) = &mut run[last] {
            a.len += b.len;
            a.value.extend(b.value);
            a.any_bit = false;
        }
    }
}

/// nft's `payload_can_merge`: adjacent, at most one register, and only when
/// the result stays on the kernel's fast path (4 bytes) unless a part
/// already left it.
fn can_merge(a: &PayloadCmp, b: &PayloadCmp) -> bool {
    if a.base != b.base || a.offset + a.len != b.offset {
        return false;
    }
    let total = a.len + b.len;
    if total > 16 {
        return false;
    }
    total <= 4 || a.base == PayloadBase::Link || a.len > 4 || b.len > 4
}

fn linearize(stmts: Vec<Lowered>) -> Vec<Expr> {
    let mut exprs = Vec::new();
    for stmt in stmts {
        match stmt {
            Lowered::Candidate(c) => {
                exprs.push(Expr::Payload {
                    base: c.base,
                    offset: c.offset,
                    len: c.len,
                    dreg: Reg::R1,
                });
                if c.any_bit {
                    let zero = vec![0; c.value.len()];
                    exprs.push(Expr::Bitwise {
                        sreg: Reg::R1,
                        dreg: Reg::R1,
                        mask: c.value,
                        xor: zero.clone(),
                    });
                    exprs.push(Expr::Cmp {
                        op: CmpOp::Neq,
                        sreg: Reg::R1,
                        data: zero,
                    });
                } else {
                    exprs.push(Expr::Cmp {
                        op: c.op,
                        sreg: Reg::R1,
                        data: c.value,
                    });
                }
            }
            Lowered::Expression(e) | Lowered::Statement(e) => exprs.extend(e),
        }
    }
    exprs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::ast::CommandKind;

    /// The bytecode of the only rule of `text`.
    fn rule_exprs(text: &str) -> Vec<Expr> {
        let ruleset =
            crate::ruleset::load_str("t.nft", text, std::path::Path::new("."), &[]).unwrap();
        let rule = ruleset
            .commands
            .iter()
            .find_map(|c| match &c.kind {
                CommandKind::AddRule(rule) => Some(rule),
                _ => None,
            })
            .unwrap();
        let mut batch = nft::Batch::new();
        let mut names = AnonNames::default();
        compile(rule, &Sets::new(), &mut batch, &mut names)
            .unwrap()
            .exprs
    }

    fn meta_is(key: nft::MetaKey, data: &[u8]) -> [Expr; 2] {
        [
            Expr::Meta { key, dreg: Reg::R1 },
            Expr::Cmp {
                op: CmpOp::Eq,
                sreg: Reg::R1,
                data: data.to_vec(),
            },
        ]
    }

    #[test]
    fn bridge_ip_matches_depend_on_the_ethertype_where_inet_checks_nfproto() {
        let bridge = rule_exprs("table bridge t { chain c { ip saddr 10.0.0.1 accept; }; }");
        assert_eq!(bridge[..2], meta_is(nft::MetaKey::Protocol, &[0x08, 0x00]));
        let bridge6 = rule_exprs("table bridge t { chain c { ip6 daddr ::1 accept; }; }");
        assert_eq!(bridge6[..2], meta_is(nft::MetaKey::Protocol, &[0x86, 0xdd]));
        let inet = rule_exprs("table inet t { chain c { ip saddr 10.0.0.1 accept; }; }");
        assert_eq!(inet[..2], meta_is(nft::MetaKey::NfProto, &[2]));
    }

    #[test]
    fn bridge_transport_matches_depend_on_l4proto_only() {
        let exprs = rule_exprs("table bridge t { chain c { tcp dport 22 accept; }; }");
        assert_eq!(exprs[..2], meta_is(nft::MetaKey::L4Proto, &[6]));
        assert_eq!(exprs.len(), 5);
    }

    /// The reference kernel lacks nf_conntrack_bridge and refuses `ct` in
    /// bridge tables, so this is what nft 1.0.6 sends (`nft --debug=netlink`):
    /// the same as in other families, without a dependency.
    #[test]
    fn bridge_ct_matches_are_sent_as_in_other_families() {
        let rule = "chain c { ct state established,related accept; };";
        let bridge = rule_exprs(&format!("table bridge t {{ {rule} }}"));
        let ip = rule_exprs(&format!("table ip t {{ {rule} }}"));
        assert_eq!(bridge, ip);
        assert!(matches!(bridge[0], Expr::Ct { .. }), "{bridge:?}");
    }

    fn port_match(offset: u32, port: u16, op: CmpOp) -> Lowered {
        Lowered::Candidate(PayloadCmp {
            base: PayloadBase::Transport,
            offset,
            len: 2,
            op,
            value: port.to_be_bytes().to_vec(),
            any_bit: false,
        })
    }

    #[test]
    fn adjacent_port_matches_merge_into_one_load_in_header_order() {
        let dependency =
            Lowered::Expression(dependency_exprs(Dep::L4Proto(6), Family::Ip).to_vec());
        let exprs = linearize(merge(vec![
            dependency,
            port_match(2, 22, CmpOp::Eq),
            port_match(0, 1000, CmpOp::Eq),
        ]));
        assert_eq!(
            exprs[2..],
            [
                Expr::Payload {
                    base: PayloadBase::Transport,
                    offset: 0,
                    len: 4,
                    dreg: Reg::R1
                },
                Expr::Cmp {
                    op: CmpOp::Eq,
                    sreg: Reg::R1,
                    data: vec![3, 232, 0, 22]
                },
            ]
        );
    }

    #[test]
    fn matches_with_different_operators_or_across_statements_stay_apart() {
        let mixed = linearize(merge(vec![
            port_match(0, 1, CmpOp::Eq),
            port_match(2, 2, CmpOp::Neq),
        ]));
        assert_eq!(mixed.len(), 4);
        let split = linearize(merge(vec![
            port_match(0, 1, CmpOp::Eq),
            Lowered::Statement(vec![Expr::Counter {
                packets: 0,
                bytes: 0,
            }]),
            port_match(2, 2, CmpOp::Eq),
        ]));
        assert_eq!(split.len(), 5);
    }

    #[test]
    fn two_addresses_are_not_merged_past_the_fast_path() {
        let addr = |offset| {
            Lowered::Candidate(PayloadCmp {
                base: PayloadBase::Network,
                offset,
                len: 4,
                op: CmpOp::Eq,
                value: vec![1, 2, 3, 4],
                any_bit: false,
            })
        };
        assert_eq!(linearize(merge(vec![addr(12), addr(16)])).len(), 4);
    }
}
