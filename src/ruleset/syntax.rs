//! The parse tree: the source's shape, with `include`s already inlined, but
//! with variables, names and values not yet checked or typed. `check` turns
//! it into the [`super::ast`] the compiler reads.
//!
//! Selectors (`ip saddr`, `ct state`, ...) are recognised by the parser
//! already, so they use the AST's [`Selector`]; values stay [`Expr`]s because
//! their type depends on what they meet (`22` is a port after `tcp dport`
//! and a mark after `meta mark`).

use super::ast::{Family, MatchOp, Placement, Selector, Span};

/// A name or keyword as written, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub text: String,
    pub span: Span,
}

/// A parsed file, with the items of the files it includes in their place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    pub items: Vec<TopItem>,
}

/// `define`, `redefine` and `undefine`, allowed at the top and in blocks.
/// A variable lives until the end of the block that defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    Define { name: Name, value: Expr },
    Redefine { name: Name, value: Expr },
    Undefine { name: Name },
}

/// A table named in a command: `ip t`, or just `t` (family ip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub family: Family,
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopItem {
    Binding(Binding),
    /// `flush ruleset`
    FlushRuleset(Span),
    /// `table ip t { ... }`, `add table ip t`: `body` is empty without braces.
    AddTable {
        span: Span,
        table: TableName,
        body: Vec<TableItem>,
    },
    /// `delete table ip t`
    DeleteTable {
        span: Span,
        table: TableName,
    },
    /// `flush table ip t`
    FlushTable {
        span: Span,
        table: TableName,
    },
    /// `add chain ip t c [{ ... }]`
    AddChain {
        span: Span,
        table: TableName,
        chain: ChainBlock,
    },
    /// `add set ip t s { ... }`, `add map ...`
    AddSet {
        span: Span,
        table: TableName,
        set: SetBlock,
    },
    /// `add rule ip t c ...`, `insert rule ip t c ...`
    AddRule {
        span: Span,
        table: TableName,
        chain: Name,
        placement: Placement,
        rule: RuleLine,
    },
    /// `add element ip t s { ... }`
    AddElements {
        span: Span,
        table: TableName,
        set: Name,
        elements: Expr,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableItem {
    Binding(Binding),
    Chain(ChainBlock),
    Set(SetBlock),
    Comment(Name),
}

/// `chain NAME { ... }` (or the name and block of `add chain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBlock {
    /// The `chain` keyword (or `add` of `add chain`).
    pub span: Span,
    pub name: Name,
    pub items: Vec<ChainItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainItem {
    Binding(Binding),
    /// `type T hook H priority P`
    Hook(HookSpec),
    /// `policy accept|drop`
    Policy(Name),
    Comment(Name),
    Rule(RuleLine),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    /// The `type` keyword.
    pub span: Span,
    pub chain_type: Name,
    pub hook: Name,
    pub priority: Priority,
}

/// `priority -100`, `priority dstnat`, `priority srcnat + 10`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priority {
    /// From the first token after `priority`.
    pub span: Span,
    pub base: PriorityBase,
    pub offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriorityBase {
    Number(i64),
    Keyword(Name),
}

/// `set NAME { ... }` or `map NAME { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetBlock {
    pub span: Span,
    pub is_map: bool,
    pub name: Name,
    pub items: Vec<SetItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetItem {
    Binding(Binding),
    /// `type K1 . K2 [: D1 . D2]`
    Type {
        span: Span,
        key: Vec<Name>,
        data: Option<Vec<Name>>,
    },
    /// `flags interval, constant`
    Flags(Vec<Name>),
    /// `timeout 30s`
    Timeout(Name),
    /// `size 1024`
    Size {
        span: Span,
        value: u64,
    },
    Comment(Name),
    /// `elements = { ... }`
    Elements(Expr),
}

/// One rule: statements, then an optional `comment "..."`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLine {
    pub span: Span,
    pub stmts: Vec<Stmt>,
    pub comment: Option<Name>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub span: Span,
    pub kind: StmtKind,
}

/// A selector as written: `ip saddr` starting at `span`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub selector: Selector,
    pub span: Span,
}

/// The value of `meta mark set` / `ct mark set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkSource {
    MetaMark,
    CtMark,
    Value(Expr),
    /// `KEY map MAP`: the mark a map gives the key.
    Map {
        key: Vec<Key>,
        map: Expr,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    /// `KEY [& MASK] [OP] RHS`
    Match {
        key: Vec<Key>,
        mask: Option<Expr>,
        op: MatchOp,
        op_span: Span,
        rhs: Expr,
    },
    /// `counter [packets N bytes M]`
    Counter { packets: u64, bytes: u64 },
    /// `log [prefix P]`
    Log { prefix: Option<Expr> },
    /// `meta mark set V` (`ct` false) / `ct mark set V` (`ct` true)
    MarkSet { ct: bool, value: MarkSource },
    /// `accept`, `drop`, `return`, `continue`: the keyword.
    Verdict(Name),
    /// `jump NAME` (`goto` false), `goto NAME` (`goto` true)
    Jump { goto: bool, target: Name },
    /// `KEY vmap MAP`
    Vmap { key: Vec<Key>, map: Expr },
    /// `reject [with tcp reset | with icmp|icmpv6|icmpx [type] CODE]`
    Reject {
        /// `tcp`, `icmp`, `icmpv6` or `icmpx` after `with`.
        with: Option<Name>,
        /// The code name after `icmp [type]`.
        code: Option<Name>,
    },
    /// `masquerade [to :PORT] [FLAGS]`
    Masquerade {
        port: Option<Expr>,
        flags: Vec<Name>,
    },
    /// `redirect [to [:]PORT] [FLAGS]`
    Redirect {
        port: Option<Expr>,
        flags: Vec<Name>,
    },
    /// `snat|dnat [ip|ip6] to TARGET [FLAGS]`
    Nat {
        dnat: bool,
        family: Option<Name>,
        target: NatTarget,
        flags: Vec<Name>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatTarget {
    /// `ADDR[-ADDR][:PORT[-PORT]]`, `[ADDR6]:PORT`. The address may be
    /// missing (`to :80`), which the checker refuses for snat/dnat.
    Addr {
        addr: Option<Expr>,
        port: Option<Expr>,
    },
    /// `KEY map MAP`
    Map { key: Vec<Key>, map: Expr },
}

/// A value before typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A bare word: `established`, `ssh`, `eth0`, `accept`.
    Word(Name),
    /// `"..."`
    Str(Name),
    /// Digits and letters, like `30s`.
    NumWord(Name),
    Number(u64, Span),
    Ipv4(std::net::Ipv4Addr, Span),
    Ipv6(std::net::Ipv6Addr, Span),
    /// `02:42:ac:10:00:02`
    EtherAddr([u8; 6], Span),
    /// `$name`
    Var(Name),
    /// `@name`
    SetRef(Name),
    /// `jump NAME` / `goto NAME` as map data.
    Jump {
        goto: bool,
        target: Name,
        span: Span,
    },
    /// `ADDR/LEN`
    Prefix(Box<Expr>, u64, Span),
    /// `LOW-HIGH`
    Range(Box<Expr>, Box<Expr>, Span),
    /// `A . B . C`
    Concat(Vec<Expr>, Span),
    /// `a,b,c` or `a|b|c`: flag lists.
    List(Vec<Expr>, Span),
    /// `{ ... }`
    Set(Vec<SetElem>, Span),
}

impl Expr {
    pub fn span(&self) -> &Span {
        match self {
            Expr::Word(n) | Expr::Str(n) | Expr::NumWord(n) | Expr::Var(n) | Expr::SetRef(n) => {
                &n.span
            }
            Expr::Number(_, s)
            | Expr::Ipv4(_, s)
            | Expr::Ipv6(_, s)
            | Expr::EtherAddr(_, s)
            | Expr::Jump { span: s, .. }
            | Expr::Prefix(_, _, s)
            | Expr::Range(_, _, s)
            | Expr::Concat(_, s)
            | Expr::List(_, s)
            | Expr::Set(_, s) => s,
        }
    }
}

/// One element of a `{ ... }`: `KEY [comment "..."] [: DATA]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetElem {
    pub span: Span,
    pub key: Expr,
    pub comment: Option<Name>,
    pub data: Option<Expr>,
}
