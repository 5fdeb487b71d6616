//! The checked ruleset to one nftables batch, encoded the way nft 1.0.6
//! encodes it, so that the kernel holds (and `nft list ruleset` prints)
//! exactly what `nft -f` of the same file gives.
//!
//! Every batch item remembers the source span it came from, so a kernel
//! refusal can be reported as `FILE:LINE:COL: message`.
//!
//! What nft decides from the kernel's current state (its cache) is decided
//! here from the files alone: interval elements added to a set are not
//! merged with elements the kernel already holds.

mod elements;
mod rule;
mod types;

use std::collections::HashMap;
use std::ffi::CString;

use crate::nftables::{self as nft, Batch, DATA_VERDICT, Mode, Udata, set_flags};

use super::ast::{
    self, Command, CommandKind, DataType, MapData, Ruleset, Span, TableId, concat_len,
    concat_type_id,
};
use super::error::Error;
use elements::Shape;
use types::{BYTEORDER_INVALID, type_byteorder};

// Set user data types (libnftnl's `enum nftnl_udata_set_types`).
const UDATA_SET_KEYBYTEORDER: u8 = 0;
const UDATA_SET_DATABYTEORDER: u8 = 1;
const UDATA_SET_MERGE_ELEMENTS: u8 = 2;
const UDATA_SET_KEY_TYPEOF: u8 = 3;
const UDATA_SET_DATA_TYPEOF: u8 = 4;
const UDATA_SET_DATA_INTERVAL: u8 = 6;
const UDATA_SET_COMMENT: u8 = 7;

/// A compiled ruleset: the batch, and where each of its items came from.
#[derive(Debug)]
pub struct Compiled {
    pub batch: Batch,
    pub sources: Sources,
}

/// Where each batch item came from, to place the kernel's refusals.
#[derive(Debug, Default)]
pub struct Sources {
    /// Per item: its own position (an element's, a rule's, a command's).
    spans: Vec<Span>,
    /// Per item: the command it belongs to (the set or `add element` of an
    /// element, the rule of an anonymous set and its elements).
    commands: Vec<Span>,
}

impl Sources {
    /// Where batch item `item` came from.
    pub fn span(&self, item: usize) -> Option<&Span> {
        self.spans.get(item)
    }

    /// Where the kernel's refusal is about: the refused object itself, or
    /// its command when the kernel did not say which element it refused.
    pub fn locate(&self, refusal: &nft::Refusal) -> Option<&Span> {
        let item = refusal.item?;
        if refusal.exact {
            self.spans.get(item)
        } else {
            self.commands.get(item)
        }
    }
}

/// A named set or map declared earlier in the ruleset.
struct DeclaredSet {
    name: CString,
    id: u32,
    key: Vec<DataType>,
    data: Option<MapData>,
    interval: bool,
    has_elements: bool,
}

type Sets = HashMap<(TableId, String), DeclaredSet>;

/// Names for anonymous sets. nft sends `__set%d` and the kernel picks the
/// lowest free number, scanning every set of the table each time: loading
/// thousands of anonymous sets is quadratic in the kernel (about half a
/// second for 2,500). In a table this batch created from nothing (after
/// `flush ruleset` or `delete table`), the kernel would number them 0, 1,
/// 2, ... in order, so we send those names ourselves, with `create`
/// semantics so that a name already taken fails the batch instead of
/// binding a rule to someone else's set. Elsewhere, `__set%d` as nft does.
#[derive(Default)]
struct AnonNames {
    /// Per fresh table: the next set and map numbers.
    fresh: HashMap<TableId, (u32, u32)>,
    /// Every table is fresh after `flush ruleset`.
    all_fresh: bool,
}

impl AnonNames {
    fn next(&mut self, table: &TableId, map: bool) -> CString {
        let counters = match self.fresh.get_mut(table) {
            Some(counters) => counters,
            None if self.all_fresh => self.fresh.entry(table.clone()).or_default(),
            None => return if map { c"__map%d" } else { c"__set%d" }.to_owned(),
        };
        let (prefix, n) = if map {
            ("__map", &mut counters.1)
        } else {
            ("__set", &mut counters.0)
        };
        let name = format!("{prefix}{n}");
        *n += 1;
        // Digits and a fixed prefix: no NUL.
        CString::new(name).unwrap_or_default()
    }

    fn is_template(name: &CString) -> bool {
        name.as_bytes().ends_with(b"%d")
    }

    fn flush_ruleset(&mut self) {
        self.fresh.clear();
        self.all_fresh = true;
    }

    fn delete_table(&mut self, table: &TableId) {
        self.fresh.insert(table.clone(), (0, 0));
    }
}

/// Compiles the ruleset into one batch. Fails on what only the compiler can
/// see: unknown interfaces (`iif`), conflicting protocols, overlapping
/// intervals in a named set.
pub fn compile(ruleset: &Ruleset) -> Result<Compiled, Error> {
    let mut compiler = Compiler {
        batch: Batch::new(),
        sources: Sources::default(),
        sets: Sets::new(),
        names: AnonNames::default(),
    };
    for command in &ruleset.commands {
        compiler.command(command)?;
    }
    Ok(Compiled {
        batch: compiler.batch,
        sources: compiler.sources,
    })
}

struct Compiler {
    batch: Batch,
    sources: Sources,
    sets: Sets,
    names: AnonNames,
}

impl Compiler {
    /// Attributes every item added since the last call to `span`.
    fn track(&mut self, span: &Span) {
        let items = self.batch.len();
        self.sources.spans.resize(items, span.clone());
        self.sources.commands.resize(items, span.clone());
    }

    fn command(&mut self, command: &Command) -> Result<(), Error> {
        let span = &command.span;
        match &command.kind {
            CommandKind::FlushRuleset => {
                self.batch.flush_ruleset(None);
                self.sets.clear();
                self.names.flush_ruleset();
            }
            CommandKind::AddTable(table) => {
                let mut t =
                    nft::Table::new(family(table.id.family), cstring(&table.id.name, span)?);
                if let Some(comment) = &table.comment {
                    t.udata = Some(Udata::comment(&cstring(comment, span)?));
                }
                self.batch.add_table(&t, Mode::Add);
            }
            CommandKind::DeleteTable(id) => {
                self.batch
                    .delete_table(family(id.family), &cstring(&id.name, span)?);
                self.sets.retain(|(table, _), _| table != id);
                self.names.delete_table(id);
            }
            // nft 1.0.6 flushes the rules only; sets keep their elements.
            CommandKind::FlushTable(id) => {
                self.batch
                    .flush_table(family(id.family), &cstring(&id.name, span)?);
            }
            CommandKind::AddChain(chain) => self.chain(chain, span)?,
            CommandKind::AddSet(set) => self.set(set, span)?,
            CommandKind::AddRule(rule) => self.rule(rule)?,
            CommandKind::AddElements(elements) => self.elements(elements)?,
        }
        self.encoded(span)?;
        self.track(span);
        Ok(())
    }

    /// The encoder's refusal of what was just added (a name or value too
    /// long for the kernel), placed at `span`. The checker refuses such
    /// input first; this is the encoder's own guard.
    fn encoded(&self, span: &Span) -> Result<(), Error> {
        match self.batch.error() {
            Some(err) => Err(Error::new(span.clone(), err.to_string())),
            None => Ok(()),
        }
    }

    fn chain(&mut self, chain: &ast::Chain, span: &Span) -> Result<(), Error> {
        let mut c = nft::Chain::new(
            family(chain.table.family),
            cstring(&chain.table.name, span)?,
            cstring(&chain.name, span)?,
        );
        if let Some(base) = &chain.base {
            c.hook = Some(nft::Hook {
                chain_type: cstring(base.chain_type.name(), span)?,
                hooknum: base.hook.number(),
                priority: base.priority,
                policy: base.policy.map(|p| match p {
                    ast::Policy::Accept => 1,
                    ast::Policy::Drop => 0,
                }),
                device: None,
            });
        }
        if let Some(comment) = &chain.comment {
            c.udata = Some(Udata::comment(&cstring(comment, span)?));
        }
        self.batch.add_chain(&c, Mode::Add);
        Ok(())
    }

    fn set(&mut self, set: &ast::Set, span: &Span) -> Result<(), Error> {
        let id = self.batch.next_set_id();
        let name = cstring(&set.name, span)?;
        let mut s = nft::Set::new(
            family(set.table.family),
            cstring(&set.table.name, span)?,
            name.clone(),
            id,
            concat_type_id(&set.key),
            concat_len(&set.key) as u32,
        );
        let concat = set.key.len() > 1;
        let flags = set.flags;
        for (on, bit) in [
            (flags.constant, set_flags::CONSTANT),
            (flags.interval, set_flags::INTERVAL),
            (set.is_map(), set_flags::MAP),
            (flags.timeout, set_flags::TIMEOUT),
            (flags.interval && concat, set_flags::CONCAT),
        ] {
            if on {
                s.flags |= bit;
            }
        }
        if let Some(data) = &set.data {
            s.data = Some(map_data_type(data));
        }
        s.timeout_ms = set.timeout_ms;
        if flags.interval && concat {
            s.field_lens = set.key.iter().map(|t| t.byte_len() as u32).collect();
        }

        let shape = Shape {
            key: &set.key,
            data: set.data.as_ref(),
            interval: flags.interval,
            anonymous: false,
            first_segment: true,
        };
        let lowered = elements::lower(&shape, &set.elements)?;
        // nft sizes constant sets by their elements, others by `size`.
        s.size = if flags.constant {
            (!set.elements.is_empty()).then_some(lowered.size)
        } else {
            set.size
        };
        s.udata = Some(named_set_udata(set, span)?);

        self.batch.add_set(&s, Mode::Add);
        self.encoded(span)?;
        self.track(span);
        let set_ref = nft::SetRef::from(&s);
        self.add_elements(&set_ref, &lowered)?;
        self.sets.insert(
            (set.table.clone(), set.name.clone()),
            DeclaredSet {
                name,
                id,
                key: set.key.clone(),
                data: set.data.clone(),
                interval: flags.interval,
                has_elements: !set.elements.is_empty(),
            },
        );
        Ok(())
    }

    fn add_elements(
        &mut self,
        set: &nft::SetRef,
        lowered: &elements::Lowered<'_>,
    ) -> Result<(), Error> {
        if lowered.elements.is_empty() {
            return Ok(());
        }
        let items = self
            .batch
            .add_elements(set, &lowered.elements, Mode::Add)
            .map_err(|e| Error::new(lowered.origins[0].clone(), e.to_string()))?;
        debug_assert_eq!(items.len(), lowered.origins.len());
        self.sources
            .spans
            .extend(lowered.origins.iter().map(|s| (*s).clone()));
        Ok(())
    }

    fn elements(&mut self, add: &ast::Elements) -> Result<(), Error> {
        let key = (add.table.clone(), add.set.name.clone());
        let Some(declared) = self.sets.get(&key) else {
            return Err(Error::new(
                add.set.span.clone(),
                format!("set {} is not declared", add.set.name),
            ));
        };
        let shape = Shape {
            key: &declared.key,
            data: declared.data.as_ref(),
            interval: declared.interval,
            anonymous: false,
            first_segment: !declared.has_elements,
        };
        let lowered = elements::lower(&shape, &add.elements)?;
        let set_ref = nft::SetRef {
            family: family(add.table.family),
            table: cstring(&add.table.name, &add.set.span)?,
            name: declared.name.clone(),
            id: Some(declared.id),
            is_map: declared.data.is_some(),
        };
        self.add_elements(&set_ref, &lowered)?;
        if let Some(declared) = self.sets.get_mut(&key) {
            declared.has_elements |= !add.elements.is_empty();
        }
        Ok(())
    }

    fn rule(&mut self, rule: &ast::Rule) -> Result<(), Error> {
        let compiled = rule::compile(rule, &self.sets, &mut self.batch, &mut self.names)?;
        for anon in &compiled.anon {
            let mode = if AnonNames::is_template(&anon.set.name) {
                Mode::Add
            } else {
                Mode::Create
            };
            self.batch.add_set(&anon.set, mode);
            self.encoded(anon.span)?;
            self.track(anon.span);
            self.add_elements(&nft::SetRef::from(&anon.set), &anon.elements)?;
        }
        let mut r = nft::Rule::new(
            family(rule.table.family),
            cstring(&rule.table.name, &rule.span)?,
            cstring(&rule.chain, &rule.span)?,
        );
        r.exprs = compiled.exprs;
        if let Some(comment) = &rule.comment {
            r.udata = Some(Udata::comment(&cstring(comment, &rule.span)?));
        }
        let added = match rule.placement {
            ast::Placement::Append => self.batch.add_rule(&r),
            ast::Placement::Prepend => self.batch.insert_rule(&r),
        };
        added.map_err(|e| Error::new(rule.span.clone(), e.to_string()))?;
        self.track(&rule.span);
        Ok(())
    }
}

/// The user data nft writes for a set declared by type.
fn named_set_udata(set: &ast::Set, span: &Span) -> Result<Udata, Error> {
    let concat_typeof = || types::typeof_udata(types::EXPR_CONCAT, &Udata::new());
    let mut udata = Udata::new();
    let key_order = match set.key.as_slice() {
        [one] => type_byteorder(*one),
        _ => BYTEORDER_INVALID,
    };
    udata.put_u32(UDATA_SET_KEYBYTEORDER, key_order);
    if let Some(data) = &set.data {
        let data_order = match data {
            MapData::Values(parts) if parts.len() == 1 => type_byteorder(parts[0]),
            _ => BYTEORDER_INVALID,
        };
        udata.put_u32(UDATA_SET_DATABYTEORDER, data_order);
    }
    if set.key.len() > 1 {
        udata.put_nest(UDATA_SET_KEY_TYPEOF, &concat_typeof());
    }
    if let Some(data) = &set.data {
        if matches!(data, MapData::Values(parts) if parts.len() > 1) {
            udata.put_nest(UDATA_SET_DATA_TYPEOF, &concat_typeof());
        }
        udata.put_u32(UDATA_SET_DATA_INTERVAL, 0);
    }
    if let Some(comment) = &set.comment {
        udata.put_strz(UDATA_SET_COMMENT, &cstring(comment, span)?);
    }
    Ok(udata)
}

/// NFTA_SET_DATA_TYPE and _LEN of a map.
fn map_data_type(data: &MapData) -> (u32, u32) {
    match data {
        MapData::Verdict => (DATA_VERDICT, 0),
        MapData::Values(parts) => (concat_type_id(parts), concat_len(parts) as u32),
    }
}

fn family(family: ast::Family) -> nft::Family {
    match family {
        ast::Family::Ip => nft::Family::Ip,
        ast::Family::Ip6 => nft::Family::Ip6,
        ast::Family::Inet => nft::Family::Inet,
        ast::Family::Bridge => nft::Family::Bridge,
    }
}

fn nat_family(family: ast::NatFamily) -> nft::Family {
    match family {
        ast::NatFamily::Ipv4 => nft::Family::Ip,
        ast::NatFamily::Ipv6 => nft::Family::Ip6,
    }
}

fn verdict(v: &ast::Verdict) -> Result<nft::Verdict, Error> {
    Ok(match v {
        ast::Verdict::Accept => nft::Verdict::Accept,
        ast::Verdict::Drop => nft::Verdict::Drop,
        ast::Verdict::Return => nft::Verdict::Return,
        ast::Verdict::Continue => nft::Verdict::Continue,
        ast::Verdict::Jump(chain) => nft::Verdict::Jump(cstring(&chain.name, &chain.span)?),
        ast::Verdict::Goto(chain) => nft::Verdict::Goto(cstring(&chain.name, &chain.span)?),
    })
}

/// Names and comments go to the kernel as C strings.
fn cstring(text: &str, span: &Span) -> Result<CString, Error> {
    CString::new(text)
        .map_err(|_| Error::new(span.clone(), "a NUL byte cannot be sent to the kernel"))
}
