//! How nft lays out each type and selector of the subset: value bytes,
//! byte order, the bytecode that loads a selector, the protocol it depends
//! on, and the set user data (`typeof` information) nft records for it.

use std::net::IpAddr;

use crate::nftables::{CtKey, Expr, MetaKey, PayloadBase, Reg, Udata, fib_flags};

use super::super::ast::{CtAddr, DataType, Family, Scalar, Selector, Value};

/// nft's `enum byteorder`, as recorded in set user data.
pub(super) const BYTEORDER_INVALID: u32 = 0;
pub(super) const BYTEORDER_HOST: u32 = 1;
pub(super) const BYTEORDER_BIG: u32 = 2;

/// The byte order nft gives a value declared by type (named sets).
pub(super) fn type_byteorder(ty: DataType) -> u32 {
    match ty {
        DataType::Ipv4Addr
        | DataType::Ipv6Addr
        | DataType::InetService
        | DataType::TcpFlag
        | DataType::EtherAddr
        | DataType::EtherType
        | DataType::ArpOp
        | DataType::Integer16
        | DataType::Integer32
        | DataType::Ip6Dscp
        | DataType::Ip6Flowlabel => BYTEORDER_BIG,
        DataType::Ifname
        | DataType::Mark
        | DataType::IfaceIndex
        | DataType::CtState
        | DataType::CtStatus
        | DataType::FibAddrType => BYTEORDER_HOST,
        DataType::Integer8
        | DataType::InetProto
        | DataType::NfProto
        | DataType::PktType
        | DataType::Verdict
        | DataType::Icmpv6Type
        | DataType::Icmpv6Code
        | DataType::IgmpType
        | DataType::IcmpType
        | DataType::IcmpCode
        | DataType::CtDir
        | DataType::Ip6Ecn
        | DataType::Ip6Version => BYTEORDER_INVALID,
    }
}

/// Host-order numbers wider than a byte: nft converts them to network order
/// (`byteorder hton`) before range comparisons and interval lookups, and
/// stores them that way in interval sets.
pub(super) fn is_host_number(ty: DataType) -> bool {
    matches!(
        ty,
        DataType::Mark
            | DataType::IfaceIndex
            | DataType::CtState
            | DataType::CtStatus
            | DataType::FibAddrType
    )
}

/// A value's bytes as the kernel compares them in a register (and stores
/// them in a set without intervals). Interface indexes are resolved in the
/// current network namespace.
pub(super) fn scalar_bytes(scalar: &Scalar) -> Result<Vec<u8>, String> {
    Ok(match scalar {
        Scalar::Ipv4(a) => a.octets().to_vec(),
        Scalar::Ipv6(a) => a.octets().to_vec(),
        Scalar::Service(p) => p.to_be_bytes().to_vec(),
        Scalar::Proto(p) | Scalar::NfProto(p) | Scalar::PktType(p) | Scalar::TcpFlags(p) => {
            vec![*p]
        }
        Scalar::Ifname(name) => {
            let mut bytes = name.name.as_bytes().to_vec();
            if !name.wildcard {
                bytes.resize(16, 0);
            }
            bytes
        }
        Scalar::Iface(name) => ifindex(name)?.to_ne_bytes().to_vec(),
        Scalar::Mark(v) | Scalar::CtState(v) | Scalar::CtStatus(v) | Scalar::FibAddrType(v) => {
            v.to_ne_bytes().to_vec()
        }
        Scalar::EtherAddr(a) => a.to_vec(),
        Scalar::EtherType(v) | Scalar::ArpOp(v) | Scalar::Int16(v) => v.to_be_bytes().to_vec(),
        Scalar::Int8(v)
        | Scalar::Icmpv6Type(v)
        | Scalar::Icmpv6Code(v)
        | Scalar::IgmpType(v)
        | Scalar::IcmpType(v)
        | Scalar::IcmpCode(v)
        | Scalar::CtDir(v) => vec![*v],
        Scalar::Int32(v) => v.to_be_bytes().to_vec(),
        // Sub-byte fields sit where the header has them, as nft shifts
        // values to compare them with the masked load.
        Scalar::Ip6Dscp(v) => (u16::from(*v) << 6).to_be_bytes().to_vec(),
        Scalar::Ip6Ecn(v) | Scalar::Ip6Version(v) => vec![*v << 4],
        Scalar::Ip6Flowlabel(v) => v.to_be_bytes()[1..].to_vec(),
    })
}

fn ifindex(name: &str) -> Result<u32, String> {
    nix::net::if_::if_nametoindex(name).map_err(|_| format!("interface {name} does not exist"))
}

/// A value's bytes in the order intervals are computed and stored in: the
/// register bytes, except host-order numbers, which go big-endian.
pub(super) fn ordered_bytes(scalar: &Scalar) -> Result<Vec<u8>, String> {
    let mut bytes = scalar_bytes(scalar)?;
    if is_host_number(scalar.data_type()) && cfg!(target_endian = "little") {
        bytes.reverse();
    }
    Ok(bytes)
}

/// The inclusive bounds of a value, in ordered bytes of the type's length.
pub(super) fn bounds(value: &Value) -> Result<(Vec<u8>, Vec<u8>), String> {
    match value {
        Value::Single(Scalar::Ifname(name)) if name.wildcard => {
            let mut low = name.name.as_bytes().to_vec();
            let mut high = low.clone();
            low.resize(16, 0);
            high.resize(16, 0xff);
            Ok((low, high))
        }
        Value::Single(s) => {
            let bytes = ordered_bytes(s)?;
            Ok((bytes.clone(), bytes))
        }
        Value::Range(a, b) => Ok((ordered_bytes(a)?, ordered_bytes(b)?)),
        Value::Prefix(addr, len) => {
            let low = match addr {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            let high = low
                .iter()
                .enumerate()
                .map(|(i, b)| b | !prefix_mask_byte(i, *len))
                .collect();
            Ok((low, high))
        }
    }
}

/// Byte `i` of a mask with the first `len` bits set.
pub(super) fn prefix_mask_byte(i: usize, len: u8) -> u8 {
    let bits = (usize::from(len)).saturating_sub(i * 8).min(8);
    if bits == 0 { 0 } else { 0xffu8 << (8 - bits) }
}

/// `bytes + 1` as a big-endian number; `None` when it overflows.
pub(super) fn increment(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    for b in out.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return Some(out);
        }
    }
    None
}

/// Pads a concatenation field to the kernel's 4-byte register words.
pub(super) fn pad4(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.resize(bytes.len().div_ceil(4) * 4, 0);
    bytes
}

/// A protocol a selector needs the packet to have, which nft checks first
/// (`meta nfproto ipv4`, `meta l4proto tcp`) unless the rule already did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dep {
    /// The network protocol, by its NFPROTO_* number (ipv4 2, ipv6 10).
    NfProto(u8),
    L4Proto(u8),
}

pub(super) const NFPROTO_IPV4: u8 = 2;
pub(super) const NFPROTO_ARP: u8 = 3;
pub(super) const NFPROTO_IPV6: u8 = 10;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
pub(super) const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_IGMP: u8 = 2;
const IPPROTO_ICMP: u8 = 1;

pub(super) fn proto_name(dep: Dep) -> String {
    match dep {
        Dep::NfProto(NFPROTO_IPV4) => "ip".into(),
        Dep::NfProto(NFPROTO_IPV6) => "ip6".into(),
        Dep::NfProto(NFPROTO_ARP) => "arp".into(),
        Dep::L4Proto(IPPROTO_TCP) => "tcp".into(),
        Dep::L4Proto(IPPROTO_UDP) => "udp".into(),
        Dep::L4Proto(IPPROTO_ICMPV6) => "icmpv6".into(),
        Dep::L4Proto(IPPROTO_IGMP) => "igmp".into(),
        Dep::L4Proto(IPPROTO_ICMP) => "icmp".into(),
        Dep::NfProto(n) | Dep::L4Proto(n) => n.to_string(),
    }
}

/// The protocol `sel` depends on in a table of `family`. ip and ip6 tables
/// see only their own protocol; inet and bridge tables need a check.
pub(super) fn dependency(sel: Selector, family: Family) -> Option<Dep> {
    let mixed = matches!(family, Family::Inet | Family::Bridge);
    match sel {
        Selector::IpSaddr | Selector::IpDaddr | Selector::IpProtocol if mixed => {
            Some(Dep::NfProto(NFPROTO_IPV4))
        }
        Selector::Ip6Saddr
        | Selector::Ip6Daddr
        | Selector::Ip6Version
        | Selector::Ip6Dscp
        | Selector::Ip6Ecn
        | Selector::Ip6Flowlabel
        | Selector::Ip6Length
        | Selector::Ip6Nexthdr
        | Selector::Ip6Hoplimit
            if mixed =>
        {
            Some(Dep::NfProto(NFPROTO_IPV6))
        }
        sel if is_icmpv6(sel) => Some(Dep::L4Proto(IPPROTO_ICMPV6)),
        Selector::IgmpType => Some(Dep::L4Proto(IPPROTO_IGMP)),
        Selector::IcmpType | Selector::IcmpCode => Some(Dep::L4Proto(IPPROTO_ICMP)),
        Selector::TcpSport | Selector::TcpDport | Selector::TcpFlags => {
            Some(Dep::L4Proto(IPPROTO_TCP))
        }
        Selector::UdpSport | Selector::UdpDport => Some(Dep::L4Proto(IPPROTO_UDP)),
        Selector::ArpHtype
        | Selector::ArpPtype
        | Selector::ArpHlen
        | Selector::ArpPlen
        | Selector::ArpOperation
        | Selector::ArpSaddrIp
        | Selector::ArpDaddrIp
        | Selector::ArpSaddrEther
        | Selector::ArpDaddrEther => Some(Dep::NfProto(NFPROTO_ARP)),
        _ => None,
    }
}

pub(super) fn is_icmpv6(sel: Selector) -> bool {
    matches!(
        sel,
        Selector::Icmpv6Type
            | Selector::Icmpv6Code
            | Selector::Icmpv6Checksum
            | Selector::Icmpv6Id
            | Selector::Icmpv6Sequence
            | Selector::Icmpv6Mtu
            | Selector::Icmpv6MaxDelay
    )
}

/// The network protocol (NFPROTO_*) and transport protocol of a field of a
/// protocol that exists in one IP version only (`icmpv6`, `igmp`): where the
/// family is open nft checks the network protocol first, unless the rule
/// already matched the transport protocol.
pub(super) fn network_first(sel: Selector) -> Option<(u8, u8)> {
    match sel {
        sel if is_icmpv6(sel) => Some((NFPROTO_IPV6, IPPROTO_ICMPV6)),
        Selector::IgmpType => Some((NFPROTO_IPV4, IPPROTO_IGMP)),
        Selector::IcmpType | Selector::IcmpCode => Some((NFPROTO_IPV4, IPPROTO_ICMP)),
        _ => None,
    }
}

/// The ethertype check nft 1.0.6 puts before an `icmpv6` or `igmp` match in
/// a bridge table that has not fixed the network protocol: a frame header
/// load (`ether type ip6`), where `ip6 ...` matches check `meta protocol`.
pub(super) fn ether_type_network_exprs(nfproto: u8) -> [Expr; 2] {
    ether_type_exprs(if nfproto == NFPROTO_IPV6 {
        ETH_P_IPV6
    } else {
        ETH_P_IP
    })
}

/// `ether type T` read from the frame header.
fn ether_type_exprs(ethertype: u16) -> [Expr; 2] {
    [
        Expr::Payload {
            base: PayloadBase::Link,
            offset: 12,
            len: 2,
            dreg: Reg::R1,
        },
        Expr::Cmp {
            op: crate::nftables::CmpOp::Eq,
            sreg: Reg::R1,
            data: ethertype.to_be_bytes().to_vec(),
        },
    ]
}

/// The network protocol (NFPROTO_*) an ethertype names, for the protocol
/// context of bridge rules (`ether type arp`, `meta protocol ip`).
pub(super) fn ethertype_nfproto(ethertype: u16) -> Option<u8> {
    match ethertype {
        ETH_P_IP => Some(NFPROTO_IPV4),
        ETH_P_IPV6 => Some(NFPROTO_IPV6),
        ETH_P_ARP => Some(NFPROTO_ARP),
        _ => None,
    }
}

/// The bytecode that checks a dependency in a table of `family`. A bridge
/// sees frames: nft checks their ethertype (`meta protocol ip`, two bytes
/// in network order) where inet checks `meta nfproto ipv4`; for ARP nft
/// 1.0.6 reads the ethertype from the frame header instead (`ether type
/// arp`).
pub(super) fn dependency_exprs(dep: Dep, family: Family) -> [Expr; 2] {
    if dep == Dep::NfProto(NFPROTO_ARP) {
        return ether_type_exprs(ETH_P_ARP);
    }
    let (key, data) = match (dep, family) {
        (Dep::NfProto(v), Family::Bridge) => {
            let ethertype = if v == NFPROTO_IPV6 {
                ETH_P_IPV6
            } else {
                ETH_P_IP
            };
            (MetaKey::Protocol, ethertype.to_be_bytes().to_vec())
        }
        (Dep::NfProto(v), _) => (MetaKey::NfProto, vec![v]),
        (Dep::L4Proto(v), _) => (MetaKey::L4Proto, vec![v]),
    };
    [
        Expr::Meta { key, dreg: Reg::R1 },
        Expr::Cmp {
            op: crate::nftables::CmpOp::Eq,
            sreg: Reg::R1,
            data,
        },
    ]
}

/// Where a payload selector reads: base, byte offset, byte length.
pub(super) fn payload(sel: Selector) -> Option<(PayloadBase, u32, u32)> {
    use PayloadBase::{Link, Network, Transport};
    Some(match sel {
        Selector::EtherDaddr => (Link, 0, 6),
        Selector::EtherSaddr => (Link, 6, 6),
        Selector::EtherType => (Link, 12, 2),
        Selector::ArpHtype => (Network, 0, 2),
        Selector::ArpPtype => (Network, 2, 2),
        Selector::ArpHlen => (Network, 4, 1),
        Selector::ArpPlen => (Network, 5, 1),
        Selector::ArpOperation => (Network, 6, 2),
        Selector::ArpSaddrEther => (Network, 8, 6),
        Selector::ArpSaddrIp => (Network, 14, 4),
        Selector::ArpDaddrEther => (Network, 18, 6),
        Selector::ArpDaddrIp => (Network, 24, 4),
        Selector::IpSaddr => (Network, 12, 4),
        Selector::IpDaddr => (Network, 16, 4),
        Selector::IpProtocol => (Network, 9, 1),
        Selector::Ip6Saddr => (Network, 8, 16),
        Selector::Ip6Daddr => (Network, 24, 16),
        Selector::Ip6Version => (Network, 0, 1),
        Selector::Ip6Dscp => (Network, 0, 2),
        Selector::Ip6Ecn => (Network, 1, 1),
        Selector::Ip6Flowlabel => (Network, 1, 3),
        Selector::Ip6Length => (Network, 4, 2),
        Selector::Ip6Nexthdr => (Network, 6, 1),
        Selector::Ip6Hoplimit => (Network, 7, 1),
        Selector::Icmpv6Type => (Transport, 0, 1),
        Selector::Icmpv6Code => (Transport, 1, 1),
        Selector::Icmpv6Checksum => (Transport, 2, 2),
        Selector::Icmpv6Id | Selector::Icmpv6MaxDelay => (Transport, 4, 2),
        Selector::Icmpv6Mtu => (Transport, 4, 4),
        Selector::Icmpv6Sequence => (Transport, 6, 2),
        Selector::IgmpType | Selector::IcmpType => (Transport, 0, 1),
        Selector::IcmpCode => (Transport, 1, 1),
        Selector::TcpSport | Selector::UdpSport | Selector::ThSport => (Transport, 0, 2),
        Selector::TcpDport | Selector::UdpDport | Selector::ThDport => (Transport, 2, 2),
        Selector::TcpFlags => (Transport, 13, 1),
        _ => return None,
    })
}

/// The bits of a payload load that hold a field narrower than its bytes
/// (`ip6 dscp`, `ip6 flowlabel`): nft masks the load with them before
/// comparing (values are shifted into place, see `scalar_bytes`).
pub(super) fn field_mask(sel: Selector) -> Option<Vec<u8>> {
    Some(match sel {
        Selector::Ip6Version => vec![0xf0],
        Selector::Ip6Dscp => vec![0x0f, 0xc0],
        Selector::Ip6Ecn => vec![0x30],
        Selector::Ip6Flowlabel => vec![0x0f, 0xff, 0xff],
        _ => return None,
    })
}

/// The expressions that load `sel` into `dreg`: the load, and for fields
/// narrower than their bytes the mask that isolates them.
pub(super) fn load_masked(sel: Selector, dreg: Reg) -> Vec<Expr> {
    let mut exprs = vec![load(sel, dreg)];
    if let Some(mask) = field_mask(sel) {
        let xor = vec![0; mask.len()];
        exprs.push(Expr::Bitwise {
            sreg: dreg,
            dreg,
            mask,
            xor,
        });
    }
    exprs
}

fn meta_key(sel: Selector) -> Option<MetaKey> {
    Some(match sel {
        Selector::Iifname => MetaKey::IifName,
        Selector::Oifname => MetaKey::OifName,
        Selector::Iif => MetaKey::Iif,
        Selector::Oif => MetaKey::Oif,
        Selector::MetaL4proto => MetaKey::L4Proto,
        Selector::MetaMark => MetaKey::Mark,
        Selector::MetaNfproto => MetaKey::NfProto,
        Selector::MetaPkttype => MetaKey::PktType,
        Selector::MetaProtocol => MetaKey::Protocol,
        _ => return None,
    })
}

fn ct_key(sel: Selector) -> Option<CtKey> {
    Some(match sel {
        Selector::CtState => CtKey::State,
        Selector::CtStatus => CtKey::Status,
        Selector::CtDirection => CtKey::Direction,
        Selector::CtMark => CtKey::Mark,
        _ => return None,
    })
}

/// The ct key of `ct original|reply ip|ip6 saddr|daddr`.
fn ct_addr_key(addr: CtAddr) -> CtKey {
    match (addr.ipv6, addr.saddr) {
        (false, true) => CtKey::SrcIp,
        (false, false) => CtKey::DstIp,
        (true, true) => CtKey::SrcIp6,
        (true, false) => CtKey::DstIp6,
    }
}

fn fib_input_flags(fib: &super::super::ast::Fib) -> u32 {
    let mut flags = if fib.saddr {
        fib_flags::SADDR
    } else {
        fib_flags::DADDR
    };
    if fib.mark {
        flags |= fib_flags::MARK;
    }
    if fib.iif {
        flags |= fib_flags::IIF;
    }
    if fib.oif {
        flags |= fib_flags::OIF;
    }
    flags
}

/// The expression that loads `sel` into `dreg`.
pub(super) fn load(sel: Selector, dreg: Reg) -> Expr {
    if let Some((base, offset, len)) = payload(sel) {
        return Expr::Payload {
            base,
            offset,
            len,
            dreg,
        };
    }
    if let Some(key) = meta_key(sel) {
        return Expr::Meta { key, dreg };
    }
    if let Some(key) = ct_key(sel) {
        return Expr::Ct {
            key,
            dir: None,
            dreg,
        };
    }
    match sel {
        Selector::CtAddr(addr) => Expr::Ct {
            key: ct_addr_key(addr),
            dir: Some(u8::from(addr.reply)),
            dreg,
        },
        Selector::Fib(fib) => Expr::Fib {
            flags: fib_input_flags(&fib),
            result: crate::nftables::FibResult::AddrType,
            dreg,
        },
        // Every selector is a payload, meta, ct or fib one.
        _ => Expr::Meta {
            key: MetaKey::Len,
            dreg,
        },
    }
}

/// The byte order of what `sel` loads (nft's expression byte order).
pub(super) fn selector_byteorder(sel: Selector) -> u32 {
    if payload(sel).is_some() || matches!(sel, Selector::MetaProtocol | Selector::CtAddr(_)) {
        BYTEORDER_BIG
    } else {
        BYTEORDER_HOST
    }
}

// nft's `enum expr_types` numbers, as recorded in set `typeof` user data.
pub(super) const EXPR_VERDICT: u32 = 1;
const EXPR_PAYLOAD: u32 = 7;
const EXPR_META: u32 = 9;
const EXPR_CT: u32 = 12;
pub(super) const EXPR_CONCAT: u32 = 13;
const EXPR_FIB: u32 = 26;

// nft's protocol description ids and header field numbers (proto.h).
const PROTO_DESC_ICMP: u32 = 4;
const PROTO_DESC_IGMP: u32 = 5;
const PROTO_DESC_UDP: u32 = 6;
const PROTO_DESC_TCP: u32 = 8;
const PROTO_DESC_TH: u32 = 11;
const PROTO_DESC_IP: u32 = 12;
const PROTO_DESC_IP6: u32 = 13;
const PROTO_DESC_ICMPV6: u32 = 14;
const PROTO_DESC_ARP: u32 = 15;
const PROTO_DESC_ETHER: u32 = 17;

/// The `typeof` record nft keeps for an expression: its expression type
/// and the expression's own description.
pub(super) fn typeof_record(sel: Selector) -> (u32, Udata) {
    let mut data = Udata::new();
    if let Some((desc, field)) = payload_template(sel) {
        data.put_u32(0, desc);
        data.put_u32(1, field);
        return (EXPR_PAYLOAD, data);
    }
    if let Some(key) = meta_key(sel) {
        data.put_u32(0, key as u32);
        return (EXPR_META, data);
    }
    if let Some(key) = ct_key(sel) {
        data.put_u32(0, key as u32);
        // No direction: nft records -1.
        data.put_u32(1, u32::MAX);
        return (EXPR_CT, data);
    }

    if let Selector::Fib(fib) = sel {
        data.put_u32(0, crate::nftables::FibResult::AddrType as u32);
        data.put_u32(1, fib_input_flags(&fib));
    }
    (EXPR_FIB, data)
}

fn payload_template(sel: Selector) -> Option<(u32, u32)> {
    Some(match sel {
        Selector::IpProtocol => (PROTO_DESC_IP, 9),
        Selector::IpSaddr => (PROTO_DESC_IP, 11),
        Selector::IpDaddr => (PROTO_DESC_IP, 12),
        Selector::Ip6Saddr => (PROTO_DESC_IP6, 8),
        Selector::Ip6Daddr => (PROTO_DESC_IP6, 9),
        Selector::Ip6Version => (PROTO_DESC_IP6, 1),
        Selector::Ip6Dscp => (PROTO_DESC_IP6, 2),
        Selector::Ip6Ecn => (PROTO_DESC_IP6, 3),
        Selector::Ip6Flowlabel => (PROTO_DESC_IP6, 4),
        Selector::Ip6Length => (PROTO_DESC_IP6, 5),
        Selector::Ip6Nexthdr => (PROTO_DESC_IP6, 6),
        Selector::Ip6Hoplimit => (PROTO_DESC_IP6, 7),
        Selector::Icmpv6Type => (PROTO_DESC_ICMPV6, 1),
        Selector::Icmpv6Code => (PROTO_DESC_ICMPV6, 2),
        Selector::Icmpv6Checksum => (PROTO_DESC_ICMPV6, 3),
        Selector::Icmpv6Mtu => (PROTO_DESC_ICMPV6, 5),
        Selector::Icmpv6Id => (PROTO_DESC_ICMPV6, 6),
        Selector::Icmpv6Sequence => (PROTO_DESC_ICMPV6, 7),
        Selector::Icmpv6MaxDelay => (PROTO_DESC_ICMPV6, 8),
        Selector::IgmpType => (PROTO_DESC_IGMP, 1),
        Selector::IcmpType => (PROTO_DESC_ICMP, 1),
        Selector::IcmpCode => (PROTO_DESC_ICMP, 2),
        Selector::TcpSport => (PROTO_DESC_TCP, 1),
        Selector::TcpDport => (PROTO_DESC_TCP, 2),
        Selector::TcpFlags => (PROTO_DESC_TCP, 7),
        Selector::UdpSport => (PROTO_DESC_UDP, 1),
        Selector::UdpDport => (PROTO_DESC_UDP, 2),
        Selector::ThSport => (PROTO_DESC_TH, 1),
        Selector::ThDport => (PROTO_DESC_TH, 2),
        Selector::EtherDaddr => (PROTO_DESC_ETHER, 1),
        Selector::EtherSaddr => (PROTO_DESC_ETHER, 2),
        Selector::EtherType => (PROTO_DESC_ETHER, 3),
        Selector::ArpHtype => (PROTO_DESC_ARP, 1),
        Selector::ArpPtype => (PROTO_DESC_ARP, 2),
        Selector::ArpHlen => (PROTO_DESC_ARP, 3),
        Selector::ArpPlen => (PROTO_DESC_ARP, 4),
        Selector::ArpOperation => (PROTO_DESC_ARP, 5),
        Selector::ArpSaddrEther => (PROTO_DESC_ARP, 6),
        Selector::ArpSaddrIp => (PROTO_DESC_ARP, 7),
        Selector::ArpDaddrEther => (PROTO_DESC_ARP, 8),
        Selector::ArpDaddrIp => (PROTO_DESC_ARP, 9),
        _ => return None,
    })
}

/// `NFTNL_UDATA_SET_TYPEOF_EXPR` and `_DATA`, nested under a typeof record.
pub(super) fn typeof_udata(etype: u32, data: &Udata) -> Udata {
    let mut out = Udata::new();
    out.put_u32(0, etype);
    out.put_nest(1, data);
    out
}

/// The typeof record of a selector list: the selector's own for one, a
/// concatenation of them for several.
pub(super) fn key_typeof(key: &[Selector]) -> Udata {
    if let [one] = key {
        let (etype, data) = typeof_record(*one);
        return typeof_udata(etype, &data);
    }
    let mut parts = Udata::new();
    for (i, sel) in key.iter().enumerate() {
        let (etype, data) = typeof_record(*sel);
        parts.put_nest(i as u8, &typeof_udata(etype, &data));
    }
    typeof_udata(EXPR_CONCAT, &parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_masks_cover_exactly_the_prefix_bits() {
        let mask: Vec<u8> = (0..4).map(|i| prefix_mask_byte(i, 12)).collect();
        assert_eq!(mask, [0xff, 0xf0, 0, 0]);
        assert_eq!(prefix_mask_byte(0, 0), 0);
        assert_eq!(prefix_mask_byte(3, 32), 0xff);
    }

    #[test]
    fn increment_carries_and_reports_overflow() {
        assert_eq!(increment(&[0, 0xff]), Some(vec![1, 0]));
        assert_eq!(increment(&[0xff, 0xff]), None);
    }
}
