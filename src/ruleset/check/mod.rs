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

use std::collections::HashMap;

use super::ast::{self, *};
use super::error::{Error, MAX_ERRORS};
use super::intervals::{self, Disjoint};
use super::suggest;
use super::symbols::{self, lookup};
use super::syntax::{self, Binding, ChainBlock, ChainItem, Expr, Name, SetBlock, SetItem};
use super::syntax::{Key, MarkSource, RuleLine, TableItem, TableName, TopItem};
use super::values::{self, Scopes};

type Result<T> = std::result::Result<T, Error>;

/// nft's limit on comments (NFTNL_UDATA_COMMENT_MAXLEN).
const MAX_COMMENT: usize = 128;
/// The kernel's limit on log prefixes, without the terminating NUL.
const MAX_LOG_PREFIX: usize = 127;
/// The kernel's register space for a concatenated key: 16 words.
const MAX_KEY_BYTES: usize = 64;

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

fn table_id(name: &TableName) -> TableId {
    TableId {
        family: name.family,
        name: name.name.text.clone(),
    }
}

fn describe_table(id: &TableId) -> String {
    format!("{} {}", id.family.name(), id.name)
}

fn proto_name(proto: u8) -> String {
    symbols::PROTOCOLS
        .iter()
        .find(|(_, p)| *p == proto)
        .map_or_else(|| proto.to_string(), |(n, _)| n.to_string())
}

fn check_comment(comment: &Name) -> Result<String> {
    // Bytes, as nft counts them (strlen), whatever the message says.
    if comment.text.len() > MAX_COMMENT {
        return Err(Error::new(
            comment.span.clone(),
            format!("comment too long, {MAX_COMMENT} characters maximum allowed"),
        ));
    }
    Ok(comment.text.clone())
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

    fn binding(&mut self, binding: &Binding) -> Result<()> {
        match binding {
            Binding::Define { name, value } => self.scopes.define(name, value),
            Binding::Redefine { name, value } => self.scopes.redefine(name, value),
            Binding::Undefine { name } => self.scopes.undefine(name),
        }
    }

    fn table(&self, name: &TableName) -> Result<&TableInfo> {
        self.tables.get(&table_id(name)).ok_or_else(|| {
            Error::new(
                name.name.span.clone(),
                format!(
                    "no such table: {} (declare it in the loaded files first)",
                    describe_table(&table_id(name))
                ),
            )
        })
    }

    fn table_mut(&mut self, id: &TableId) -> &mut TableInfo {
        self.tables.entry(id.clone()).or_default()
    }

    // ----- commands ------------------------------------------------------------

    fn top_item(&mut self, item: &TopItem) -> Result<()> {
        match item {
            TopItem::Binding(binding) => self.binding(binding),
            TopItem::FlushRuleset(span) => {
                self.tables.clear();
                self.emit(span, CommandKind::FlushRuleset);
                Ok(())
            }
            TopItem::AddTable { span, table, body } => self.table_block(span, table, body),
            TopItem::DeleteTable { span, table } => {
                let id = table_id(table);
                self.tables.remove(&id);
                self.emit(span, CommandKind::DeleteTable(id));
                Ok(())
            }
            TopItem::FlushTable { span, table } => {
                self.emit(span, CommandKind::FlushTable(table_id(table)));
                Ok(())
            }
            TopItem::AddChain { table, chain, .. } => {
                self.table(table)?;
                let id = table_id(table);
                let command = self.declare_chain(&id, chain)?;
                self.commands.push(command);
                self.chain_rules(&id, chain)
            }
            TopItem::AddSet { table, set, .. } => {
                self.table(table)?;
                self.set_block(&table_id(table), set)
            }
            TopItem::AddRule {
                table,
                chain,
                placement,
                rule,
                ..
            } => {
                self.table(table)?;
                let id = table_id(table);
                let command = self.rule(&id, chain, *placement, rule);
                self.keep_going(command)
            }
            TopItem::AddElements {
                span,
                table,
                set,
                elements,
            } => {
                self.table(table)?;
                let id = table_id(table);
                let elements = self.elements_of(&id, set, elements)?;
                self.emit(
                    span,
                    CommandKind::AddElements(Elements {
                        table: id,
                        set: SetRef {
                            name: set.text.clone(),
                            span: set.span.clone(),
                        },
                        elements,
                    }),
                );
                Ok(())
            }
        }
    }

    /// `table F N { ... }`: the table, then its chains, sets, and rules, as
    /// nft expands a block. Sets and rules are typed with the variables in
    /// force where they stand.
    fn table_block(&mut self, span: &Span, table: &TableName, body: &[TableItem]) -> Result<()> {
        let id = table_id(table);
        let mut comment = None;
        for item in body {
            if let TableItem::Comment(text) = item {
                comment = Some(check_comment(text)?);
            }
        }
        self.table_mut(&id);
        self.emit(
            span,
            CommandKind::AddTable(Table {
                id: id.clone(),
                comment,
            }),
        );
        for item in body {
            if let TableItem::Chain(chain) = item {
                let command = self.declare_chain(&id, chain)?;
                self.commands.push(command);
            }
        }
        self.scopes.push();
        let mut sets = Vec::new();
        let mut chains = Vec::new();
        for item in body {
            match item {
                TableItem::Binding(binding) => self.binding(binding)?,
                TableItem::Set(set) => sets.push((set, self.scopes.clone())),
                TableItem::Chain(chain) => chains.push((chain, self.scopes.clone())),
                TableItem::Comment(_) => {}
            }
        }
        self.scopes.pop();
        let outer = self.scopes.clone();
        for (set, scopes) in sets {
            self.scopes = scopes;
            self.set_block(&id, set)?;
        }
        for (chain, scopes) in chains {
            self.scopes = scopes;
            self.chain_rules(&id, chain)?;
        }
        self.scopes = outer;
        Ok(())
    }

    // ----- chains ----------------------------------------------------------------

    /// Registers a chain (or checks a redeclaration matches) and returns its
    /// `AddChain`.
    fn declare_chain(&mut self, id: &TableId, chain: &ChainBlock) -> Result<Command> {
        let mut hook = None;
        let mut policy = None;
        let mut comment = None;
        for item in &chain.items {
            match item {
                ChainItem::Hook(spec) => {
                    if hook.is_some() {
                        return Err(Error::new(
                            spec.span.clone(),
                            "a chain has one 'type ... hook ... priority'",
                        ));
                    }
                    hook = Some(self.hook_spec(id.family, spec)?);
                }
                ChainItem::Policy(word) => {
                    policy = Some(match word.text.as_str() {
                        "accept" => (Policy::Accept, word.span.clone()),
                        "drop" => (Policy::Drop, word.span.clone()),
                        other => {
                            return Err(Error::new(
                                word.span.clone(),
                                format!("policy must be 'accept' or 'drop', not '{other}'"),
                            ));
                        }
                    })
                }
                ChainItem::Comment(text) => comment = Some(check_comment(text)?),
                ChainItem::Binding(_) | ChainItem::Rule(_) => {}
            }
        }
        let table = self.table_mut(id);
        let existing = table.chains.get(&chain.name.text).map(|c| c.base.clone());
        let base = match (hook, existing) {
            (Some(mut base), Some(Some(old))) => {
                if (base.chain_type, base.hook, base.priority)
                    != (old.chain_type, old.hook, old.priority)
                {
                    return Err(Error::new(
                        base.span.clone(),
                        format!(
                            "chain '{}' already exists with another type, hook or priority",
                            chain.name.text
                        ),
                    ));
                }
                base.policy = policy.as_ref().map(|p| p.0);
                Some(base)
            }
            (Some(base), Some(None)) => {
                return Err(Error::new(
                    base.span.clone(),
                    format!(
                        "chain '{}' already exists as a regular chain",
                        chain.name.text
                    ),
                ));
            }
            (Some(mut base), None) => {
                base.policy = policy.as_ref().map(|p| p.0);
                Some(base)
            }
            (None, existing) => {
                let is_base = matches!(existing, Some(Some(_)));
                if let (Some((_, span)), false) = (&policy, is_base) {
                    return Err(Error::new(
                        span.clone(),
                        "a policy needs a base chain ('type ... hook ... priority')",
                    ));
                }
                None
            }
        };
        if !table.chains.contains_key(&chain.name.text) {
            table.chain_order.push(chain.name.text.clone());
            table.chains.insert(
                chain.name.text.clone(),
                ChainInfo {
                    base: base.clone(),
                    needs: Vec::new(),
                    edges: Vec::new(),
                },
            );
        }
        Ok(Command {
            span: chain.span.clone(),
            kind: CommandKind::AddChain(Chain {
                table: id.clone(),
                name: chain.name.text.clone(),
                base,
                comment,
            }),
        })
    }

    /// `type T hook H priority P`, with the combinations the kernel and nft
    /// 1.0.6 accept.
    fn hook_spec(&self, family: Family, spec: &syntax::HookSpec) -> Result<BaseChain> {
        let chain_type = match spec.chain_type.text.as_str() {
            "filter" => ChainType::Filter,
            "nat" => ChainType::Nat,
            "route" => ChainType::Route,
            other => {
                return Err(Error::new(
                    spec.chain_type.span.clone(),
                    format!("unknown chain type '{other}' (expected filter, nat or route)"),
                ));
            }
        };
        let hook = match spec.hook.text.as_str() {
            "prerouting" => Hook::Prerouting,
            "input" => Hook::Input,
            "forward" => Hook::Forward,
            "output" => Hook::Output,
            "postrouting" => Hook::Postrouting,
            other => {
                return Err(Error::new(
                    spec.hook.span.clone(),
                    format!(
                        "unknown hook '{other}' for family {} (expected prerouting, input, forward, output or postrouting)",
                        family.name()
                    ),
                ));
            }
        };
        if family == Family::Bridge && chain_type != ChainType::Filter {
            return Err(Error::new(
                spec.chain_type.span.clone(),
                format!(
                    "a {} chain is not possible in a bridge table (the bridge family has only filter chains)",
                    chain_type.name()
                ),
            ));
        }
        let supported = match chain_type {
            ChainType::Filter => true,
            ChainType::Nat => hook != Hook::Forward,
            ChainType::Route => hook == Hook::Output,
        };
        if !supported {
            return Err(Error::new(
                spec.hook.span.clone(),
                format!(
                    "a {} chain cannot use the {} hook",
                    chain_type.name(),
                    hook.name()
                ),
            ));
        }
        let priority = priority(family, hook, &spec.priority)?;
        Ok(BaseChain {
            chain_type,
            hook,
            priority,
            policy: None,
            span: spec.span.clone(),
        })
    }

    /// The rules of a chain block, in order, with the block's variables.
    fn chain_rules(&mut self, id: &TableId, chain: &ChainBlock) -> Result<()> {
        self.scopes.push();
        for item in &chain.items {
            match item {
                ChainItem::Binding(binding) => self.binding(binding)?,
                ChainItem::Rule(rule) => {
                    let command = self.rule(id, &chain.name, Placement::Append, rule);
                    self.keep_going(command)?;
                }
                ChainItem::Hook(_) | ChainItem::Policy(_) | ChainItem::Comment(_) => {}
            }
        }
        self.scopes.pop();
        Ok(())
    }

    // ----- sets and maps ---------------------------------------------------------

    fn set_block(&mut self, id: &TableId, block: &SetBlock) -> Result<()> {
        self.scopes.push();
        let result = self.set_block_scoped(id, block);
        self.scopes.pop();
        result
    }

    fn set_block_scoped(&mut self, id: &TableId, block: &SetBlock) -> Result<()> {
        let mut types: Option<(Vec<DataType>, Option<MapData>)> = None;
        let mut flags = SetFlags::default();
        let mut timeout_ms = None;
        let mut size = None;
        let mut comment = None;
        let mut element_exprs = Vec::new();
        for item in &block.items {
            match item {
                SetItem::Binding(binding) => self.binding(binding)?,
                SetItem::Type { span, key, data } => {
                    if types.is_some() {
                        return Err(Error::new(span.clone(), "the type is already given"));
                    }
                    types = Some(set_types(block, span, key, data.as_deref())?);
                }
                SetItem::Flags(names) => {
                    for flag in names {
                        match flag.text.as_str() {
                            "interval" => flags.interval = true,
                            "constant" => flags.constant = true,
                            "timeout" => flags.timeout = true,
                            other => {
                                return Err(Error::new(
                                    flag.span.clone(),
                                    format!(
                                        "set flag '{other}' is not supported (expected interval, constant or timeout)"
                                    ),
                                ));
                            }
                        }
                    }
                }
                SetItem::Timeout(text) => {
                    let ms = symbols::parse_duration(&text.text)
                        .map_err(|message| Error::new(text.span.clone(), message))?;
                    timeout_ms = Some(ms);
                    // The kernel takes a timeout only on sets with the flag;
                    // nft sets it implicitly.
                    flags.timeout = true;
                }
                SetItem::Size { span, value } => {
                    size = Some(u32::try_from(*value).map_err(|_| {
                        Error::new(span.clone(), "set size is larger than 4294967295")
                    })?);
                }
                SetItem::Comment(text) => comment = Some(check_comment(text)?),
                SetItem::Elements(expr) => {
                    if types.is_none() {
                        return Err(Error::new(
                            expr.span().clone(),
                            "give the set's type before its elements",
                        ));
                    }
                    element_exprs.push(self.scopes.expand(expr)?);
                }
            }
        }
        let Some((key, data)) = types else {
            return Err(Error::new(
                block.name.span.clone(),
                format!(
                    "{} '{}' has no type",
                    if block.is_map { "map" } else { "set" },
                    block.name.text
                ),
            ));
        };
        let table = self.table_mut(id);
        if let Some(old) = table.sets.get(&block.name.text) {
            if old.key != key || old.data != data {
                return Err(Error::new(
                    block.name.span.clone(),
                    format!("'{}' already exists with another type", block.name.text),
                ));
            }
        } else {
            table.sets.insert(
                block.name.text.clone(),
                SetInfo {
                    key: key.clone(),
                    data: data.clone(),
                    flags,
                    jumps: Vec::new(),
                    intervals: Disjoint::default(),
                },
            );
        }
        let mut elements = Vec::new();
        for expr in &element_exprs {
            elements.extend(self.typed_elements(id, &block.name, expr)?);
        }
        self.emit(
            &block.span,
            CommandKind::AddSet(ast::Set {
                table: id.clone(),
                name: block.name.text.clone(),
                key,
                data,
                flags,
                timeout_ms,
                size,
                comment,
                elements,
            }),
        );
        Ok(())
    }

    /// `add element`: the set must be declared.
    fn elements_of(&mut self, id: &TableId, set: &Name, expr: &Expr) -> Result<Vec<Element>> {
        let expr = self.scopes.expand(expr)?;
        self.typed_elements(id, set, &expr)
    }

    /// Elements for the named set `set`, checked against its types and flags.
    fn typed_elements(&mut self, id: &TableId, set: &Name, expr: &Expr) -> Result<Vec<Element>> {
        let info = self.set_info(id, set)?;
        let (key, data, interval) = (info.key.clone(), info.data.clone(), info.flags.interval);
        let Expr::Set(elems, _) = expr else {
            return Err(Error::new(
                expr.span().clone(),
                format!(
                    "expected elements {{ ... }}, got {}",
                    values::describe(expr)
                ),
            ));
        };
        let mut out = Vec::with_capacity(elems.len());
        let mut jumps = Vec::new();
        for elem in elems {
            let element = self.element(id, elem, &key, data.as_ref(), &mut jumps)?;
            if !interval && element.key.iter().any(Value::is_interval) {
                return Err(Error::new(
                    elem.span.clone(),
                    format!(
                        "'{}' needs 'flags interval' for ranges, prefixes and wildcards",
                        set.text
                    ),
                ));
            }
            out.push(element);
        }
        if let Some(info) = self.table_mut(id).sets.get_mut(&set.text) {
            info.jumps.extend(jumps);
            if interval {
                no_overlaps(&mut info.intervals, &out)?;
            }
        }
        Ok(intervals::dedupe(out))
    }

    fn set_info(&self, id: &TableId, set: &Name) -> Result<&SetInfo> {
        self.tables
            .get(id)
            .and_then(|t| t.sets.get(&set.text))
            .ok_or_else(|| {
                let hint = self.tables.get(id).map_or(String::new(), |t| {
                    suggest::did_you_mean(&set.text, t.sets.keys().map(String::as_str), "@")
                });
                Error::new(
                    set.span.clone(),
                    format!(
                        "no such set or map '{}' in table {}{hint}",
                        set.text,
                        describe_table(id)
                    ),
                )
            })
    }

    /// `; did you mean 'NAME'?` for a chain of the table near `name`.
    fn chain_hint(&self, id: &TableId, name: &str) -> String {
        self.tables.get(id).map_or(String::new(), |t| {
            suggest::did_you_mean(name, t.chain_order.iter().map(String::as_str), "")
        })
    }

    /// One element `KEY [comment] [: DATA]` of a set (no `data` type) or map.
    fn element(
        &self,
        id: &TableId,
        elem: &syntax::SetElem,
        key: &[DataType],
        data: Option<&MapData>,
        jumps: &mut Vec<String>,
    ) -> Result<Element> {
        let key_values = values::tuple(&elem.key, key)?;
        let data = match (data, &elem.data) {
            (None, None) => None,
            (None, Some(d)) => {
                return Err(Error::new(
                    d.span().clone(),
                    "a set element has no data; use a map",
                ));
            }
            (Some(_), None) => {
                return Err(Error::new(
                    elem.span.clone(),
                    "a map element needs its data: KEY : DATA",
                ));
            }
            (Some(MapData::Verdict), Some(d)) => {
                let verdict = self.verdict(id, d)?;
                if let Verdict::Jump(target) | Verdict::Goto(target) = &verdict {
                    jumps.push(target.name.clone());
                }
                Some(ElementData::Verdict(verdict))
            }
            (Some(MapData::Values(types)), Some(d)) => {
                Some(ElementData::Values(values::data_tuple(d, types)?))
            }
        };
        Ok(Element {
            key: key_values,
            data,
            comment: elem.comment.as_ref().map(check_comment).transpose()?,
            span: elem.span.clone(),
        })
    }

    /// A verdict as map data: `accept`, `drop`, `return`, `continue`,
    /// `jump NAME`, `goto NAME`.
    fn verdict(&self, id: &TableId, expr: &Expr) -> Result<Verdict> {
        match expr {
            Expr::Word(word) => match word.text.as_str() {
                "accept" => Ok(Verdict::Accept),
                "drop" => Ok(Verdict::Drop),
                "return" => Ok(Verdict::Return),
                "continue" => Ok(Verdict::Continue),
                other => Err(Error::new(
                    word.span.clone(),
                    format!("expected a verdict, got '{other}'"),
                )),
            },
            Expr::Jump { goto, target, .. } => {
                let target = self.jump_target(id, target)?;
                Ok(if *goto {
                    Verdict::Goto(target)
                } else {
                    Verdict::Jump(target)
                })
            }
            other => Err(Error::new(
                other.span().clone(),
                format!("expected a verdict, got {}", values::describe(other)),
            )),
        }
    }

    /// A jump or goto target: a declared regular chain of the same table.
    fn jump_target(&self, id: &TableId, target: &Name) -> Result<ChainRef> {
        let chain = self.tables.get(id).and_then(|t| t.chains.get(&target.text));
        match chain {
            None => Err(Error::new(
                target.span.clone(),
                format!(
                    "no such chain '{}' in table {}{}",
                    target.text,
                    describe_table(id),
                    self.chain_hint(id, &target.text)
                ),
            )),
            Some(ChainInfo { base: Some(_), .. }) => Err(Error::new(
                target.span.clone(),
                format!("cannot jump to base chain '{}'", target.text),
            )),
            Some(_) => Ok(ChainRef {
                name: target.text.clone(),
                span: target.span.clone(),
            }),
        }
    }

    // ----- rules ----------------------------------------------------------------

    fn rule(
        &mut self,
        id: &TableId,
        chain: &Name,
        placement: Placement,
        line: &RuleLine,
    ) -> Result<Command> {
        let known = self
            .tables
            .get(id)
            .is_some_and(|t| t.chains.contains_key(&chain.text));
        if !known {
            return Err(Error::new(
                chain.span.clone(),
                format!(
                    "no such chain '{}' in table {}{}",
                    chain.text,
                    describe_table(id),
                    self.chain_hint(id, &chain.text)
                ),
            ));
        }
        let mut ctx = RuleCtx {
            table: id,
            chain: &chain.text,
            l3: match id.family {
                Family::Ip => Some(L3::Ip),
                Family::Ip6 => Some(L3::Ip6),
                Family::Inet | Family::Bridge => None,
            },
            l4: Vec::new(),
            l4_matched: false,
        };
        let mut stmts = Vec::with_capacity(line.stmts.len());
        let mut terminal = false;
        for stmt in &line.stmts {
            // nft refuses what can never run (`masquerade drop`).
            if terminal {
                return Err(Error::new(
                    stmt.span.clone(),
                    "Statement after terminal statement has no effect",
                ));
            }
            terminal = is_terminal(&stmt.kind);
            let kind = self.stmt(&mut ctx, stmt)?;
            stmts.push(Stmt {
                span: stmt.span.clone(),
                kind,
            });
        }
        Ok(Command {
            span: line.span.clone(),
            kind: CommandKind::AddRule(Rule {
                table: id.clone(),
                chain: chain.text.clone(),
                placement,
                stmts,
                comment: line.comment.as_ref().map(check_comment).transpose()?,
                span: line.span.clone(),
            }),
        })
    }

    fn chain_info(&mut self, ctx: &RuleCtx) -> Option<&mut ChainInfo> {
        self.tables
            .get_mut(ctx.table)
            .and_then(|t| t.chains.get_mut(ctx.chain))
    }

    /// Records that `what` at `span` needs a nat chain (`nat`) on one of
    /// `hooks`; checked once all chains are known.
    fn need(
        &mut self,
        ctx: &RuleCtx,
        span: &Span,
        what: &'static str,
        nat: bool,
        hooks: &'static [Hook],
    ) {
        let need = Need {
            span: span.clone(),
            what,
            nat,
            hooks,
        };
        if let Some(chain) = self.chain_info(ctx) {
            chain.needs.push(need);
        }
    }

    fn edge(&mut self, ctx: &RuleCtx, edge: Edge) {
        if let Some(chain) = self.chain_info(ctx) {
            chain.edges.push(edge);
        }
    }

    fn stmt(&mut self, ctx: &mut RuleCtx, stmt: &syntax::Stmt) -> Result<StmtKind> {
        use syntax::StmtKind as S;
        if ctx.table.family == Family::Bridge {
            bridge_statement(stmt)?;
        }
        Ok(match &stmt.kind {
            S::Match {
                key,
                mask,
                op,
                op_span,
                rhs,
            } => StmtKind::Match(self.match_stmt(ctx, key, mask.as_ref(), *op, op_span, rhs)?),
            S::Counter { packets, bytes } => StmtKind::Counter {
                packets: *packets,
                bytes: *bytes,
            },
            S::Log { prefix } => StmtKind::Log {
                prefix: match prefix {
                    None => None,
                    Some(expr) => Some(self.log_prefix(expr)?),
                },
            },
            S::MarkSet { ct, value } => {
                let value = match value {
                    MarkSource::MetaMark => MarkValue::MetaMark,
                    MarkSource::CtMark => MarkValue::CtMark,
                    MarkSource::Value(expr) => {
                        let expr = self.scopes.expand(expr)?;
                        match values::scalar(&expr, DataType::Mark)? {
                            Scalar::Mark(m) => MarkValue::Const(m),
                            _ => unreachable_mark(&expr)?,
                        }
                    }
                };
                if *ct {
                    StmtKind::CtMarkSet(value)
                } else {
                    StmtKind::MetaMarkSet(value)
                }
            }
            S::Verdict(word) => {
                StmtKind::Verdict(self.verdict(ctx.table, &Expr::Word(word.clone()))?)
            }
            S::Jump { goto, target } => {
                let target = self.jump_target(ctx.table, target)?;
                self.edge(ctx, Edge::Chain(target.name.clone()));
                StmtKind::Verdict(if *goto {
                    Verdict::Goto(target)
                } else {
                    Verdict::Jump(target)
                })
            }
            S::Vmap { key, map } => StmtKind::VerdictMap(self.vmap(ctx, key, map)?),
            S::Reject { with, code } => StmtKind::Reject(reject(ctx.table.family, with, code)?),
            S::Masquerade { port, flags } => {
                self.need(ctx, &stmt.span, "masquerade", true, &[Hook::Postrouting]);
                StmtKind::Masquerade {
                    port: self.nat_port(ctx, port.as_ref())?,
                    flags: nat_flags(flags),
                }
            }
            S::Redirect { port, flags } => {
                let hooks = &[Hook::Prerouting, Hook::Output];
                self.need(ctx, &stmt.span, "redirect", true, hooks);
                StmtKind::Redirect {
                    port: self.nat_port(ctx, port.as_ref())?,
                    flags: nat_flags(flags),
                }
            }
            S::Nat {
                dnat,
                family,
                target,
                flags,
            } => StmtKind::Nat(self.nat(ctx, &stmt.span, *dnat, family.as_ref(), target, flags)?),
        })
    }

    fn log_prefix(&self, expr: &Expr) -> Result<String> {
        match self.scopes.expand(expr)? {
            Expr::Str(text) if text.text.len() > MAX_LOG_PREFIX => Err(Error::new(
                text.span,
                format!("log prefix is longer than {MAX_LOG_PREFIX} bytes"),
            )),
            Expr::Str(text) => Ok(text.text),
            other => Err(Error::new(
                other.span().clone(),
                format!(
                    "expected a quoted log prefix, got {}",
                    values::describe(&other)
                ),
            )),
        }
    }

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
            S::Ip6Saddr | S::Ip6Daddr => match ctx.l3 {
                Some(other @ (L3::Ip | L3::Arp)) => return Err(conflict(l3_name(other), "ip6")),
                _ => ctx.l3 = Some(L3::Ip6),
            },
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
    fn key_types(&mut self, ctx: &mut RuleCtx, key: &[Key]) -> Result<Vec<DataType>> {
        for k in key {
            self.selector_context(ctx, k)?;
        }
        Ok(key.iter().map(|k| k.selector.data_type()).collect())
    }

    /// `KEY [& MASK] [OP] RHS`
    fn match_stmt(
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
                    selector: Selector::MetaL4proto | Selector::IpProtocol,
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
                let info = self.set_info(ctx.table, name)?;
                if info.data.is_some() {
                    return Err(Error::new(
                        name.span.clone(),
                        format!("@{} is a map: use it with 'vmap' or 'map'", name.text),
                    ));
                }
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
    fn vmap(&mut self, ctx: &mut RuleCtx, key: &[Key], map: &Expr) -> Result<VerdictMap> {
        let types = self.key_types(ctx, key)?;
        let map = match self.scopes.expand(map)? {
            Expr::Set(elems, _) => {
                let mut elements = Vec::with_capacity(elems.len());
                let mut jumps = Vec::new();
                for elem in &elems {
                    elements.push(self.element(
                        ctx.table,
                        elem,
                        &types,
                        Some(&MapData::Verdict),
                        &mut jumps,
                    )?);
                }
                for jump in jumps {
                    self.edge(ctx, Edge::Chain(jump));
                }
                no_overlaps(&mut Disjoint::default(), &elements)?;
                MapSource::Anonymous(elements)
            }
            Expr::SetRef(name) => {
                let info = self.set_info(ctx.table, &name)?;
                if info.data != Some(MapData::Verdict) {
                    return Err(Error::new(
                        name.span.clone(),
                        format!("@{} is not a verdict map (type ... : verdict)", name.text),
                    ));
                }
                check_key_types(&name, &info.key, &types)?;
                self.edge(ctx, Edge::Vmap(name.text.clone()));
                MapSource::Named(SetRef {
                    name: name.text,
                    span: name.span,
                })
            }
            other => return Err(not_a_map(&other)),
        };
        Ok(VerdictMap {
            key: key.iter().map(|k| k.selector).collect(),
            map,
        })
    }

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

    fn nat(
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
                return Err(Error::new(
                    name.span.clone(),
                    format!(
                        "{} is not possible in an {} table",
                        name.text,
                        ctx.table.family.name()
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
                let mut elements = Vec::with_capacity(elems.len());
                for elem in &elems {
                    elements.push(self.element(
                        ctx.table,
                        elem,
                        &types,
                        Some(&map_data),
                        &mut Vec::new(),
                    )?);
                }
                no_overlaps(&mut Disjoint::default(), &elements)?;
                (MapSource::Anonymous(elements), data)
            }
            Expr::SetRef(name) => {
                let info = self.set_info(ctx.table, &name)?;
                let data = match &info.data {
                    Some(MapData::Values(d)) if *d == [addr_type] || *d == with_port => d.clone(),
                    _ => {
                        return Err(Error::new(
                            name.span.clone(),
                            format!(
                                "@{} must map to {} or {}",
                                name.text,
                                addr_type.name(),
                                values::type_names(&with_port)
                            ),
                        ));
                    }
                };
                check_key_types(&name, &info.key, &types)?;
                (
                    MapSource::Named(SetRef {
                        name: name.text,
                        span: name.span,
                    }),
                    data,
                )
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

    // ----- chain types and hooks, across jumps --------------------------------

    /// Like the kernel at commit: every statement that needs a nat chain or
    /// certain hooks must get them in every base chain that reaches it,
    /// directly or through jumps, gotos and verdict maps.
    fn validate_hooks(&self) -> Result<()> {
        let mut ids: Vec<&TableId> = self.tables.keys().collect();
        ids.sort_by(|a, b| (a.family.name(), &a.name).cmp(&(b.family.name(), &b.name)));
        for id in ids {
            let table = &self.tables[id];
            for name in &table.chain_order {
                let Some(base) = table.chains.get(name).and_then(|c| c.base.as_ref()) else {
                    continue;
                };
                for (chain, need) in reachable_needs(table, name) {
                    let type_ok = !need.nat || base.chain_type == ChainType::Nat;
                    if type_ok && need.hooks.contains(&base.hook) {
                        continue;
                    }
                    return Err(hook_error(need, chain, name, base));
                }
            }
        }
        Ok(())
    }
}

/// The needs of every chain reachable from `start`, with the chain they are in.
/// Statements nft 1.0.6 marks terminal (STMT_F_TERMINAL): verdicts but
/// `continue`, `reject` and the nat statements. A verdict map is not.
fn is_terminal(stmt: &syntax::StmtKind) -> bool {
    use syntax::StmtKind as S;
    match stmt {
        S::Verdict(name) => name.text != "continue",
        S::Jump { .. }
        | S::Reject { .. }
        | S::Masquerade { .. }
        | S::Redirect { .. }
        | S::Nat { .. } => true,
        _ => false,
    }
}

fn reachable_needs<'t>(table: &'t TableInfo, start: &'t str) -> Vec<(&'t str, &'t Need)> {
    let mut seen: Vec<&str> = vec![start];
    let mut todo: Vec<&str> = vec![start];
    let mut out = Vec::new();
    while let Some(name) = todo.pop() {
        let Some(chain) = table.chains.get(name) else {
            continue;
        };
        out.extend(chain.needs.iter().map(|need| (name, need)));
        for edge in &chain.edges {
            let targets: Vec<&str> = match edge {
                Edge::Chain(target) => vec![target.as_str()],
                Edge::Vmap(map) => table
                    .sets
                    .get(map)
                    .map(|s| s.jumps.iter().map(String::as_str).collect())
                    .unwrap_or_default(),
            };
            for target in targets {
                if !seen.contains(&target) {
                    seen.push(target);
                    todo.push(target);
                }
            }
        }
    }
    out
}

fn hook_error(need: &Need, chain: &str, base_name: &str, base: &BaseChain) -> Error {
    let hooks = need
        .hooks
        .iter()
        .map(|h| h.name())
        .collect::<Vec<_>>()
        .join(" or ");
    let wanted = if need.nat {
        format!("a nat chain on the {hooks} hook")
    } else {
        format!("the {hooks} hook")
    };
    let found = if chain == base_name {
        format!(
            "'{chain}' is a {} chain on the {} hook",
            base.chain_type.name(),
            base.hook.name()
        )
    } else {
        format!(
            "chain '{chain}' is reached from '{base_name}', a {} chain on the {} hook",
            base.chain_type.name(),
            base.hook.name()
        )
    };
    Error::new(
        need.span.clone(),
        format!("{} is only valid in {wanted}, but {found}", need.what),
    )
}

/// Statements the bridge family does not have: NAT (nft refuses it), and
/// reject, which needs the kernel's nft_reject_bridge (this loader's
/// reference kernel lacks it, so its bytecode could not be verified).
fn bridge_statement(stmt: &syntax::Stmt) -> Result<()> {
    use syntax::StmtKind as S;
    let what = match &stmt.kind {
        S::Masquerade { .. } => "masquerade",
        S::Redirect { .. } => "redirect",
        S::Nat { dnat: true, .. } => "dnat",
        S::Nat { dnat: false, .. } => "snat",
        S::Reject { .. } => {
            return Err(Error::new(
                stmt.span.clone(),
                "reject in a bridge table is not supported by this loader",
            ));
        }
        _ => return Ok(()),
    };
    Err(Error::new(
        stmt.span.clone(),
        format!("{what} is not possible in a bridge table: NAT is only supported for IPv4/IPv6"),
    ))
}

/// Adds the elements' intervals to `set`, refusing overlaps as nft does.
fn no_overlaps(set: &mut Disjoint, elements: &[Element]) -> Result<()> {
    for element in elements {
        if let Some((low, high)) = intervals::bounds(&element.key) {
            if !set.insert(low, high) {
                return Err(Error::new(
                    element.span.clone(),
                    "conflicting intervals specified",
                ));
            }
        }
    }
    Ok(())
}

/// The types of the named set `name` must be those of the key.
fn check_key_types(name: &Name, set_key: &[DataType], key: &[DataType]) -> Result<()> {
    if set_key == key {
        return Ok(());
    }
    Err(Error::new(
        name.span.clone(),
        format!(
            "@{} has type {}, but the key is {}",
            name.text,
            values::type_names(set_key),
            values::type_names(key)
        ),
    ))
}

fn not_a_map(expr: &Expr) -> Error {
    Error::new(
        expr.span().clone(),
        format!(
            "expected a map {{ ... }} or @name, got {}",
            values::describe(expr)
        ),
    )
}

fn ip_of(scalar: &Scalar) -> Option<std::net::IpAddr> {
    match scalar {
        Scalar::Ipv4(a) => Some((*a).into()),
        Scalar::Ipv6(a) => Some((*a).into()),
        _ => None,
    }
}

fn unreachable_mark<T>(expr: &Expr) -> Result<T> {
    Err(Error::new(
        expr.span().clone(),
        format!("expected a mark, got {}", values::describe(expr)),
    ))
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

/// `reject [with ...]`: which codes exist in which family.
fn reject(family: Family, with: &Option<Name>, code: &Option<Name>) -> Result<Reject> {
    let (Some(with), code) = (with, code) else {
        return Ok(Reject::Default);
    };
    type Codes = &'static [(&'static str, u8)];
    let (table, allowed, make): (Codes, bool, fn(u8) -> Reject) = match with.text.as_str() {
        "tcp" => return Ok(Reject::TcpReset),
        "icmp" => (symbols::ICMP_CODES, family != Family::Ip6, Reject::Icmp),
        "icmpv6" => (symbols::ICMPV6_CODES, family != Family::Ip, Reject::Icmpv6),
        _ => (symbols::ICMPX_CODES, family == Family::Inet, Reject::Icmpx),
    };
    if !allowed {
        return Err(Error::new(
            with.span.clone(),
            format!(
                "reject with {} is not possible in an {} table",
                with.text,
                family.name()
            ),
        ));
    }
    let Some(code) = code else {
        return Err(Error::new(with.span.clone(), "missing icmp code"));
    };
    lookup(table, &code.text).map(make).ok_or_else(|| {
        Error::new(
            code.span.clone(),
            format!(
                "unknown {} code '{}' (expected one of: {})",
                with.text,
                code.text,
                symbols::names(table)
            ),
        )
    })
}

/// Set and map types from their names.
fn set_types(
    block: &SetBlock,
    span: &Span,
    key: &[Name],
    data: Option<&[Name]>,
) -> Result<(Vec<DataType>, Option<MapData>)> {
    let key = key.iter().map(set_type).collect::<Result<Vec<_>>>()?;
    if ast::concat_len(&key) > MAX_KEY_BYTES {
        return Err(Error::new(
            span.clone(),
            format!("a key may hold at most {MAX_KEY_BYTES} bytes"),
        ));
    }
    let data = match (block.is_map, data) {
        (false, None) => None,
        (false, Some(_)) => {
            return Err(Error::new(
                span.clone(),
                "a set has no data type; use a map",
            ));
        }
        (true, None) => {
            return Err(Error::new(
                span.clone(),
                "a map needs a data type: type KEY : DATA",
            ));
        }
        (true, Some([verdict])) if verdict.text == "verdict" => Some(MapData::Verdict),
        (true, Some(names)) => {
            let types = names.iter().map(set_type).collect::<Result<Vec<_>>>()?;
            if ast::concat_len(&types) > MAX_KEY_BYTES {
                return Err(Error::new(
                    span.clone(),
                    format!("map data may hold at most {MAX_KEY_BYTES} bytes"),
                ));
            }
            Some(MapData::Values(types))
        }
    };
    Ok((key, data))
}

fn set_type(name: &Name) -> Result<DataType> {
    Ok(match name.text.as_str() {
        "ipv4_addr" => DataType::Ipv4Addr,
        "ipv6_addr" => DataType::Ipv6Addr,
        "inet_service" => DataType::InetService,
        "inet_proto" => DataType::InetProto,
        "ifname" => DataType::Ifname,
        "mark" => DataType::Mark,
        "ether_addr" => DataType::EtherAddr,
        "ether_type" => DataType::EtherType,
        "arp_op" => DataType::ArpOp,
        "verdict" => {
            return Err(Error::new(
                name.span.clone(),
                "verdict is only a map's whole data type: type KEY : verdict",
            ));
        }
        other => {
            return Err(Error::new(
                name.span.clone(),
                format!(
                    "type '{other}' is not supported (expected ipv4_addr, ipv6_addr, inet_service, inet_proto, ifname, mark, ether_addr, ether_type or arp_op)"
                ),
            ));
        }
    })
}

/// nft's priority keywords of a family: name, value, and the one hook nft
/// 1.0.6 takes it on (`None`: every hook).
type PriorityKeywords = &'static [(&'static str, i64, Option<Hook>)];

/// ip, ip6 and inet (nft's `std_prios`).
const IP_PRIORITIES: PriorityKeywords = &[
    ("raw", -300, None),
    ("mangle", -150, None),
    ("dstnat", -100, Some(Hook::Prerouting)),
    ("filter", 0, None),
    ("security", 50, None),
    ("srcnat", 100, Some(Hook::Postrouting)),
];

/// bridge (nft's `bridge_std_prios`, the kernel's NF_BR_PRI_*).
const BRIDGE_PRIORITIES: PriorityKeywords = &[
    ("dstnat", -300, Some(Hook::Prerouting)),
    ("filter", -200, None),
    ("out", 100, Some(Hook::Output)),
    ("srcnat", 300, Some(Hook::Postrouting)),
];

/// A chain priority as a number: the family's keyword (see
/// [`IP_PRIORITIES`], [`BRIDGE_PRIORITIES`]) plus an offset, or a number.
/// nft 1.0.6 takes `dstnat` only on prerouting, `srcnat` only on
/// postrouting and the bridge's `out` only on output.
fn priority(family: Family, hook: Hook, spec: &syntax::Priority) -> Result<i32> {
    let keywords = match family {
        Family::Bridge => BRIDGE_PRIORITIES,
        Family::Ip | Family::Ip6 | Family::Inet => IP_PRIORITIES,
    };
    let base: i64 = match &spec.base {
        syntax::PriorityBase::Number(n) => *n,
        syntax::PriorityBase::Keyword(word) => {
            let Some(&(_, value, only)) = keywords.iter().find(|(name, ..)| *name == word.text)
            else {
                let names: Vec<&str> = keywords.iter().map(|(name, ..)| *name).collect();
                return Err(Error::new(
                    word.span.clone(),
                    format!(
                        "unknown priority '{}' in the {} family (expected a number or {})",
                        word.text,
                        family.name(),
                        names.join(", ")
                    ),
                ));
            };
            if only.is_some_and(|only| only != hook) {
                return Err(Error::new(
                    spec.span.clone(),
                    format!(
                        "'{}' is an invalid priority on the {} hook; write its number ({value})",
                        word.text,
                        hook.name()
                    ),
                ));
            }
            value
        }
    };
    base.checked_add(spec.offset)
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| Error::new(spec.span.clone(), "priority out of range"))
}
