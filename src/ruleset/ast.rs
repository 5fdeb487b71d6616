//! The checked ruleset: the contract between the front end (lexer, parser,
//! checker) and the compiler to netlink batches.
//!
//! Everything here has already been through `check`:
//! - variables are expanded and includes resolved; nothing refers to source
//!   text any more except the [`Span`]s kept for error messages;
//! - every value is typed for the selector or set it meets (ports are `u16`,
//!   addresses `Ipv4Addr`/`Ipv6Addr`, flag lists one bitmask, ...);
//! - every table, chain and set a command or rule names was declared earlier
//!   in the loaded files (in the same table), jump targets exist, and chain
//!   type/hook/statement combinations are ones the kernel accepts;
//! - chain priorities are numbers (`dstnat` is -100, `srcnat + 10` is 110).
//!
//! A [`Ruleset`] is a list of [`Command`]s in the order nft itself would put
//! them into one batch: a `table t { ... }` block becomes `AddTable`, then its
//! chains, then its sets and maps (with their elements), then the rules of
//! every chain in order, exactly as `nft -f` expands blocks. The compiler turns
//! each command into netlink messages in that order and sends them all as one
//! transaction.
//!
//! The compiler still owns what needs the kernel or the table family:
//! implicit protocol dependencies (`tcp dport` in an inet table also matches
//! `meta l4proto tcp`), interface indexes for `iif`/`oif`, byte layouts,
//! register allocation and anonymous set names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Where a node came from: file, 1-based line and 1-based column (in
/// characters) of its first token. Line 0 means "the file as a whole" (it
/// could not be read at all). `-D NAME=VALUE` values have the file name
/// `-D NAME` and columns counted within VALUE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl Span {
    pub fn new(file: Arc<str>, line: u32, col: u32) -> Span {
        Span { file, line, col }
    }

    /// A span for a whole file, used when it cannot be read.
    pub fn whole_file(file: Arc<str>) -> Span {
        Span {
            file,
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.col)
        }
    }
}

/// A whole checked ruleset: the commands of one transaction, in batch order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    pub commands: Vec<Command>,
}

/// One command of the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The source of the command: the `table`/`chain`/`set` keyword of a
    /// block item, or the `add`/`delete`/`flush` keyword of a flat command.
    pub span: Span,
    pub kind: CommandKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    /// `flush ruleset`: every table of every family goes.
    FlushRuleset,
    /// `table ip t { ... }` or `add table ip t`. Not exclusive: an existing
    /// table is kept (NLM_F_CREATE without NLM_F_EXCL, like `nft add`).
    AddTable(Table),
    /// `delete table ip t`. The table may come from the kernel: the kernel
    /// refuses (ENOENT) when it does not exist.
    DeleteTable(TableId),
    /// `flush table ip t`: every rule of every chain of the table goes, and
    /// every element of its sets and maps; chains and sets stay.
    FlushTable(TableId),
    /// A `chain c { ... }` item or `add chain ...`. Its rules come as
    /// separate [`CommandKind::AddRule`] commands.
    AddChain(Chain),
    /// A `set`/`map` item or `add set`/`add map`, with its initial elements.
    AddSet(Set),
    /// A rule of a chain block, or `add rule` / `insert rule`.
    AddRule(Rule),
    /// `add element ip t s { ... }`: elements into a declared set or map.
    AddElements(Elements),
}

/// nftables families of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `ip`: NFPROTO_IPV4 (2).
    Ip,
    /// `ip6`: NFPROTO_IPV6 (10).
    Ip6,
    /// `inet`: NFPROTO_INET (1).
    Inet,
    /// `bridge`: NFPROTO_BRIDGE (7). Filter chains only; `ip`/`ip6`
    /// matches depend on the frame's ethertype (`meta protocol`).
    Bridge,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Bridge => "bridge",
        }
    }

    /// The NFPROTO_* number the kernel knows the family by.
    pub fn nfproto(self) -> u8 {
        match self {
            Family::Ip => 2,
            Family::Ip6 => 10,
            Family::Inet => 1,
            Family::Bridge => 7,
        }
    }
}

/// A table named by family and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableId {
    pub family: Family,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub id: TableId,
    /// `comment "..."` inside the table block.
    pub comment: Option<String>,
}

/// The hook a base chain attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    /// The NF_INET_* hook number.
    pub fn number(self) -> u32 {
        match self {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
}

/// `type filter|nat|route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainType {
    Filter,
    Nat,
    Route,
}

impl ChainType {
    /// The name the kernel knows the type by (NFTA_CHAIN_TYPE).
    pub fn name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
}

/// A base chain's `policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    Accept,
    Drop,
}

/// What makes a chain a base chain: `type T hook H priority P; [policy X;]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    pub chain_type: ChainType,
    pub hook: Hook,
    /// Resolved: `filter` is 0, `dstnat - 10` is -110.
    pub priority: i32,
    /// `None` when the source gave no policy (the kernel's default is accept).
    pub policy: Option<Policy>,
    /// The span of the `type` keyword.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub table: TableId,
    pub name: String,
    /// `None` for a regular chain (only reachable by jump/goto).
    pub base: Option<BaseChain>,
    /// `comment "..."` inside the chain block.
    pub comment: Option<String>,
}

/// A chain named from a rule (jump/goto targets, vmap verdicts): always in
/// the rule's own table, and checked to be declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRef {
    pub name: String,
    pub span: Span,
}

/// A named set or map used from a rule or an `add element` (`@name`): always
/// in the rule's own table, declared, and of the right key (and data) type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetRef {
    pub name: String,
    pub span: Span,
}

/// The value types of the subset. Sizes are the kernel's (NFTA_SET_KEY_LEN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `ipv4_addr`: 4 bytes, network order.
    Ipv4Addr,
    /// `ipv6_addr`: 16 bytes, network order.
    Ipv6Addr,
    /// `inet_service`: a port, 2 bytes, network order.
    InetService,
    /// `inet_proto`: an IP protocol number, 1 byte.
    InetProto,
    /// `ifname`: an interface name, 16 bytes, NUL padded.
    Ifname,
    /// `mark`: 4 bytes, host order.
    Mark,
    /// `iface_index` (`iif`/`oif`): 4 bytes, host order.
    IfaceIndex,
    /// `nf_proto` (`meta nfproto`): 1 byte.
    NfProto,
    /// `pkt_type` (`meta pkttype`): host 0, broadcast 1, multicast 2,
    /// other 3 (PACKET_*); 1 byte.
    PktType,
    /// `ct_state`: bitmask, 4 bytes, host order.
    CtState,
    /// `ct_status`: bitmask, 4 bytes, host order.
    CtStatus,
    /// `ct_dir` (`ct direction`): original 0, reply 1; 1 byte.
    CtDir,
    /// `tcp_flag`: bitmask, 1 byte.
    TcpFlag,
    /// `fib_addrtype`: an RTN_* number, 4 bytes, host order.
    FibAddrType,
    /// `verdict`: only as map data (vmaps).
    Verdict,
    /// `ether_addr`: a MAC address, 6 bytes, network order.
    EtherAddr,
    /// `ether_type`: an ethertype (`ip`, `arp`, `ip6`, `0x0806`), 2 bytes,
    /// network order.
    EtherType,
    /// `arp_op`: an ARP operation (`request`, `reply`, ...), 2 bytes,
    /// network order.
    ArpOp,
    /// A plain 1-byte number (`arp hlen`, `arp plen`).
    Integer8,
    /// A plain 2-byte number in network order (`arp htype`).
    Integer16,
    /// A plain 4-byte number in network order (`icmpv6 mtu`).
    Integer32,
    /// `icmpv6_type`: 1 byte (`echo-request` is 128).
    Icmpv6Type,
    /// `icmpv6_code`: 1 byte (`port-unreachable` is 4).
    Icmpv6Code,
    /// `igmp_type`: 1 byte (`membership-query` is 0x11).
    IgmpType,
    /// `icmp_type`: 1 byte (`echo-request` is 8).
    IcmpType,
    /// `icmp_code`: 1 byte (`port-unreachable` is 3).
    IcmpCode,
    /// `dscp` as the IPv6 header holds it: 6 bits in the 2 bytes at offset 0
    /// (shifted left by 6), so a value is 2 bytes.
    Ip6Dscp,
    /// `ecn` as the IPv6 header holds it: 2 bits of the byte at offset 1
    /// (shifted left by 4).
    Ip6Ecn,
    /// `ip6 version`: 4 bits of the first byte (shifted left by 4).
    Ip6Version,
    /// `ip6 flowlabel`: the low 20 bits of the 3 bytes at offset 1.
    Ip6Flowlabel,
}

impl DataType {
    /// The name nft gives the type in `type` declarations and messages.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Ipv4Addr => "ipv4_addr",
            DataType::Ipv6Addr => "ipv6_addr",
            DataType::InetService => "inet_service",
            DataType::InetProto => "inet_proto",
            DataType::Ifname => "ifname",
            DataType::Mark => "mark",
            DataType::IfaceIndex => "iface_index",
            DataType::NfProto => "nf_proto",
            DataType::PktType => "pkt_type",
            DataType::CtState => "ct_state",
            DataType::CtStatus => "ct_status",
            DataType::CtDir => "ct_dir",
            DataType::TcpFlag => "tcp_flag",
            DataType::FibAddrType => "fib_addrtype",
            DataType::Verdict => "verdict",
            DataType::EtherAddr => "ether_addr",
            DataType::EtherType => "ether_type",
            DataType::ArpOp => "arp_op",
            DataType::Icmpv6Type => "icmpv6_type",
            DataType::Icmpv6Code => "icmpv6_code",
            DataType::IgmpType => "igmp_type",
            DataType::IcmpType => "icmp_type",
            DataType::IcmpCode => "icmp_code",
            DataType::Ip6Dscp => "dscp",
            DataType::Ip6Ecn => "ecn",
            DataType::Integer8
            | DataType::Integer16
            | DataType::Integer32
            | DataType::Ip6Version
            | DataType::Ip6Flowlabel => "integer",
        }
    }

    /// nft's TYPE_* number (datatype.h), sent as NFTA_SET_KEY_TYPE (a
    /// concatenation is `t1 << 6 | t2 ...`, see [`concat_type_id`]).
    pub fn type_id(self) -> u32 {
        match self {
            DataType::Verdict => 1,
            DataType::NfProto => 2,
            DataType::PktType => 31,
            DataType::Ipv4Addr => 7,
            DataType::Ipv6Addr => 8,
            DataType::InetProto => 12,
            DataType::InetService => 13,
            DataType::TcpFlag => 15,
            DataType::Mark => 19,
            DataType::IfaceIndex => 20,
            DataType::CtState => 26,
            DataType::CtDir => 27,
            DataType::CtStatus => 28,
            DataType::FibAddrType => 38,
            DataType::Ifname => 41,
            DataType::Integer8
            | DataType::Integer16
            | DataType::Integer32
            | DataType::Ip6Version
            | DataType::Ip6Flowlabel => 4,
            DataType::Icmpv6Type => 29,
            DataType::Icmpv6Code => 33,
            DataType::IgmpType => 42,
            DataType::IcmpType => 14,
            DataType::IcmpCode => 32,
            DataType::Ip6Dscp => 36,
            DataType::Ip6Ecn => 37,
            DataType::EtherAddr => 9,
            DataType::EtherType => 10,
            DataType::ArpOp => 11,
        }
    }

    /// Bytes of a value in a register or set key (before 4-byte padding).
    pub fn byte_len(self) -> usize {
        match self {
            DataType::Ipv4Addr => 4,
            DataType::Ipv6Addr => 16,
            DataType::InetService => 2,
            DataType::InetProto
            | DataType::NfProto
            | DataType::PktType
            | DataType::TcpFlag
            | DataType::Integer8
            | DataType::Icmpv6Type
            | DataType::Icmpv6Code
            | DataType::IgmpType
            | DataType::IcmpType
            | DataType::IcmpCode
            | DataType::CtDir
            | DataType::Ip6Ecn
            | DataType::Ip6Version => 1,
            DataType::Ip6Flowlabel => 3,
            DataType::Ifname => 16,
            DataType::EtherAddr => 6,
            DataType::EtherType | DataType::ArpOp | DataType::Integer16 | DataType::Ip6Dscp => 2,
            DataType::Mark
            | DataType::IfaceIndex
            | DataType::CtState
            | DataType::CtStatus
            | DataType::FibAddrType
            | DataType::Verdict
            | DataType::Integer32 => 4,
        }
    }
}

/// The NFTA_SET_KEY_TYPE of a (possibly one-part) concatenation, as nft
/// computes it: each part's type id shifted in 6 bits at a time.
pub fn concat_type_id(parts: &[DataType]) -> u32 {
    parts.iter().fold(0u32, |acc, t| (acc << 6) | t.type_id())
}

/// The key length of a concatenation: every part padded to 4 bytes, as the
/// kernel lays concatenations out in registers.
pub fn concat_len(parts: &[DataType]) -> usize {
    if let [one] = parts {
        return one.byte_len();
    }
    parts.iter().map(|t| t.byte_len().div_ceil(4) * 4).sum()
}

/// An interface name as matched by `iifname`/`oifname` or stored in an
/// `ifname` set: `"eth*"` is `name: "eth", wildcard: true` and matches every
/// name starting with `eth` (compare only the prefix bytes); otherwise the
/// whole 16-byte NUL-padded name is compared. `name` is at most 15 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ifname {
    pub name: String,
    pub wildcard: bool,
}

/// One typed scalar value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scalar {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    /// inet_service: a port number (host order here).
    Service(u16),
    /// inet_proto: `tcp` is 6, `udp` 17, ...
    Proto(u8),
    Ifname(Ifname),
    /// iface_index: an interface name the compiler resolves to its index in
    /// the target namespace (nft does the same; it fails when absent).
    Iface(String),
    Mark(u32),
    /// nf_proto: `ipv4` is 2, `ipv6` 10.
    NfProto(u8),
    /// pkt_type: host 0, broadcast 1, multicast 2, other 3.
    PktType(u8),
    /// ct_state bits: invalid 1, established 2, related 4, new 8,
    /// untracked 64. A comma list (`established,related`) is their OR.
    CtState(u32),
    /// ct_status bits: expected 1, seen-reply 2, assured 4, confirmed 8,
    /// snat 16, dnat 32, dying 512. A comma list is their OR.
    CtStatus(u32),
    /// ct_dir: original 0, reply 1.
    CtDir(u8),
    /// tcp_flag bits: fin 1, syn 2, rst 4, psh 8, ack 16, urg 32, ecn 64,
    /// cwr 128. A comma or `|` list is their OR.
    TcpFlags(u8),
    /// fib_addrtype (RTN_*): unspec 0, unicast 1, local 2, broadcast 3,
    /// anycast 4, multicast 5, blackhole 6, unreachable 7, prohibit 8.
    FibAddrType(u32),
    /// ether_addr: `02:42:ac:10:00:02`.
    EtherAddr([u8; 6]),
    /// ether_type: `ip` is 0x0800, `arp` 0x0806, `ip6` 0x86dd (host order here).
    EtherType(u16),
    /// arp_op: `request` is 1, `reply` 2, ... (host order here).
    ArpOp(u16),
    /// A 1-byte integer.
    Int8(u8),
    /// A 2-byte integer (host order here).
    Int16(u16),
    /// A 4-byte integer (host order here).
    Int32(u32),
    Icmpv6Type(u8),
    Icmpv6Code(u8),
    IgmpType(u8),
    IcmpType(u8),
    IcmpCode(u8),
    /// The 6-bit DSCP value (`cs1` is 8), unshifted.
    Ip6Dscp(u8),
    /// The 2-bit ECN value (`ect0` is 2), unshifted.
    Ip6Ecn(u8),
    /// The 4-bit version, unshifted.
    Ip6Version(u8),
    /// The 20-bit flow label.
    Ip6Flowlabel(u32),
}

impl Scalar {
    pub fn data_type(&self) -> DataType {
        match self {
            Scalar::Ipv4(_) => DataType::Ipv4Addr,
            Scalar::Ipv6(_) => DataType::Ipv6Addr,
            Scalar::Service(_) => DataType::InetService,
            Scalar::Proto(_) => DataType::InetProto,
            Scalar::Ifname(_) => DataType::Ifname,
            Scalar::Iface(_) => DataType::IfaceIndex,
            Scalar::Mark(_) => DataType::Mark,
            Scalar::NfProto(_) => DataType::NfProto,
            Scalar::PktType(_) => DataType::PktType,
            Scalar::CtState(_) => DataType::CtState,
            Scalar::CtStatus(_) => DataType::CtStatus,
            Scalar::CtDir(_) => DataType::CtDir,
            Scalar::TcpFlags(_) => DataType::TcpFlag,
            Scalar::FibAddrType(_) => DataType::FibAddrType,
            Scalar::EtherAddr(_) => DataType::EtherAddr,
            Scalar::EtherType(_) => DataType::EtherType,
            Scalar::ArpOp(_) => DataType::ArpOp,
            Scalar::Int8(_) => DataType::Integer8,
            Scalar::Int16(_) => DataType::Integer16,
            Scalar::Int32(_) => DataType::Integer32,
            Scalar::Icmpv6Type(_) => DataType::Icmpv6Type,
            Scalar::Icmpv6Code(_) => DataType::Icmpv6Code,
            Scalar::IgmpType(_) => DataType::IgmpType,
            Scalar::IcmpType(_) => DataType::IcmpType,
            Scalar::IcmpCode(_) => DataType::IcmpCode,
            Scalar::Ip6Dscp(_) => DataType::Ip6Dscp,
            Scalar::Ip6Ecn(_) => DataType::Ip6Ecn,
            Scalar::Ip6Version(_) => DataType::Ip6Version,
            Scalar::Ip6Flowlabel(_) => DataType::Ip6Flowlabel,
        }
    }
}

/// A value in a match, set element key or nat target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Single(Scalar),
    /// `low-high`, both inclusive, same type, `low <= high`.
    Range(Scalar, Scalar),
    /// `addr/len` (only addresses). Host bits of `addr` are zero: the
    /// checker clears them as nft does (`10.1.2.3/8` is `10.0.0.0/8`).
    Prefix(IpAddr, u8),
}

impl Value {
    /// Whether the value spans an interval (needs an interval set): ranges,
    /// prefixes, and wildcard interface names (`"veth*"`), which nft stores
    /// as the range of every name with that prefix.
    pub fn is_interval(&self) -> bool {
        match self {
            Value::Single(Scalar::Ifname(name)) => name.wildcard,
            Value::Single(_) => false,
            Value::Range(..) | Value::Prefix(..) => true,
        }
    }

    pub fn data_type(&self) -> DataType {
        match self {
            Value::Single(s) | Value::Range(s, _) => s.data_type(),
            Value::Prefix(IpAddr::V4(_), _) => DataType::Ipv4Addr,
            Value::Prefix(IpAddr::V6(_), _) => DataType::Ipv6Addr,
        }
    }
}

/// The verdicts of rules and verdict maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Continue,
    Jump(ChainRef),
    Goto(ChainRef),
}

/// What a map's elements map to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapData {
    /// `: verdict` (a vmap).
    Verdict,
    /// `: ipv4_addr . inet_service` and the like; one type per part.
    Values(Vec<DataType>),
}

/// The data half of a map element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementData {
    Verdict(Verdict),
    /// One scalar per part of the map's data type.
    Values(Vec<Scalar>),
}

/// One element of a set or map (named or anonymous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// One value per part of the key type (one for a plain key). Ranges and
    /// prefixes only where the set has `flags interval` (anonymous sets get
    /// the flag implicitly when one element needs it).
    pub key: Vec<Value>,
    /// `Some` exactly for map elements.
    pub data: Option<ElementData>,
    /// `comment "..."` after the element.
    pub comment: Option<String>,
    pub span: Span,
}

/// Whether any element needs an interval set.
pub fn needs_interval(elements: &[Element]) -> bool {
    elements
        .iter()
        .any(|e| e.key.iter().any(Value::is_interval))
}

/// `flags ...` of a named set or map. `timeout` is also set when the set
/// gives a default `timeout` (the kernel wants the flag then; nft sets it
/// too). Anonymous sets in rules are `constant`, and `interval` exactly
/// when [`needs_interval`] says so; their overlapping and adjacent
/// intervals are already merged and duplicates dropped, as nft does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetFlags {
    pub interval: bool,
    pub constant: bool,
    pub timeout: bool,
}

/// A named set (`data` is `None`) or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub table: TableId,
    pub name: String,
    /// Key type, one entry per concatenation part.
    pub key: Vec<DataType>,
    /// `Some` for a map.
    pub data: Option<MapData>,
    pub flags: SetFlags,
    /// `timeout 30s`: default element timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `size N`.
    pub size: Option<u32>,
    /// `comment "..."` inside the set block.
    pub comment: Option<String>,
    /// `elements = { ... }`, in source order.
    pub elements: Vec<Element>,
}

impl Set {
    pub fn is_map(&self) -> bool {
        self.data.is_some()
    }
}

/// `add element FAMILY TABLE SET { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elements {
    pub table: TableId,
    pub set: SetRef,
    pub elements: Vec<Element>,
}

/// Where a rule goes in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Block rules and `add rule`: appended.
    Append,
    /// `insert rule`: prepended.
    Prepend,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub table: TableId,
    pub chain: String,
    pub placement: Placement,
    /// Matches and statements in source order.
    pub stmts: Vec<Stmt>,
    /// The trailing `comment "..."` (rule userdata).
    pub comment: Option<String>,
    /// The first token of the rule.
    pub span: Span,
}

/// What a match or map lookup reads from the packet or its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `iifname`, `meta iifname`.
    Iifname,
    /// `oifname`, `meta oifname`.
    Oifname,
    /// `iif`, `meta iif`.
    Iif,
    /// `oif`, `meta oif`.
    Oif,
    /// `meta l4proto`.
    MetaL4proto,
    /// `meta mark`, `mark`.
    MetaMark,
    /// `meta nfproto` (inet tables).
    MetaNfproto,
    /// `meta pkttype`: whom the frame was addressed to.
    MetaPkttype,
    /// `ip saddr`.
    IpSaddr,
    /// `ip daddr`.
    IpDaddr,
    /// `ip protocol`.
    IpProtocol,
    /// `ip6 saddr`.
    Ip6Saddr,
    /// `ip6 daddr`.
    Ip6Daddr,
    /// `ip6 version|dscp|ecn|flowlabel|length|nexthdr|hoplimit`: fields of
    /// the fixed IPv6 header; the first four are not whole bytes.
    Ip6Version,
    Ip6Dscp,
    Ip6Ecn,
    Ip6Flowlabel,
    Ip6Length,
    Ip6Nexthdr,
    Ip6Hoplimit,
    /// `icmpv6 type|code|checksum`.
    Icmpv6Type,
    Icmpv6Code,
    Icmpv6Checksum,
    /// `icmpv6 id|sequence` (echo messages), `icmpv6 mtu` (packet too big),
    /// `icmpv6 max-delay` (MLD queries): nft checks the message type first.
    Icmpv6Id,
    Icmpv6Sequence,
    Icmpv6Mtu,
    Icmpv6MaxDelay,
    /// `igmp type`: IPv4 only, so nft checks for IPv4 first.
    IgmpType,
    /// `icmp type|code`: IPv4 only too.
    IcmpType,
    IcmpCode,
    TcpSport,
    TcpDport,
    /// `tcp flags`.
    TcpFlags,
    UdpSport,
    UdpDport,
    /// `th sport`: transport header bytes 0-1 whatever the protocol.
    ThSport,
    /// `th dport`: transport header bytes 2-3.
    ThDport,
    CtState,
    CtStatus,
    /// `ct direction`: which way the packet goes on its connection.
    CtDirection,
    CtMark,
    /// `ct original|reply ip|ip6 saddr|daddr`: an address of the
    /// connection's tuple in one direction, whatever NAT did to the packet.
    CtAddr(CtAddr),
    /// `fib saddr|daddr [. iif|oif|mark] type`.
    Fib(Fib),
    /// `meta protocol`: the frame's ethertype (skb->protocol).
    MetaProtocol,
    /// `ether saddr`, `ether daddr`, `ether type` (bridge tables).
    EtherSaddr,
    EtherDaddr,
    EtherType,
    /// `arp htype|ptype|hlen|plen|operation` (bridge tables).
    ArpHtype,
    ArpPtype,
    ArpHlen,
    ArpPlen,
    ArpOperation,
    /// `arp saddr ip`, `arp daddr ip`, `arp saddr ether`, `arp daddr ether`.
    ArpSaddrIp,
    ArpDaddrIp,
    ArpSaddrEther,
    ArpDaddrEther,
}

impl Selector {
    /// The type of what the selector reads.
    pub fn data_type(self) -> DataType {
        match self {
            Selector::Iifname | Selector::Oifname => DataType::Ifname,
            Selector::Iif | Selector::Oif => DataType::IfaceIndex,
            Selector::MetaL4proto | Selector::IpProtocol => DataType::InetProto,
            Selector::MetaMark | Selector::CtMark => DataType::Mark,
            Selector::MetaNfproto => DataType::NfProto,
            Selector::MetaPkttype => DataType::PktType,
            Selector::IpSaddr | Selector::IpDaddr => DataType::Ipv4Addr,
            Selector::Ip6Saddr | Selector::Ip6Daddr => DataType::Ipv6Addr,
            Selector::TcpSport
            | Selector::TcpDport
            | Selector::UdpSport
            | Selector::UdpDport
            | Selector::ThSport
            | Selector::ThDport => DataType::InetService,
            Selector::TcpFlags => DataType::TcpFlag,
            Selector::CtState => DataType::CtState,
            Selector::CtStatus => DataType::CtStatus,
            Selector::CtDirection => DataType::CtDir,
            Selector::Fib(_) => DataType::FibAddrType,
            Selector::CtAddr(CtAddr { ipv6: false, .. }) => DataType::Ipv4Addr,
            Selector::CtAddr(CtAddr { ipv6: true, .. }) => DataType::Ipv6Addr,
            Selector::MetaProtocol | Selector::EtherType | Selector::ArpPtype => {
                DataType::EtherType
            }
            Selector::EtherSaddr
            | Selector::EtherDaddr
            | Selector::ArpSaddrEther
            | Selector::ArpDaddrEther => DataType::EtherAddr,
            Selector::ArpHtype => DataType::Integer16,
            Selector::ArpHlen | Selector::ArpPlen => DataType::Integer8,
            Selector::ArpOperation => DataType::ArpOp,
            Selector::ArpSaddrIp | Selector::ArpDaddrIp => DataType::Ipv4Addr,
            Selector::Ip6Version => DataType::Ip6Version,
            Selector::Ip6Dscp => DataType::Ip6Dscp,
            Selector::Ip6Ecn => DataType::Ip6Ecn,
            Selector::Ip6Flowlabel => DataType::Ip6Flowlabel,
            Selector::Ip6Length
            | Selector::Icmpv6Checksum
            | Selector::Icmpv6Id
            | Selector::Icmpv6Sequence
            | Selector::Icmpv6MaxDelay => DataType::Integer16,
            Selector::Ip6Nexthdr => DataType::InetProto,
            Selector::Ip6Hoplimit => DataType::Integer8,
            Selector::Icmpv6Type => DataType::Icmpv6Type,
            Selector::Icmpv6Code => DataType::Icmpv6Code,
            Selector::Icmpv6Mtu => DataType::Integer32,
            Selector::IgmpType => DataType::IgmpType,
            Selector::IcmpType => DataType::IcmpType,
            Selector::IcmpCode => DataType::IcmpCode,
        }
    }
}

impl Selector {
    /// The ICMPv6 types a field exists in: echo for `id` and `sequence`,
    /// packet-too-big for `mtu`, an MLD query for `max-delay`. nft checks
    /// them before the field (the first alone, or all as a set) unless the
    /// rule fixed the type already, and refuses another fixed type.
    /// Fields that are not whole bytes of their header: nft masks (and in
    /// concatenations shifts) what it loads for them.
    pub fn is_sub_byte(self) -> bool {
        matches!(
            self,
            Selector::Ip6Version | Selector::Ip6Dscp | Selector::Ip6Ecn | Selector::Ip6Flowlabel
        )
    }

    pub fn icmpv6_types_needed(self) -> Option<&'static [u8]> {
        match self {
            Selector::Icmpv6Id | Selector::Icmpv6Sequence => Some(&[128, 129]),
            Selector::Icmpv6Mtu => Some(&[2]),
            Selector::Icmpv6MaxDelay => Some(&[130]),
            _ => None,
        }
    }
}

/// Which address `ct original|reply ip|ip6 saddr|daddr` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtAddr {
    /// `reply` (true) or `original` (false).
    pub reply: bool,
    /// `ip6` (true) or `ip` (false).
    pub ipv6: bool,
    /// `saddr` (true) or `daddr` (false).
    pub saddr: bool,
}

/// `fib` lookup flags; the result is always `type` (fib_addrtype).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fib {
    /// `saddr` (true) or `daddr` (false); exactly one of the two.
    pub saddr: bool,
    /// `. iif`
    pub iif: bool,
    /// `. oif`
    pub oif: bool,
    /// `. mark`
    pub mark: bool,
}

/// The relation of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// No operator written. Equality, except for bitmask types (ct state,
    /// ct status, tcp flags) where nft means "any of these bits is set"
    /// (`(x & v) != 0`).
    Implicit,
    /// `==` / `eq`: exact equality (or set membership).
    Eq,
    /// `!=` / `ne`: inequality (or set non-membership).
    Ne,
}

/// The right-hand side of a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rhs {
    /// One value per key part: `22`, `1024-65535`, `10.0.0.0/8`,
    /// `established,related` (one bitmask), `"eth0" . 10.0.0.2`.
    Value(Vec<Value>),
    /// An anonymous set `{ ... }` (elements without data).
    Set(Vec<Element>),
    /// `@name`: a named set (not a map) of the key's type.
    Named(SetRef),
}

/// `KEY [& MASK] [OP] RHS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The selectors; more than one for a concatenation (`iifname . ip saddr`).
    pub key: Vec<Selector>,
    /// `& MASK` (`tcp flags & (syn|ack) == syn`, `meta mark & 0xff == 1`),
    /// only on one-part bitmask or mark keys; in the key's type, host order.
    pub mask: Option<u32>,
    pub op: MatchOp,
    pub rhs: Rhs,
}

/// Where a map's elements come from: `map @m` or an anonymous `map { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapSource {
    Named(SetRef),
    /// Anonymous map elements; each has `data`.
    Anonymous(Vec<Element>),
}

/// `KEY vmap { ... }` / `KEY vmap @m`: a verdict looked up by KEY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictMap {
    pub key: Vec<Selector>,
    pub map: MapSource,
}

/// The IP family a nat statement rewrites (NFTA_NAT_FAMILY). In ip and ip6
/// tables it is the table's; in inet tables it is written (`dnat ip to`) or
/// inferred from the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatFamily {
    Ipv4,
    Ipv6,
}

/// `snat`/`dnat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    Snat,
    Dnat,
}

/// `random`, `fully-random`, `persistent` after a nat statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatFlags {
    pub random: bool,
    pub fully_random: bool,
    pub persistent: bool,
}

/// A port or port range `:80`, `:8000-8080` (`min == max` for one port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

/// Where snat/dnat sends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatTarget {
    /// `to ADDR[-ADDR][:PORT[-PORT]]`; addresses match the nat family.
    Addr {
        min: IpAddr,
        max: IpAddr,
        port: Option<PortRange>,
    },
    /// `to KEY map @m` / `to KEY map { ... }`: the map's data is the address
    /// (`ipv4_addr`) or the address and port (`ipv4_addr . inet_service`),
    /// recorded in `data`.
    Map {
        key: Vec<Selector>,
        map: MapSource,
        data: Vec<DataType>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nat {
    pub kind: NatKind,
    pub family: NatFamily,
    pub target: NatTarget,
    pub flags: NatFlags,
}

/// `reject [with ...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Plain `reject`: nft's default for the family (icmp port-unreachable
    /// in ip, icmpv6 port-unreachable in ip6, icmpx port-unreachable in inet).
    Default,
    /// `with tcp reset`.
    TcpReset,
    /// `with icmp type NAME`: ICMP code (port-unreachable 3, ...).
    Icmp(u8),
    /// `with icmpv6 type NAME`: ICMPv6 code (port-unreachable 4, ...).
    Icmpv6(u8),
    /// `with icmpx type NAME`: NFT_REJECT_ICMPX_* (no-route 0,
    /// port-unreachable 1, host-unreachable 2, admin-prohibited 3).
    Icmpx(u8),
}

/// The value of `meta mark set` / `ct mark set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkValue {
    Const(u32),
    /// `... set meta mark` (for `ct mark set meta mark`).
    MetaMark,
    /// `... set ct mark` (for `meta mark set ct mark`).
    CtMark,
    /// `... set KEY map @m`: a named map to `mark`.
    Map {
        key: Vec<Selector>,
        map: MapSource,
    },
}

/// One statement of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    /// The first token of the statement.
    pub span: Span,
    pub kind: StmtKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    Match(Match),
    /// `counter [packets N bytes M]`.
    Counter {
        packets: u64,
        bytes: u64,
    },
    /// `log [prefix "..."]`.
    Log {
        prefix: Option<String>,
    },
    /// `meta mark set VALUE`.
    MetaMarkSet(MarkValue),
    /// `ct mark set VALUE`.
    CtMarkSet(MarkValue),
    Verdict(Verdict),
    VerdictMap(VerdictMap),
    Reject(Reject),
    /// `masquerade [to :PORT[-PORT]] [flags]` (nat postrouting only).
    Masquerade {
        port: Option<PortRange>,
        flags: NatFlags,
    },
    /// `redirect [to :PORT[-PORT]] [flags]` (nat prerouting/output only).
    Redirect {
        port: Option<PortRange>,
        flags: NatFlags,
    },
    Nat(Nat),
}
