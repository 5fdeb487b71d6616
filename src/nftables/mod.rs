//! The kernel side of nftables: tables, chains, rules, sets and elements as
//! plain values; a [`Batch`] that carries them to the kernel as one
//! transaction; and a [`Socket`] that sends it and checks every ack, naming
//! the object behind any refusal. It knows no files and no containers: the
//! ruleset loader and the firewall build on it.
//!
//! The nftnl crate covers the batch framing; the objects and expressions it
//! lacks (maps, concatenations, elements with data, anonymous and interval
//! sets, fib, lookups into registers, nat from registers, …) are small
//! values here, encoded through libnftnl in `sys.rs`, the module's only
//! unsafe code besides one socket option and the detached close.
//!
//! The encoder takes any input without writing past a buffer or wrapping a
//! length: `sys.rs` checks every value against what libnftnl copies it into
//! (names 256 bytes with the NUL, register values 64, user data 256) and
//! every write against the room left in the message; anything past a limit
//! becomes an [`Error::Encode`] naming the object, and the batch is never
//! sent.

mod batch;
mod expr;
mod nla;
mod object;
mod socket;
mod sys;
mod uapi;

pub use batch::{Batch, Mode};
pub use expr::{
    CmpOp, CtKey, Expr, FibResult, Log, MetaKey, NatKind, PayloadBase, Reg, Verdict, fib_flags,
    nat_flags,
};
pub use object::{
    Chain, DATA_VERDICT, ELEM_INTERVAL_END, ElemData, Element, Hook, Rule, Set, SetRef, Table,
    USERDATA_MAX, Udata, concat, ifname, set_flags,
};
pub use socket::{AfterExit, CLOSE_TICK, ChainInfo, Error, Refusal, Socket, release_on_tick};

/// An nftables address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Inet = 1,
    Ip = 2,
    Arp = 3,
    Netdev = 5,
    Bridge = 7,
    Ip6 = 10,
}

impl From<Family> for u16 {
    fn from(family: Family) -> u16 {
        family as u16
    }
}

impl Family {
    /// The family of an NFPROTO_* number, if it is one of ours.
    pub fn from_nfproto(value: u8) -> Option<Family> {
        [
            Family::Inet,
            Family::Ip,
            Family::Arp,
            Family::Netdev,
            Family::Bridge,
            Family::Ip6,
        ]
        .into_iter()
        .find(|f| *f as u8 == value)
    }

    /// The family's name in nft syntax.
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Arp => "arp",
            Family::Netdev => "netdev",
            Family::Bridge => "bridge",
            Family::Ip6 => "ip6",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
