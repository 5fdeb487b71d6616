//! Rule expressions as plain values, and their libnftnl encoding.
//!
//! One variant per kernel expression the loader and the firewall use; each
//! carries exactly the attributes nft would set, so the kernel (and `nft list`)
//! sees the same bytecode. Registers are the kernel's numbers: 1–4 are the
//! 16-byte registers, 8–23 the 32-bit ones (a concatenation's second field
//! lives in `Reg::r32(1)` = 9, and so on).

use std::ffi::{CStr, CString};

use nftnl::nftnl_sys as sys;

use super::Family;
use super::sys::NlExpr;

/// A kernel data register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reg(pub u32);

impl Reg {
    pub const VERDICT: Reg = Reg(0);
    pub const R1: Reg = Reg(1);
    pub const R2: Reg = Reg(2);
    pub const R3: Reg = Reg(3);
    pub const R4: Reg = Reg(4);

    /// The `n`th 32-bit register (`NFT_REG32_00 + n`).
    pub const fn r32(n: u32) -> Reg {
        Reg(8 + n)
    }

    /// The register holding the 32-bit word `words` after the start of a
    /// value loaded at 16-byte register `self`, named the way nft names it:
    /// a 16-byte register when the word starts one, a 32-bit one otherwise.
    pub fn word(self, words: u32) -> Reg {
        let base = self.r32_index() + words;
        if base % 4 == 0 {
            Reg(1 + base / 4)
        } else {
            Reg::r32(base)
        }
    }

    fn r32_index(self) -> u32 {
        if (1..=4).contains(&self.0) {
            (self.0 - 1) * 4
        } else {
            self.0.saturating_sub(8)
        }
    }
}

/// Where a payload offset counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadBase {
    Link = 0,
    Network = 1,
    Transport = 2,
    Inner = 3,
}

/// `meta` keys (`enum nft_meta_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaKey {
    Len = 0,
    Protocol = 1,
    Priority = 2,
    Mark = 3,
    Iif = 4,
    Oif = 5,
    IifName = 6,
    OifName = 7,
    IifType = 8,
    OifType = 9,
    SkUid = 10,
    SkGid = 11,
    NfTrace = 12,
    NfProto = 15,
    L4Proto = 16,
    PktType = 19,
    IifGroup = 21,
    OifGroup = 22,
    IifKind = 26,
    OifKind = 27,
}

/// `ct` keys (`enum nft_ct_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtKey {
    State = 0,
    Direction = 1,
    Status = 2,
    Mark = 3,
    Expiration = 5,
    Helper = 6,
    L3Protocol = 7,
    Protocol = 10,
    ProtoSrc = 11,
    ProtoDst = 12,
    Zone = 17,
    SrcIp = 19,
    DstIp = 20,
    SrcIp6 = 21,
    DstIp6 = 22,
    Id = 23,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq = 0,
    Neq = 1,
    Lt = 2,
    Lte = 3,
    Gt = 4,
    Gte = 5,
}

/// What `fib` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FibResult {
    Oif = 1,
    OifName = 2,
    AddrType = 3,
}

/// `fib` input flags (`NFTA_FIB_F_*`), combined with `|` on the raw values.
pub mod fib_flags {
    pub const SADDR: u32 = 1;
    pub const DADDR: u32 = 2;
    pub const MARK: u32 = 4;
    pub const IIF: u32 = 8;
    pub const OIF: u32 = 16;
    pub const PRESENT: u32 = 32;
}

/// NAT range flags (`NF_NAT_RANGE_*`).
pub mod nat_flags {
    pub const MAP_IPS: u32 = 1;
    pub const PROTO_SPECIFIED: u32 = 2;
    pub const PROTO_RANDOM: u32 = 4;
    pub const PERSISTENT: u32 = 8;
    pub const PROTO_RANDOM_FULLY: u32 = 16;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    Snat = 0,
    Dnat = 1,
}

/// A chain verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Continue,
    Return,
    Jump(CString),
    Goto(CString),
}

impl Verdict {
    /// The kernel's verdict code (`NF_ACCEPT`, `NFT_JUMP`, …).
    pub fn code(&self) -> i32 {
        match self {
            Verdict::Accept => 1,
            Verdict::Drop => 0,
            Verdict::Continue => -1,
            Verdict::Jump(_) => -3,
            Verdict::Goto(_) => -4,
            Verdict::Return => -5,
        }
    }

    pub fn chain(&self) -> Option<&CStr> {
        match self {
            Verdict::Jump(chain) | Verdict::Goto(chain) => Some(chain),
            _ => None,
        }
    }
}

/// One expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Loads `len` bytes at `offset` from `base` into `dreg`.
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u32,
        dreg: Reg,
    },
    Meta {
        key: MetaKey,
        dreg: Reg,
    },
    MetaSet {
        key: MetaKey,
        sreg: Reg,
    },
    /// `dir` is `Some(0)` for original, `Some(1)` for reply.
    Ct {
        key: CtKey,
        dir: Option<u8>,
        dreg: Reg,
    },
    CtSet {
        key: CtKey,
        sreg: Reg,
    },
    Cmp {
        op: CmpOp,
        sreg: Reg,
        data: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor`; the length is the mask's.
    Bitwise {
        sreg: Reg,
        dreg: Reg,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    /// `op` is `Eq` or `Neq`: inside, or outside, `from..=to`.
    Range {
        op: CmpOp,
        sreg: Reg,
        from: Vec<u8>,
        to: Vec<u8>,
    },
    /// Looks `sreg` up in a set; with `dreg`, a map lookup that loads the
    /// element's data (`Reg::VERDICT` for a verdict map). `set_id` names a set
    /// added earlier in the same batch (anonymous sets need it).
    Lookup {
        set: CString,
        set_id: Option<u32>,
        sreg: Reg,
        dreg: Option<Reg>,
        invert: bool,
    },
    Immediate {
        dreg: Reg,
        data: Vec<u8>,
    },
    /// Converts `len` bytes of `sreg`, in words of `size` bytes, between
    /// host and network byte order (`hton` when `to_network`).
    Byteorder {
        sreg: Reg,
        dreg: Reg,
        to_network: bool,
        len: u32,
        size: u32,
    },
    Verdict(Verdict),
    Counter {
        packets: u64,
        bytes: u64,
    },
    Fib {
        flags: u32,
        result: FibResult,
        dreg: Reg,
    },
    /// snat/dnat with address and port from registers.
    Nat {
        kind: NatKind,
        family: Family,
        addr_min: Option<Reg>,
        addr_max: Option<Reg>,
        proto_min: Option<Reg>,
        proto_max: Option<Reg>,
        flags: u32,
    },
    Masquerade {
        flags: u32,
        proto_min: Option<Reg>,
        proto_max: Option<Reg>,
    },
    Redirect {
        flags: u32,
        proto_min: Option<Reg>,
        proto_max: Option<Reg>,
    },
    /// `kind`: 0 ICMP unreachable, 1 TCP reset, 2 ICMPx unreachable.
    Reject {
        kind: u32,
        code: Option<u8>,
    },
    Log(Log),
    Notrack,
}

/// The `log` statement's options; `None` leaves an attribute out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    pub prefix: Option<CString>,
    pub group: Option<u16>,
    pub snaplen: Option<u32>,
    pub qthreshold: Option<u16>,
    pub level: Option<u32>,
    pub flags: Option<u32>,
}

/// Netlink framing around one attribute: header, padded payload.
fn attr_len(payload: usize) -> usize {
    4 + payload.div_ceil(4) * 4
}

impl Expr {
    /// An upper bound of the expression's encoded size, so a rule can be
    /// refused before it overflows a message.
    pub(super) fn encoded_len_bound(&self) -> usize {
        // Expression nest, name, data nest, and up to eight small attributes.
        let fixed = 4 + attr_len(16) + 4 + 8 * attr_len(8);
        let data = match self {
            Expr::Cmp { data, .. } | Expr::Immediate { data, .. } => attr_len(4 + data.len()),
            Expr::Bitwise { mask, xor, .. } => 2 * attr_len(4 + mask.len().max(xor.len())),
            Expr::Range { from, to, .. } => attr_len(4 + from.len()) + attr_len(4 + to.len()),
            Expr::Lookup { set, .. } => attr_len(set.as_bytes().len() + 1),
            Expr::Verdict(v) => attr_len(v.chain().map_or(0, |c| c.to_bytes().len() + 1) + 16),
            Expr::Log(log) => attr_len(log.prefix.as_ref().map_or(0, |p| p.to_bytes().len() + 1)),
            _ => 0,
        };
        fixed + data
    }

    /// The libnftnl object for this expression.
    pub(super) fn to_nftnl(&self) -> NlExpr {
        match self {
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                let mut e = NlExpr::new(c"payload");
                e.set_u32(sys::NFTNL_EXPR_PAYLOAD_DREG, dreg.0);
                e.set_u32(sys::NFTNL_EXPR_PAYLOAD_BASE, *base as u32);
                e.set_u32(sys::NFTNL_EXPR_PAYLOAD_OFFSET, *offset);
                e.set_u32(sys::NFTNL_EXPR_PAYLOAD_LEN, *len);
                e
            }
            Expr::Meta { key, dreg } => {
                let mut e = NlExpr::new(c"meta");
                e.set_u32(sys::NFTNL_EXPR_META_DREG, dreg.0);
                e.set_u32(sys::NFTNL_EXPR_META_KEY, *key as u32);
                e
            }
            Expr::MetaSet { key, sreg } => {
                let mut e = NlExpr::new(c"meta");
                e.set_u32(sys::NFTNL_EXPR_META_SREG, sreg.0);
                e.set_u32(sys::NFTNL_EXPR_META_KEY, *key as u32);
                e
            }
            Expr::Ct { key, dir, dreg } => {
                let mut e = NlExpr::new(c"ct");
                e.set_u32(sys::NFTNL_EXPR_CT_DREG, dreg.0);
                e.set_u32(sys::NFTNL_EXPR_CT_KEY, *key as u32);
                if let Some(dir) = dir {
                    e.set_u8(sys::NFTNL_EXPR_CT_DIR, *dir);
                }
                e
            }
            Expr::CtSet { key, sreg } => {
                let mut e = NlExpr::new(c"ct");
                e.set_u32(sys::NFTNL_EXPR_CT_SREG, sreg.0);
                e.set_u32(sys::NFTNL_EXPR_CT_KEY, *key as u32);
                e
            }
            Expr::Cmp { op, sreg, data } => {
                let mut e = NlExpr::new(c"cmp");
                e.set_u32(sys::NFTNL_EXPR_CMP_SREG, sreg.0);
                e.set_u32(sys::NFTNL_EXPR_CMP_OP, *op as u32);
                e.set_value(sys::NFTNL_EXPR_CMP_DATA, data, "a comparison value");
                e
            }
            Expr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            } => {
                let mut e = NlExpr::new(c"bitwise");
                e.set_u32(sys::NFTNL_EXPR_BITWISE_SREG, sreg.0);
                e.set_u32(sys::NFTNL_EXPR_BITWISE_DREG, dreg.0);
                e.set_u32(
                    sys::NFTNL_EXPR_BITWISE_LEN,
                    u32::try_from(mask.len()).unwrap_or(u32::MAX),
                );
                e.set_value(sys::NFTNL_EXPR_BITWISE_MASK, mask, "a bitwise mask");
                e.set_value(sys::NFTNL_EXPR_BITWISE_XOR, xor, "a bitwise xor value");
                e
            }
            Expr::Range { op, sreg, from, to } => {
                let mut e = NlExpr::new(c"range");
                e.set_u32(sys::NFTNL_EXPR_RANGE_SREG, sreg.0);
                e.set_u32(sys::NFTNL_EXPR_RANGE_OP, *op as u32);
                e.set_value(sys::NFTNL_EXPR_RANGE_FROM_DATA, from, "a range bound");
                e.set_value(sys::NFTNL_EXPR_RANGE_TO_DATA, to, "a range bound");
                e
            }
            Expr::Lookup {
                set,
                set_id,
                sreg,
                dreg,
                invert,
            } => {
                let mut e = NlExpr::new(c"lookup");
                e.set_u32(sys::NFTNL_EXPR_LOOKUP_SREG, sreg.0);
                if let Some(dreg) = dreg {
                    e.set_u32(sys::NFTNL_EXPR_LOOKUP_DREG, dreg.0);
                }
                e.set_str(sys::NFTNL_EXPR_LOOKUP_SET, set, "a set name");
                if let Some(id) = set_id {
                    e.set_u32(sys::NFTNL_EXPR_LOOKUP_SET_ID, *id);
                }
                if *invert {
                    e.set_u32(sys::NFTNL_EXPR_LOOKUP_FLAGS, libc::NFT_LOOKUP_F_INV as u32);
                }
                e
            }
            Expr::Immediate { dreg, data } => {
                let mut e = NlExpr::new(c"immediate");
                e.set_u32(sys::NFTNL_EXPR_IMM_DREG, dreg.0);
                e.set_value(sys::NFTNL_EXPR_IMM_DATA, data, "an immediate value");
                e
            }
            Expr::Byteorder {
                sreg,
                dreg,
                to_network,
                len,
                size,
            } => {
                let mut e = NlExpr::new(c"byteorder");
                e.set_u32(sys::NFTNL_EXPR_BYTEORDER_SREG, sreg.0);
                e.set_u32(sys::NFTNL_EXPR_BYTEORDER_DREG, dreg.0);
                e.set_u32(sys::NFTNL_EXPR_BYTEORDER_LEN, *len);
                e.set_u32(sys::NFTNL_EXPR_BYTEORDER_SIZE, *size);
                // NFT_BYTEORDER_NTOH is 0, NFT_BYTEORDER_HTON 1.
                e.set_u32(sys::NFTNL_EXPR_BYTEORDER_OP, u32::from(*to_network));
                e
            }
            Expr::Verdict(verdict) => {
                let mut e = NlExpr::new(c"immediate");
                e.set_u32(sys::NFTNL_EXPR_IMM_DREG, Reg::VERDICT.0);
                if let Some(chain) = verdict.chain() {
                    e.set_str(sys::NFTNL_EXPR_IMM_CHAIN, chain, "a chain name");
                }
                e.set_u32(sys::NFTNL_EXPR_IMM_VERDICT, verdict.code() as u32);
                e
            }
            Expr::Counter { packets, bytes } => {
                let mut e = NlExpr::new(c"counter");
                if *packets != 0 {
                    e.set_u64(sys::NFTNL_EXPR_CTR_PACKETS, *packets);
                }
                if *bytes != 0 {
                    e.set_u64(sys::NFTNL_EXPR_CTR_BYTES, *bytes);
                }
                e
            }
            Expr::Fib {
                flags,
                result,
                dreg,
            } => {
                let mut e = NlExpr::new(c"fib");
                e.set_u32(sys::NFTNL_EXPR_FIB_DREG, dreg.0);
                e.set_u32(sys::NFTNL_EXPR_FIB_RESULT, *result as u32);
                e.set_u32(sys::NFTNL_EXPR_FIB_FLAGS, *flags);
                e
            }
            Expr::Nat {
                kind,
                family,
                addr_min,
                addr_max,
                proto_min,
                proto_max,
                flags,
            } => {
                let mut e = NlExpr::new(c"nat");
                e.set_u32(sys::NFTNL_EXPR_NAT_TYPE, *kind as u32);
                e.set_u32(sys::NFTNL_EXPR_NAT_FAMILY, *family as u32);
                if *flags != 0 {
                    e.set_u32(sys::NFTNL_EXPR_NAT_FLAGS, *flags);
                }
                let regs = [
                    (sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, addr_min),
                    (sys::NFTNL_EXPR_NAT_REG_ADDR_MAX, addr_max),
                    (sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, proto_min),
                    (sys::NFTNL_EXPR_NAT_REG_PROTO_MAX, proto_max),
                ];
                for (attr, reg) in regs {
                    if let Some(reg) = reg {
                        e.set_u32(attr, reg.0);
                    }
                }
                e
            }
            Expr::Masquerade {
                flags,
                proto_min,
                proto_max,
            } => port_nat(
                c"masq",
                *flags,
                [
                    sys::NFTNL_EXPR_MASQ_FLAGS,
                    sys::NFTNL_EXPR_MASQ_REG_PROTO_MIN,
                    sys::NFTNL_EXPR_MASQ_REG_PROTO_MAX,
                ],
                *proto_min,
                *proto_max,
            ),
            Expr::Redirect {
                flags,
                proto_min,
                proto_max,
            } => port_nat(
                c"redir",
                *flags,
                [
                    sys::NFTNL_EXPR_REDIR_FLAGS,
                    sys::NFTNL_EXPR_REDIR_REG_PROTO_MIN,
                    sys::NFTNL_EXPR_REDIR_REG_PROTO_MAX,
                ],
                *proto_min,
                *proto_max,
            ),
            Expr::Reject { kind, code } => {
                let mut e = NlExpr::new(c"reject");
                e.set_u32(sys::NFTNL_EXPR_REJECT_TYPE, *kind);
                if let Some(code) = code {
                    e.set_u8(sys::NFTNL_EXPR_REJECT_CODE, *code);
                }
                e
            }
            Expr::Log(log) => {
                let mut e = NlExpr::new(c"log");
                if let Some(prefix) = &log.prefix {
                    e.set_str(sys::NFTNL_EXPR_LOG_PREFIX, prefix, "a log prefix");
                }
                if let Some(group) = log.group {
                    e.set_u16(sys::NFTNL_EXPR_LOG_GROUP, group);
                }
                if let Some(snaplen) = log.snaplen {
                    e.set_u32(sys::NFTNL_EXPR_LOG_SNAPLEN, snaplen);
                }
                if let Some(qthreshold) = log.qthreshold {
                    e.set_u16(sys::NFTNL_EXPR_LOG_QTHRESHOLD, qthreshold);
                }
                if let Some(level) = log.level {
                    e.set_u32(sys::NFTNL_EXPR_LOG_LEVEL, level);
                }
                if let Some(flags) = log.flags {
                    e.set_u32(sys::NFTNL_EXPR_LOG_FLAGS, flags);
                }
                e
            }
            Expr::Notrack => NlExpr::new(c"notrack"),
        }
    }
}

/// masq and redir share a shape: flags and an optional port range register.
fn port_nat(
    name: &CStr,
    flags: u32,
    attrs: [u32; 3],
    min: Option<Reg>,
    max: Option<Reg>,
) -> NlExpr {
    let mut e = NlExpr::new(name);
    if flags != 0 {
        e.set_u32(attrs[0], flags);
    }
    if let Some(min) = min {
        e.set_u32(attrs[1], min.0);
    }
    if let Some(max) = max {
        e.set_u32(attrs[2], max.0);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_a_value_name_registers_the_way_nft_does() {
        assert_eq!(Reg::R1.word(0), Reg::R1);
        assert_eq!(Reg::R1.word(1), Reg(9));
        assert_eq!(Reg::R1.word(4), Reg::R2);
        assert_eq!(Reg::R2.word(1), Reg(13));
        assert_eq!(Reg(9).word(1), Reg(10));
    }
}
