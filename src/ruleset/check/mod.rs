//! The parse tree to the checked [`ast::Ruleset`]: variables expanded,
//! values typed, tables, chains and sets resolved, and the chain type and
//! hook every statement needs verified the way the kernel will.
//!
//! The checker knows only what the loaded files declare: a rule, set or
//! element must name a table and chain or set declared earlier in them
//! (`delete table` and `flush table` may name any table: the kernel
//! decides). Table blocks expand like nft expands them: the table, then its
//! chains, then its sets and maps, then every chain's rules, so a rule may
//! use a set declared below it in the same block.
//!
//! The parts, one `impl Checker` each, by concern:
//!
//! - `declarations.rs`: `define`s, tables, chains, comments;
//! - `sets.rs`: set and map types, their elements and overlaps;
//! - `statements.rs`: a rule, its verdicts, jumps, log, reject;
//! - `matches.rs`: selectors, their protocol context, values, vmaps;
//! - `nat.rs`: `snat`, `dnat`, `masquerade`, `redirect` and their maps;
//! - `hooks.rs`: base chains (hook, priority), and what statements need of
//!   the chains that reach them.

use std::collections::HashMap;

use super::ast::{self, *};
use super::error::{Error, MAX_ERRORS};
use super::intervals::{self, Disjoint};
use super::suggest;
use super::symbols::{self, lookup};
use super::syntax::{self, Binding, ChainBlock, ChainItem, Expr, Name, SetBlock, SetItem};
use super::syntax::{Key, MarkSource, RuleLine, TableItem, TableName, TopItem};
use super::values::{self, Scopes};

mod declarations;
mod hooks;
mod matches;
mod nat;
mod sets;
mod statements;

type Result<T> = std::result::Result<T, Error>;

/// Checks a parsed source and returns the commands of its transaction.
pub fn check(source: &syntax::Source) -> Result<Ruleset> {
    let mut checker = Checker {
        scopes: Scopes::new(),
        tables: HashMap::new(),
        commands: Vec::new(),
        errors: Vec::new(),
    };
    let mut result = source
        .items
        .iter()
        .try_for_each(|item| checker.top_item(item));
    if result.is_ok() && checker.errors.is_empty() {
        result = checker.validate_hooks();
    }
    match Error::many(checker.errors.into_iter().chain(result.err())) {
        Some(err) => Err(err),
        None => Ok(Ruleset {
            commands: checker.commands,
        }),
    }
}

/// What the checker knows of a declared table.
#[derive(Default)]
struct TableInfo {
    chains: HashMap<String, ChainInfo>,
    /// Chain names in declaration order, so errors come out deterministically.
    chain_order: Vec<String>,
    sets: HashMap<String, SetInfo>,
}

struct ChainInfo {
    base: Option<BaseChain>,
    /// Where statements of this chain need a chain type or hook.
    needs: Vec<Need>,
    /// Chains this one jumps or goes to, directly or through a named vmap.
    edges: Vec<Edge>,
}

enum Edge {
    Chain(String),
    /// `vmap @m`: every chain m's elements jump to.
    Vmap(String),
}

/// A statement that only works in some chains: nat statements need a nat
/// chain on certain hooks; fib lookups with iif/oif need certain hooks.
struct Need {
    span: Span,
    what: &'static str,
    nat: bool,
    hooks: &'static [Hook],
}

struct SetInfo {
    key: Vec<DataType>,
    data: Option<MapData>,
    flags: SetFlags,
    /// Chains the map's verdict elements jump to.
    jumps: Vec<String>,
    /// The intervals of a one-part interval set so far, to refuse overlaps.
    intervals: Disjoint,
}

/// The protocol context of a rule, as nft tracks it: a rule cannot match
/// both ip and ip6, or both tcp and udp, and a nat port needs a transport
/// protocol.
#[derive(Clone, Copy, PartialEq, Eq)]
enum L3 {
    Ip,
    Ip6,
    Arp,
}

struct RuleCtx<'a> {
    table: &'a TableId,
    chain: &'a str,
    l3: Option<L3>,
    /// The transport protocols established so far, in order, as nft's
    /// protocol context keeps them: a `tcp`/`udp` match adds its protocol,
    /// and so does an equality match on `meta l4proto` or `ip protocol`
    /// (each element of a set). Such a match is never refused itself (`tcp
    /// flags syn ip protocol udp` is fine in nft); only a later `tcp`/`udp`
    /// match must find the list empty or holding just its own protocol.
    l4: Vec<u8>,
    /// A transport protocol match that adds nothing to `l4` (a range or a
    /// named set of protocols) still lets a nat statement map ports.
    l4_matched: bool,
    /// The ICMPv6 type an earlier equality match fixed: `icmpv6 id` needs an
    /// echo type, `icmpv6 mtu` packet-too-big, as nft checks.
    icmpv6_type: Option<u8>,
}

impl RuleCtx<'_> {
    /// Whether the rule has matched a transport protocol so far.
    fn has_l4(&self) -> bool {
        self.l4_matched || !self.l4.is_empty()
    }

    fn learn_l4(&mut self, proto: u8) {
        if !self.l4.contains(&proto) {
            self.l4.push(proto);
        }
    }
}

fn proto_name(proto: u8) -> String {
    symbols::PROTOCOLS
        .iter()
        .find(|(_, p)| *p == proto)
        .map_or_else(|| proto.to_string(), |(n, _)| n.to_string())
}

struct Checker {
    scopes: Scopes,
    tables: HashMap<TableId, TableInfo>,
    commands: Vec<Command>,
    /// Errors of rules checked so far: a bad rule is reported and the
    /// check goes on with the next, so one run finds them all.
    errors: Vec<Error>,
}

impl Checker {
    /// Adds a checked rule, or keeps its error and goes on (until
    /// [`MAX_ERRORS`], where the check stops).
    fn keep_going(&mut self, command: Result<Command>) -> Result<()> {
        match command {
            Ok(command) => self.commands.push(command),
            Err(err) if self.errors.len() + 1 < MAX_ERRORS => self.errors.push(err),
            Err(mut err) => {
                err.truncated = true;
                return Err(err);
            }
        }
        Ok(())
    }

    fn emit(&mut self, span: &Span, kind: CommandKind) {
        self.commands.push(Command {
            span: span.clone(),
            kind,
        });
    }
}
