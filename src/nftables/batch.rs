//! A batch: nftables messages that the kernel applies as one transaction.
//!
//! Every object added becomes an *item* with an index (`usize`, counted from
//! 0 in the order added) and a description, so a refusal from the kernel can
//! name the object ("add element to map ip supervisor tcp_ports: 8080") and
//! callers can map it back to where the object came from. Elements are packed
//! many to a message, as nft does; the kernel names the failing one by its
//! attribute offset, which the batch records.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::ops::Range;

use super::object::{Chain, Element, Rule, Set, SetRef, Table};
use super::sys::{Message, Writer};
use super::{Error, Family};

use super::uapi::*;

/// Largest payload of one netlink attribute: a message whose attributes grow
/// past it is split (elements) or refused (rules).
const ATTR_MAX: usize = u16::MAX as usize;
/// Elements larger than this are refused, so a message that ends one element
/// past `ATTR_MAX` still fits the buffer nftnl guarantees.
const ELEMENT_MAX: usize = 2048;

/// Whether adding an object that already exists is fine (`Add`, like
/// `nft add`) or an error, EEXIST (`Create`, like `nft create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Add,
    Create,
}

impl Mode {
    fn excl(self) -> u16 {
        match self {
            Mode::Add => 0,
            Mode::Create => NLM_F_EXCL,
        }
    }
}

/// What the batch knows about one message it wrote.
#[derive(Debug)]
pub(super) struct MessageInfo {
    pub seq: u32,
    /// The first item the message carries.
    pub first_item: usize,
    /// For element messages: each element's offset from the message start.
    pub element_offsets: Vec<u32>,
}

/// A transaction under construction. Build it, then hand it to
/// [`Socket::send`](super::Socket::send).
pub struct Batch {
    inner: nftnl::Batch,
    pub(super) messages: Vec<MessageInfo>,
    items: Items,
    next_set_id: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("items", &self.items.len())
            .field("messages", &self.messages.len())
            .finish()
    }
}

impl Batch {
    pub fn new() -> Self {
        // libnftnl's default pages (128 KiB): small enough that a batch of a
        // few elements costs little, and a large ruleset still fits the
        // 1024 iovecs of one sendmsg many times over.
        Batch {
            inner: nftnl::Batch::new(),
            messages: Vec::new(),
            items: Items::default(),
            next_set_id: 1,
        }
    }

    /// How many items (objects, elements) the batch carries.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.len() == 0
    }

    /// A set id unique within this batch, for [`Set::id`].
    pub fn next_set_id(&mut self) -> u32 {
        let id = self.next_set_id;
        self.next_set_id += 1;
        id
    }

    /// Describes item `item`: what the batch does with which object.
    pub fn describe(&self, item: usize) -> String {
        self.items.describe(Some(item))
    }

    /// Attaches a label to an item, shown after its description in errors
    /// (for an element, its key as the user wrote it).
    pub fn label(&mut self, item: usize, label: impl Into<Box<str>>) {
        if let Some(entry) = self.items.entries.get_mut(item) {
            entry.1 = Some(label.into());
        }
    }

    pub fn add_table(&mut self, table: &Table, mode: Mode) -> usize {
        let verb = if mode == Mode::Create {
            "create"
        } else {
            "add"
        };
        let desc = format!(
            "{verb} table {} {}",
            table.family,
            table.name.to_string_lossy()
        );
        self.push(NFT_MSG_NEWTABLE, table.family, mode.excl(), desc, |m| {
            table.write(m)
        })
    }

    pub fn delete_table(&mut self, family: Family, name: &CStr) -> usize {
        let desc = format!("delete table {family} {}", name.to_string_lossy());
        self.push(NFT_MSG_DELTABLE, family, 0, desc, |m| {
            m.put_strz(NFTA_TABLE_NAME, name)
        })
    }

    /// Removes every rule of every chain of the table.
    pub fn flush_table(&mut self, family: Family, name: &CStr) -> usize {
        let desc = format!("flush table {family} {}", name.to_string_lossy());
        self.push(NFT_MSG_DELRULE, family, 0, desc, |m| {
            m.put_strz(NFTA_RULE_TABLE, name)
        })
    }

    /// Deletes every table, or every table of one family.
    pub fn flush_ruleset(&mut self, family: Option<Family>) -> usize {
        let desc = match family {
            Some(family) => format!("flush ruleset {family}"),
            None => "flush ruleset".to_string(),
        };
        // NFPROTO_UNSPEC (0) addresses all families.
        let family_raw = family.map_or(0, |f| f as u16);
        self.push_raw(NFT_MSG_DELTABLE, family_raw, 0, desc, |_| {})
    }

    pub fn add_chain(&mut self, chain: &Chain, mode: Mode) -> usize {
        let verb = if mode == Mode::Create {
            "create"
        } else {
            "add"
        };
        let desc = format!(
            "{verb} chain {} {} {}",
            chain.family,
            chain.table.to_string_lossy(),
            chain.name.to_string_lossy()
        );
        self.push(
            NFT_MSG_NEWCHAIN,
            chain.family,
            NLM_F_CREATE | mode.excl(),
            desc,
            |m| chain.write(m),
        )
    }

    pub fn delete_chain(&mut self, family: Family, table: &CStr, name: &CStr) -> usize {
        let desc = format!(
            "delete chain {family} {} {}",
            table.to_string_lossy(),
            name.to_string_lossy()
        );
        self.push(NFT_MSG_DELCHAIN, family, 0, desc, |m| {
            m.put_strz(NFTA_CHAIN_TABLE, table);
            m.put_strz(NFTA_CHAIN_NAME, name);
        })
    }

    /// Removes every rule of one chain.
    pub fn flush_chain(&mut self, family: Family, table: &CStr, name: &CStr) -> usize {
        let desc = format!(
            "flush chain {family} {} {}",
            table.to_string_lossy(),
            name.to_string_lossy()
        );
        self.push(NFT_MSG_DELRULE, family, 0, desc, |m| {
            m.put_strz(NFTA_RULE_TABLE, table);
            m.put_strz(NFTA_RULE_CHAIN, name);
        })
    }

    /// Appends a rule to its chain.
    pub fn add_rule(&mut self, rule: &Rule) -> Result<usize, Error> {
        let desc = format!(
            "add rule to chain {} {} {}",
            rule.family,
            rule.table.to_string_lossy(),
            rule.chain.to_string_lossy()
        );
        if rule.encoded_len_bound() > ATTR_MAX {
            return Err(Error::TooLarge(desc));
        }
        Ok(self.push(
            NFT_MSG_NEWRULE,
            rule.family,
            NLM_F_CREATE | NLM_F_APPEND,
            desc,
            |m| rule.write(m),
        ))
    }

    /// Puts a rule first in its chain (`nft insert rule`).
    pub fn insert_rule(&mut self, rule: &Rule) -> Result<usize, Error> {
        let desc = format!(
            "insert rule into chain {} {} {}",
            rule.family,
            rule.table.to_string_lossy(),
            rule.chain.to_string_lossy()
        );
        if rule.encoded_len_bound() > ATTR_MAX {
            return Err(Error::TooLarge(desc));
        }
        Ok(
            self.push(NFT_MSG_NEWRULE, rule.family, NLM_F_CREATE, desc, |m| {
                rule.write(m)
            }),
        )
    }

    pub fn add_set(&mut self, set: &Set, mode: Mode) -> usize {
        let verb = if mode == Mode::Create {
            "create"
        } else {
            "add"
        };
        let desc = format!("{verb} {}", SetRef::from(set));
        self.push(
            NFT_MSG_NEWSET,
            set.family,
            NLM_F_CREATE | mode.excl(),
            desc,
            |m| set.write(m),
        )
    }

    pub fn delete_set(&mut self, set: &SetRef) -> usize {
        let desc = format!("delete {set}");
        self.push(NFT_MSG_DELSET, set.family, 0, desc, |m| {
            m.put_strz(NFTA_SET_TABLE, &set.table);
            m.put_strz(NFTA_SET_NAME, &set.name);
        })
    }

    /// Removes every element of a set or map.
    pub fn flush_set(&mut self, set: &SetRef) -> usize {
        let desc = format!("flush {set}");
        self.push(NFT_MSG_DELSETELEM, set.family, 0, desc, |m| {
            write_set_ref(m, set)
        })
    }

    /// Adds elements; with `Mode::Create` an element whose key is already in
    /// the set fails the batch with EEXIST. Returns the elements' items.
    pub fn add_elements(
        &mut self,
        set: &SetRef,
        elements: &[Element],
        mode: Mode,
    ) -> Result<Range<usize>, Error> {
        let desc = format!("add element to {set}");
        self.push_elements(
            NFT_MSG_NEWSETELEM,
            NLM_F_CREATE | mode.excl(),
            set,
            elements,
            desc,
        )
    }

    /// Deletes elements by key; a missing key fails the batch with ENOENT.
    pub fn delete_elements(
        &mut self,
        set: &SetRef,
        elements: &[Element],
    ) -> Result<Range<usize>, Error> {
        let desc = format!("delete element from {set}");
        self.push_elements(NFT_MSG_DELSETELEM, 0, set, elements, desc)
    }

    /// Deletes elements by key; a missing key is fine (Linux 6.3+).
    pub fn destroy_elements(
        &mut self,
        set: &SetRef,
        elements: &[Element],
    ) -> Result<Range<usize>, Error> {
        let desc = format!("destroy element in {set}");
        self.push_elements(NFT_MSG_DESTROYSETELEM, 0, set, elements, desc)
    }

    fn push_elements(
        &mut self,
        ty: u16,
        flags: u16,
        set: &SetRef,
        elements: &[Element],
        desc: String,
    ) -> Result<Range<usize>, Error> {
        if elements.iter().any(|e| e.encoded_len_bound() > ELEMENT_MAX) {
            return Err(Error::TooLarge(desc));
        }
        let desc_index = self.items.description(desc);
        let first = self.items.len();
        let mut done = 0;
        while done < elements.len() {
            let offsets = RefCell::new(Vec::new());
            let rest = &elements[done..];
            let seq = self.write(ty, set.family as u16, flags, |m| {
                write_set_ref(m, set);
                let list = m.nest_start(NFTA_SET_ELEM_LIST_ELEMENTS);
                let mut offsets = offsets.borrow_mut();
                for (i, element) in rest.iter().enumerate() {
                    let start = m.len();
                    let nest = m.nest_start((i + 1) as u16);
                    element.write(m);
                    m.nest_end(nest);
                    // Split where the list attribute would outgrow its 16-bit
                    // length; the element that did not fit opens the next message.
                    if m.len() > ATTR_MAX && !offsets.is_empty() {
                        m.truncate(start);
                        break;
                    }
                    offsets.push(start as u32);
                }
                m.nest_end(list);
            });
            let offsets = offsets.into_inner();
            self.messages.push(MessageInfo {
                seq,
                first_item: self.items.len(),
                element_offsets: offsets.clone(),
            });
            self.items
                .entries
                .extend(offsets.iter().map(|_| (desc_index, None)));
            done += offsets.len();
        }
        Ok(first..self.items.len())
    }

    fn push(
        &mut self,
        ty: u16,
        family: Family,
        flags: u16,
        desc: String,
        body: impl Fn(&mut Message<'_>),
    ) -> usize {
        self.push_raw(ty, family as u16, flags, desc, body)
    }

    fn push_raw(
        &mut self,
        ty: u16,
        family: u16,
        flags: u16,
        desc: String,
        body: impl Fn(&mut Message<'_>),
    ) -> usize {
        let desc_index = self.items.description(desc);
        let seq = self.write(ty, family, flags, body);
        let item = self.items.len();
        self.messages.push(MessageInfo {
            seq,
            first_item: item,
            element_offsets: Vec::new(),
        });
        self.items.entries.push((desc_index, None));
        item
    }

    /// Writes one message asking for an ack; returns its sequence number.
    fn write(&mut self, ty: u16, family: u16, flags: u16, body: impl Fn(&mut Message<'_>)) -> u32 {
        let writer = Writer {
            ty,
            family,
            flags: flags | NLM_F_ACK,
            seq: Cell::new(0),
            body,
        };
        self.inner.add(&writer, nftnl::MsgType::Add);
        writer.seq.get()
    }

    /// Closes the batch for sending.
    pub(super) fn finalize(self) -> Finalized {
        Finalized {
            batch: self.inner.finalize(),
            messages: self.messages,
            items: self.items,
        }
    }
}

/// A batch ready to send, with what is needed to explain the kernel's answer.
pub(super) struct Finalized {
    pub batch: nftnl::FinalizedBatch,
    pub messages: Vec<MessageInfo>,
    items: Items,
}

impl Finalized {
    /// The item a refusal is about: the message with that sequence number,
    /// and within an element message, the element at the offset the kernel
    /// named (the first one when it named none).
    /// Also says whether that is exactly the item refused: not so when the
    /// kernel refused an element message without naming the element.
    pub fn item_for(&self, seq: u32, offset: Option<u32>) -> Option<(usize, bool)> {
        let index = self.messages.binary_search_by_key(&seq, |m| m.seq).ok()?;
        let message = &self.messages[index];
        let (within, exact) = match offset {
            _ if message.element_offsets.is_empty() => (0, true),
            Some(offset) => {
                let i = message
                    .element_offsets
                    .partition_point(|&start| start <= offset);
                (i.saturating_sub(1), i > 0)
            }
            None => (0, false),
        };
        Some((message.first_item + within, exact))
    }

    pub fn describe(&self, item: Option<usize>) -> String {
        self.items.describe(item)
    }
}

/// Per item: its description (an index into `descriptions`, shared by the
/// elements of one call) and an optional label (an element's key, say).
#[derive(Default)]
struct Items {
    entries: Vec<(u32, Option<Box<str>>)>,
    descriptions: Vec<String>,
}

impl Items {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn description(&mut self, desc: String) -> u32 {
        self.descriptions.push(desc);
        (self.descriptions.len() - 1) as u32
    }

    fn describe(&self, item: Option<usize>) -> String {
        match item.and_then(|i| self.entries.get(i)) {
            Some((desc, None)) => self.descriptions[*desc as usize].clone(),
            Some((desc, Some(label))) => format!("{}: {label}", self.descriptions[*desc as usize]),
            None => "the transaction".to_string(),
        }
    }
}

fn write_set_ref(m: &mut Message<'_>, set: &SetRef) {
    m.put_strz(NFTA_SET_ELEM_LIST_TABLE, &set.table);
    m.put_strz(NFTA_SET_ELEM_LIST_SET, &set.name);
    if let Some(id) = set.id {
        m.put_be32(NFTA_SET_ELEM_LIST_SET_ID, id);
    }
}
