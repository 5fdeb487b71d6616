//! Variables and values: expanding `$name`, and typing a parsed value for
//! the selector, set key or map data it meets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use super::ast::{DataType, Ifname, Scalar, Span, Value};
use super::error::Error;
use super::suggest;
use super::symbols::{self, lookup};
use super::syntax::{Expr, Name, SetElem};

type Result<T> = std::result::Result<T, Error>;

/// The most values one variable use may expand to.
const MAX_EXPANSION: usize = 1_000_000;
/// The most values all variable uses of one load may expand to together.
const MAX_TOTAL_EXPANSION: usize = 10_000_000;

/// Variables by block: the innermost block last.
#[derive(Clone)]
pub struct Scopes {
    stack: Vec<HashMap<String, Rc<Expr>>>,
    expanded: Rc<std::cell::Cell<usize>>,
}

impl Scopes {
    pub fn new() -> Scopes {
        Scopes {
            stack: vec![HashMap::new()],
            expanded: Rc::new(std::cell::Cell::new(0)),
        }
    }

    pub fn push(&mut self) {
        self.stack.push(HashMap::new());
    }

    pub fn pop(&mut self) {
        self.stack.pop();
    }

    fn lookup(&self, name: &str) -> Option<&Rc<Expr>> {
        self.stack.iter().rev().find_map(|scope| scope.get(name))
    }

    /// `define`: a name may be defined once per block. The value is expanded
    /// now, so later uses never recurse.
    pub fn define(&mut self, name: &Name, value: &Expr) -> Result<()> {
        let value = self.expand(value)?;
        let scope = self.innermost();
        if scope.contains_key(&name.text) {
            return Err(Error::new(
                name.span.clone(),
                format!("redefinition of symbol '{}'", name.text),
            ));
        }
        scope.insert(name.text.clone(), Rc::new(value));
        Ok(())
    }

    /// `redefine`: replaces the value wherever the name lives, or defines it.
    pub fn redefine(&mut self, name: &Name, value: &Expr) -> Result<()> {
        let value = Rc::new(self.expand(value)?);
        match self
            .stack
            .iter_mut()
            .rev()
            .find(|scope| scope.contains_key(&name.text))
        {
            Some(scope) => scope.insert(name.text.clone(), value),
            None => self.innermost().insert(name.text.clone(), value),
        };
        Ok(())
    }

    pub fn undefine(&mut self, name: &Name) -> Result<()> {
        let removed = self
            .stack
            .iter_mut()
            .rev()
            .find_map(|scope| scope.remove(&name.text));
        match removed {
            Some(_) => Ok(()),
            None => Err(Error::new(
                name.span.clone(),
                format!("undefined symbol '{}'", name.text),
            )),
        }
    }

    fn innermost(&mut self) -> &mut HashMap<String, Rc<Expr>> {
        if self.stack.is_empty() {
            self.stack.push(HashMap::new());
        }
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    /// `expr` with every `$name` replaced by its value, and sets inside
    /// sets flattened (`{ $a, 22 }` with `$a` a set).
    pub fn expand(&self, expr: &Expr) -> Result<Expr> {
        let mut size = 0;
        let out = self.expand_counted(expr, &mut size)?;
        let total = self.expanded.get().saturating_add(size);
        if total > MAX_TOTAL_EXPANSION {
            return Err(Error::new(
                expr.span().clone(),
                format!("variables expand to more than {MAX_TOTAL_EXPANSION} values in this load"),
            ));
        }
        self.expanded.set(total);
        Ok(out)
    }

    fn expand_counted(&self, expr: &Expr, size: &mut usize) -> Result<Expr> {
        *size += 1;
        if *size > MAX_EXPANSION {
            return Err(Error::new(
                expr.span().clone(),
                format!("value expands to more than {MAX_EXPANSION} parts"),
            ));
        }
        let boxed = |e: &Expr, size: &mut usize| self.expand_counted(e, size).map(Box::new);
        Ok(match expr {
            Expr::Var(name) => match self.lookup(&name.text) {
                Some(value) => {
                    *size += count(value);
                    if *size > MAX_EXPANSION {
                        return Err(Error::new(
                            name.span.clone(),
                            format!("value expands to more than {MAX_EXPANSION} parts"),
                        ));
                    }
                    (**value).clone()
                }
                None => {
                    return Err(Error::new(
                        name.span.clone(),
                        format!("unknown variable ${}", name.text),
                    ));
                }
            },
            Expr::Prefix(inner, len, span) => Expr::Prefix(boxed(inner, size)?, *len, span.clone()),
            Expr::Range(low, high, span) => {
                Expr::Range(boxed(low, size)?, boxed(high, size)?, span.clone())
            }
            Expr::Concat(parts, span) => Expr::Concat(
                parts
                    .iter()
                    .map(|p| self.expand_counted(p, size))
                    .collect::<Result<_>>()?,
                span.clone(),
            ),
            Expr::List(items, span) => Expr::List(
                items
                    .iter()
                    .map(|p| self.expand_counted(p, size))
                    .collect::<Result<_>>()?,
                span.clone(),
            ),
            Expr::Set(elems, span) => {
                let mut out = Vec::with_capacity(elems.len());
                for elem in elems {
                    let key = self.expand_counted(&elem.key, size)?;
                    let data = match &elem.data {
                        Some(d) => Some(self.expand_counted(d, size)?),
                        None => None,
                    };
                    match key {
                        // A set as an element (`{ $a, 22 }`): its elements join.
                        Expr::Set(inner, _) if data.is_none() && elem.comment.is_none() => {
                            out.extend(inner)
                        }
                        key => out.push(SetElem {
                            span: elem.span.clone(),
                            key,
                            comment: elem.comment.clone(),
                            data,
                        }),
                    }
                }
                Expr::Set(out, span.clone())
            }
            other => other.clone(),
        })
    }
}

/// Nodes in an expanded value (for the expansion budget).
fn count(expr: &Expr) -> usize {
    match expr {
        Expr::Prefix(inner, _, _) => 1 + count(inner),
        Expr::Range(a, b, _) => 1 + count(a) + count(b),
        Expr::Concat(parts, _) | Expr::List(parts, _) => 1 + parts.iter().map(count).sum::<usize>(),
        Expr::Set(elems, _) => {
            1 + elems
                .iter()
                .map(|e| count(&e.key) + e.data.as_ref().map_or(0, count))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// How messages name what a value should be.
pub fn expected(ty: DataType) -> &'static str {
    match ty {
        DataType::Ipv4Addr => "an IPv4 address",
        DataType::Ipv6Addr => "an IPv6 address",
        DataType::InetService => "a port (inet_service)",
        DataType::InetProto => "a protocol (inet_proto)",
        DataType::Ifname => "an interface name",
        DataType::Mark => "a mark (number)",
        DataType::IfaceIndex => "an interface name",
        DataType::NfProto => "ipv4 or ipv6",
        DataType::PktType => "a packet type (host, broadcast, multicast, other)",
        DataType::CtState => "a ct state",
        DataType::CtStatus => "a ct status",
        DataType::CtDir => "a ct direction",
        DataType::TcpFlag => "a tcp flag",
        DataType::FibAddrType => "a fib address type",
        DataType::Verdict => "a verdict",
        DataType::EtherAddr => "a MAC address (ether_addr)",
        DataType::EtherType => "an ethertype (ether_type)",
        DataType::ArpOp => "an ARP operation (arp_op)",
        DataType::Integer8
        | DataType::Integer16
        | DataType::Integer32
        | DataType::Ip6Version
        | DataType::Ip6Flowlabel => "a number",
        DataType::Icmpv6Type => "an icmpv6 type",
        DataType::Icmpv6Code => "an icmpv6 code",
        DataType::IgmpType => "an igmp type",
        DataType::IcmpType => "an icmp type",
        DataType::IcmpCode => "an icmp code",
        DataType::Ip6Dscp => "a dscp value",
        DataType::Ip6Ecn => "an ecn value",
    }
}

/// How messages name a value that was found.
pub fn describe(expr: &Expr) -> String {
    match expr {
        Expr::Word(n) => format!("'{}'", n.text),
        Expr::NumWord(n) => format!("'{}'", n.text),
        Expr::Str(n) => format!("\"{}\"", n.text),
        Expr::Number(n, _) => format!("number {n}"),
        Expr::Ipv4(a, _) => format!("IPv4 address {a}"),
        Expr::Ipv6(a, _) => format!("IPv6 address {a}"),
        Expr::EtherAddr(a, _) => format!("MAC address {}", super::lexer::format_ether(a)),
        Expr::Var(n) => format!("${}", n.text),
        Expr::SetRef(n) => format!("@{}", n.text),
        Expr::Jump { target, .. } => format!("a jump to '{}'", target.text),
        Expr::Prefix(..) => "a prefix".to_string(),
        Expr::Range(..) => "a range".to_string(),
        Expr::Concat(..) => "a concatenation".to_string(),
        Expr::List(..) => "a comma list".to_string(),
        Expr::Set(..) => "a set".to_string(),
    }
}

fn mismatch(expr: &Expr, ty: DataType) -> Error {
    Error::new(
        expr.span().clone(),
        format!("expected {}, got {}", expected(ty), describe(expr)),
    )
}

fn named<T: Copy>(expr: &Expr, ty: DataType, table: &[(&str, T)]) -> Result<T> {
    match expr {
        Expr::Word(n) => lookup(table, &n.text).ok_or_else(|| {
            Error::new(
                n.span.clone(),
                format!(
                    "unknown {} '{}' (expected one of: {}){}",
                    ty.name(),
                    n.text,
                    symbols::names(table),
                    suggest::did_you_mean(&n.text, table.iter().map(|(name, _)| *name), "")
                ),
            )
        }),
        _ => Err(mismatch(expr, ty)),
    }
}

fn number_at_most(expr: &Expr, ty: DataType, max: u64) -> Result<Option<u64>> {
    match expr {
        Expr::Number(n, span) if *n > max => Err(Error::new(
            span.clone(),
            format!("{} {n} is out of range (at most {max})", ty.name()),
        )),
        Expr::Number(n, _) => Ok(Some(*n)),
        _ => Ok(None),
    }
}

/// An interface name: a quoted string or bare word, at most 15 bytes; a
/// trailing `*` makes it a wildcard.
fn ifname(expr: &Expr, ty: DataType) -> Result<Ifname> {
    let (text, span) = match expr {
        Expr::Str(n) | Expr::Word(n) => (&n.text, &n.span),
        _ => return Err(mismatch(expr, ty)),
    };
    let (name, wildcard) = match text.strip_suffix('*') {
        Some(prefix) if ty == DataType::Ifname => (prefix, true),
        _ => (text.as_str(), false),
    };
    if name.contains('*') {
        return Err(Error::new(
            span.clone(),
            "'*' is only allowed at the end of an interface name",
        ));
    }
    if name.is_empty() && !wildcard {
        return Err(Error::new(span.clone(), "empty interface name"));
    }
    if name.len() > 15 {
        return Err(Error::new(
            span.clone(),
            format!("interface name '{name}' is longer than 15 bytes"),
        ));
    }
    Ok(Ifname {
        name: name.to_string(),
        wildcard,
    })
}

const U8: u64 = u8::MAX as u64;
const U16: u64 = u16::MAX as u64;
const U32: u64 = u32::MAX as u64;

/// The names of a type that has none: it takes numbers only.
const NO_NAMES: &[(&str, u64)] = &[];

/// A number up to `max`, or a name from `names`; anything else (with
/// `NO_NAMES`, a word too) is a type mismatch.
fn number_or_name<T: Copy + Into<u64>>(
    expr: &Expr,
    ty: DataType,
    max: u64,
    names: &[(&str, T)],
) -> Result<u64> {
    match number_at_most(expr, ty, max)? {
        Some(n) => Ok(n),
        None if names.is_empty() => Err(mismatch(expr, ty)),
        None => Ok(named(expr, ty, names)?.into()),
    }
}

/// One scalar of type `ty`. The casts cannot truncate: a number is at most
/// the type's maximum, and a name's value fits its type.
pub fn scalar(expr: &Expr, ty: DataType) -> Result<Scalar> {
    use symbols::*;
    Ok(match ty {
        DataType::Ipv4Addr => match expr {
            Expr::Ipv4(a, _) => Scalar::Ipv4(*a),
            _ => return Err(mismatch(expr, ty)),
        },
        DataType::Ipv6Addr => match expr {
            Expr::Ipv6(a, _) => Scalar::Ipv6(*a),
            _ => return Err(mismatch(expr, ty)),
        },
        DataType::InetService => Scalar::Service(number_or_name(expr, ty, U16, SERVICES)? as u16),
        DataType::InetProto => Scalar::Proto(number_or_name(expr, ty, U8, PROTOCOLS)? as u8),
        DataType::Mark => Scalar::Mark(number_or_name(expr, ty, U32, NO_NAMES)? as u32),
        DataType::Ifname => Scalar::Ifname(ifname(expr, ty)?),
        DataType::IfaceIndex => Scalar::Iface(ifname(expr, ty)?.name),
        DataType::NfProto => Scalar::NfProto(named(expr, ty, NF_PROTOS)? as u8),
        DataType::PktType => Scalar::PktType(named(expr, ty, PKT_TYPES)? as u8),
        DataType::CtState => Scalar::CtState(number_or_name(expr, ty, U32, CT_STATES)? as u32),
        DataType::CtStatus => Scalar::CtStatus(number_or_name(expr, ty, U32, CT_STATUSES)? as u32),
        DataType::CtDir => Scalar::CtDir(number_or_name(expr, ty, U8, CT_DIRECTIONS)? as u8),
        DataType::TcpFlag => Scalar::TcpFlags(number_or_name(expr, ty, U8, TCP_FLAGS)? as u8),
        DataType::FibAddrType => Scalar::FibAddrType(named(expr, ty, FIB_ADDR_TYPES)?),
        DataType::EtherAddr => match expr {
            Expr::EtherAddr(a, _) => Scalar::EtherAddr(*a),
            _ => return Err(mismatch(expr, ty)),
        },
        DataType::EtherType => {
            Scalar::EtherType(number_or_name(expr, ty, U16, ETHER_TYPES)? as u16)
        }
        DataType::ArpOp => Scalar::ArpOp(number_or_name(expr, ty, U16, ARP_OPS)? as u16),
        DataType::Integer8 => Scalar::Int8(number_or_name(expr, ty, U8, NO_NAMES)? as u8),
        DataType::Integer16 => Scalar::Int16(number_or_name(expr, ty, U16, NO_NAMES)? as u16),
        DataType::Integer32 => Scalar::Int32(number_or_name(expr, ty, U32, NO_NAMES)? as u32),
        DataType::Ip6Version => Scalar::Ip6Version(number_or_name(expr, ty, 0xf, NO_NAMES)? as u8),
        DataType::Ip6Flowlabel => {
            Scalar::Ip6Flowlabel(number_or_name(expr, ty, 0xf_ffff, NO_NAMES)? as u32)
        }
        DataType::Icmpv6Type => {
            Scalar::Icmpv6Type(number_or_name(expr, ty, U8, ICMPV6_TYPES)? as u8)
        }
        DataType::Icmpv6Code => {
            Scalar::Icmpv6Code(number_or_name(expr, ty, U8, ICMPV6_CODES)? as u8)
        }
        DataType::IgmpType => Scalar::IgmpType(number_or_name(expr, ty, U8, IGMP_TYPES)? as u8),
        DataType::IcmpType => Scalar::IcmpType(number_or_name(expr, ty, U8, ICMP_TYPES)? as u8),
        DataType::IcmpCode => Scalar::IcmpCode(number_or_name(expr, ty, U8, ICMP_CODES)? as u8),
        DataType::Ip6Dscp => Scalar::Ip6Dscp(number_or_name(expr, ty, 0x3f, DSCP)? as u8),
        DataType::Ip6Ecn => Scalar::Ip6Ecn(number_or_name(expr, ty, 3, ECN)? as u8),
        DataType::Verdict => return Err(mismatch(expr, ty)),
    })
}

/// Whether values of `ty` are flags that a comma list combines.
pub fn is_bitmask(ty: DataType) -> bool {
    matches!(
        ty,
        DataType::CtState | DataType::CtStatus | DataType::TcpFlag
    )
}

/// The OR of a flag list (`established,related`, `syn|ack`) or one flag.
pub fn flags(expr: &Expr, ty: DataType) -> Result<Scalar> {
    let items: &[Expr] = match expr {
        Expr::List(items, _) => items,
        single => std::slice::from_ref(single),
    };
    let mut bits: u32 = 0;
    for item in items {
        bits |= match scalar(item, ty)? {
            Scalar::CtState(b) | Scalar::CtStatus(b) => b,
            Scalar::TcpFlags(b) => u32::from(b),
            _ => return Err(mismatch(item, ty)),
        };
    }
    Ok(match ty {
        DataType::CtState => Scalar::CtState(bits),
        DataType::CtStatus => Scalar::CtStatus(bits),
        _ => Scalar::TcpFlags(bits as u8),
    })
}

/// Types whose values can form ranges.
fn orderable(ty: DataType) -> bool {
    matches!(
        ty,
        DataType::Ipv4Addr
            | DataType::Ipv6Addr
            | DataType::InetService
            | DataType::InetProto
            | DataType::Mark
            | DataType::EtherAddr
            | DataType::ArpOp
            | DataType::Integer8
            | DataType::Integer16
            | DataType::Integer32
            | DataType::Icmpv6Type
            | DataType::Icmpv6Code
            | DataType::IgmpType
            | DataType::IcmpType
            | DataType::IcmpCode
            | DataType::Ip6Dscp
            | DataType::Ip6Ecn
            | DataType::Ip6Version
            | DataType::Ip6Flowlabel
    )
}

/// A single value, range or prefix of type `ty`.
pub fn value(expr: &Expr, ty: DataType) -> Result<Value> {
    match expr {
        Expr::Range(low, high, span) => {
            if !orderable(ty) {
                return Err(Error::new(
                    span.clone(),
                    format!("a range of {} is not supported", ty.name()),
                ));
            }
            let (low, high) = (scalar(low, ty)?, scalar(high, ty)?);
            if ordinal(&low) > ordinal(&high) {
                return Err(Error::new(
                    span.clone(),
                    "range has zero or negative size: its low end is above its high end",
                ));
            }
            Ok(Value::Range(low, high))
        }
        Expr::Prefix(addr, len, span) => {
            let addr = match scalar(addr, ty)? {
                Scalar::Ipv4(a) if ty == DataType::Ipv4Addr => IpAddr::V4(a),
                Scalar::Ipv6(a) if ty == DataType::Ipv6Addr => IpAddr::V6(a),
                _ => {
                    return Err(Error::new(
                        span.clone(),
                        format!("a prefix needs an address, not {}", expected(ty)),
                    ));
                }
            };
            prefix(addr, *len, span)
        }
        Expr::List(..) if is_bitmask(ty) => Ok(Value::Single(flags(expr, ty)?)),
        Expr::List(_, span) => Err(Error::new(
            span.clone(),
            format!(
                "a comma list only combines flags (ct state, ct status, tcp flags); write a set {{ ... }} of {}",
                ty.name()
            ),
        )),
        _ => Ok(Value::Single(scalar(expr, ty)?)),
    }
}

/// `addr/len` with the host bits cleared, as nft does.
fn prefix(addr: IpAddr, len: u64, span: &Span) -> Result<Value> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(Error::new(
            span.clone(),
            format!("prefix length {len} is longer than {max}"),
        ));
    }
    let len = len as u8;
    let masked = match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    Ok(Value::Prefix(masked, len))
}

/// A number that orders values of one orderable type.
fn ordinal(s: &Scalar) -> u128 {
    match s {
        Scalar::Ipv4(a) => u32::from(*a).into(),
        Scalar::Ipv6(a) => u128::from(*a),
        Scalar::Service(p) => (*p).into(),
        Scalar::Proto(p) => (*p).into(),
        Scalar::Mark(m) => (*m).into(),
        Scalar::EtherAddr(a) => ether_ordinal(a),
        Scalar::ArpOp(v) | Scalar::Int16(v) => (*v).into(),
        Scalar::Int8(v)
        | Scalar::Icmpv6Type(v)
        | Scalar::Icmpv6Code(v)
        | Scalar::IgmpType(v)
        | Scalar::IcmpType(v)
        | Scalar::IcmpCode(v)
        | Scalar::Ip6Dscp(v)
        | Scalar::Ip6Ecn(v)
        | Scalar::Ip6Version(v) => (*v).into(),
        Scalar::Int32(v) | Scalar::Ip6Flowlabel(v) => (*v).into(),
        _ => 0,
    }
}

/// A MAC address as a number, first byte highest.
pub fn ether_ordinal(addr: &[u8; 6]) -> u128 {
    addr.iter().fold(0u128, |n, b| (n << 8) | u128::from(*b))
}

/// One value per part of `types`: a concatenation `a . b` for several
/// parts, a plain value for one.
pub fn tuple(expr: &Expr, types: &[DataType]) -> Result<Vec<Value>> {
    match (expr, types) {
        (Expr::Concat(parts, _), _) if parts.len() == types.len() => parts
            .iter()
            .zip(types)
            .map(|(part, ty)| value(part, *ty))
            .collect(),
        (_, [ty]) => Ok(vec![value(expr, *ty)?]),
        _ => Err(arity(expr, types)),
    }
}

/// Map data: one scalar per part of `types` (no ranges).
pub fn data_tuple(expr: &Expr, types: &[DataType]) -> Result<Vec<Scalar>> {
    match (expr, types) {
        (Expr::Concat(parts, _), _) if parts.len() == types.len() => parts
            .iter()
            .zip(types)
            .map(|(part, ty)| scalar(part, *ty))
            .collect(),
        (_, [ty]) => Ok(vec![scalar(expr, *ty)?]),
        _ => Err(arity(expr, types)),
    }
}

/// `ipv4_addr . inet_service` for messages.
pub fn type_names(types: &[DataType]) -> String {
    types
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(" . ")
}

fn arity(expr: &Expr, types: &[DataType]) -> Error {
    Error::new(
        expr.span().clone(),
        format!(
            "expected a value of type {}, got {}",
            type_names(types),
            describe(expr)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn span() -> Span {
        Span::new(Arc::from("t"), 1, 1)
    }

    #[test]
    fn prefixes_lose_their_host_bits_like_nft() {
        let expr = Expr::Prefix(
            Box::new(Expr::Ipv4("10.1.2.3".parse().unwrap(), span())),
            8,
            span(),
        );
        assert_eq!(
            value(&expr, DataType::Ipv4Addr).unwrap(),
            Value::Prefix("10.0.0.0".parse().unwrap(), 8)
        );
    }

    #[test]
    fn a_zero_length_prefix_matches_everything() {
        let expr = Expr::Prefix(
            Box::new(Expr::Ipv6("fe80::1".parse().unwrap(), span())),
            0,
            span(),
        );
        assert_eq!(
            value(&expr, DataType::Ipv6Addr).unwrap(),
            Value::Prefix("::".parse().unwrap(), 0)
        );
    }

    #[test]
    fn an_address_where_a_port_belongs_is_a_type_error() {
        let expr = Expr::Ipv4("1.2.3.4".parse().unwrap(), span());
        let err = scalar(&expr, DataType::InetService).unwrap_err();
        assert_eq!(
            err.message,
            "expected a port (inet_service), got IPv4 address 1.2.3.4"
        );
    }
}
