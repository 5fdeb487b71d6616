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
use std::sync::LazyLock;

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
    /// The first object the encoder refused: the batch then holds a
    /// message cut short and is never sent.
    poisoned: Option<Error>,
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
            poisoned: None,
        }
    }

    /// The first object the encoder refused (a name, value or message too
    /// long for the kernel), if any: such a batch cannot be sent.
    pub fn error(&self) -> Option<&Error> {
        self.poisoned.as_ref()
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
        let desc = format!("{verb} table {} {}", table.family, shown(&table.name));
        self.push(NFT_MSG_NEWTABLE, table.family, mode.excl(), desc, |m| {
            table.write(m)
        })
    }

    pub fn delete_table(&mut self, family: Family, name: &CStr) -> usize {
        let desc = format!("delete table {family} {}", shown(name));
        self.push(NFT_MSG_DELTABLE, family, 0, desc, |m| {
            m.put_strz(NFTA_TABLE_NAME, name)
        })
    }

    /// Removes every rule of every chain of the table.
    pub fn flush_table(&mut self, family: Family, name: &CStr) -> usize {
        let desc = format!("flush table {family} {}", shown(name));
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
            shown(&chain.table),
            shown(&chain.name)
        );
        self.push(
            NFT_MSG_NEWCHAIN,
            chain.family,
            NLM_F_CREATE | mode.excl(),
            desc,
            |m| chain.write(m),
        )
    }

    /// Appends a rule to its chain.
    pub fn add_rule(&mut self, rule: &Rule) -> Result<usize, Error> {
        let desc = format!(
            "add rule to chain {} {} {}",
            rule.family,
            shown(&rule.table),
            shown(&rule.chain)
        );
        if rule.encoded_len_bound() > ATTR_MAX {
            return Err(Error::TooLarge(desc));
        }
        let item = self.push(
            NFT_MSG_NEWRULE,
            rule.family,
            NLM_F_CREATE | NLM_F_APPEND,
            desc,
            |m| rule.write(m),
        );
        self.checked(item)
    }

    /// Puts a rule first in its chain (`nft insert rule`).
    pub fn insert_rule(&mut self, rule: &Rule) -> Result<usize, Error> {
        let desc = format!(
            "insert rule into chain {} {} {}",
            rule.family,
            shown(&rule.table),
            shown(&rule.chain)
        );
        if rule.encoded_len_bound() > ATTR_MAX {
            return Err(Error::TooLarge(desc));
        }
        let item = self.push(NFT_MSG_NEWRULE, rule.family, NLM_F_CREATE, desc, |m| {
            rule.write(m)
        });
        self.checked(item)
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

    /// Adds elements; with `Mode::Create` an element whose key is already in
    /// the set fails the batch with EEXIST. Returns the elements' items.
    pub fn add_elements(
        &mut self,
        set: &SetRef,
        elements: &[Element],
        mode: Mode,
    ) -> Result<Range<usize>, Error> {
        self.push_elements(
            NFT_MSG_NEWSETELEM,
            NLM_F_CREATE | mode.excl(),
            set,
            elements,
            "add element to",
        )
    }

    /// Deletes elements by key; a missing key is fine (Linux 6.3+).
    pub fn destroy_elements(
        &mut self,
        set: &SetRef,
        elements: &[Element],
    ) -> Result<Range<usize>, Error> {
        self.push_elements(
            NFT_MSG_DESTROYSETELEM,
            0,
            set,
            elements,
            "destroy element in",
        )
    }

    fn push_elements(
        &mut self,
        ty: u16,
        flags: u16,
        set: &SetRef,
        elements: &[Element],
        verb: &'static str,
    ) -> Result<Range<usize>, Error> {
        let desc = Description::Elements(verb, set.clone());
        if elements.iter().any(|e| e.encoded_len_bound() > ELEMENT_MAX) {
            return Err(Error::TooLarge(desc.text()));
        }
        if let Some(err) = &self.poisoned {
            return Err(err.clone());
        }
        let desc_index = self.items.description(desc);
        let first = self.items.len();
        let mut done = 0;
        while done < elements.len() {
            let offsets = RefCell::new(Vec::new());
            let rest = &elements[done..];
            let (seq, failure) = self.write(ty, set.family as u16, flags, |m| {
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
            if let Some(reason) = failure {
                let err = Error::Encode {
                    what: self.items.descriptions[desc_index as usize].text(),
                    reason,
                };
                self.poisoned.get_or_insert(err.clone());
                return Err(err);
            }
            if offsets.is_empty() {
                // Cannot happen (the first element always stays), but a
                // message without elements must not loop forever.
                let err = Error::Encode {
                    what: self.items.descriptions[desc_index as usize].text(),
                    reason: "an element does not fit one message".to_string(),
                };
                self.poisoned.get_or_insert(err.clone());
                return Err(err);
            }
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
        let desc_index = self.items.description(Description::Text(desc));
        let (seq, failure) = self.write(ty, family, flags, body);
        if let Some(reason) = failure {
            self.poisoned.get_or_insert(Error::Encode {
                what: self.items.descriptions[desc_index as usize].text(),
                reason,
            });
        }
        let item = self.items.len();
        self.messages.push(MessageInfo {
            seq,
            first_item: item,
            element_offsets: Vec::new(),
        });
        self.items.entries.push((desc_index, None));
        item
    }

    /// The item, or the encoder's refusal of the batch.
    fn checked(&self, item: usize) -> Result<usize, Error> {
        match &self.poisoned {
            Some(err) => Err(err.clone()),
            None => Ok(item),
        }
    }

    /// Writes one message, asking for its ack unless the batch's end is
    /// acked (see [`ends_acked`]); returns its sequence number and, when
    /// the message could not be written whole, why.
    fn write(
        &mut self,
        ty: u16,
        family: u16,
        flags: u16,
        body: impl Fn(&mut Message<'_>),
    ) -> (u32, Option<String>) {
        let ack = if ends_acked() { 0 } else { NLM_F_ACK };
        let writer = Writer {
            ty,
            family,
            flags: flags | ack,
            seq: Cell::new(0),
            failure: RefCell::new(None),
            body,
        };
        self.inner.add(&writer, nftnl::MsgType::Add);
        (writer.seq.get(), writer.failure.into_inner())
    }

    /// Closes the batch for sending; a batch the encoder refused part of
    /// is never sent.
    pub(super) fn finalize(self) -> Result<Finalized, Error> {
        if let Some(err) = self.poisoned {
            return Err(err);
        }
        Ok(Finalized {
            batch: self.inner.finalize(),
            messages: self.messages,
            items: self.items,
        })
    }
}

/// Whether the kernel acknowledges a batch's begin and end messages: nftnl
/// asks it to where it honours that (Linux 6.10 and later), and this asks
/// nftnl, so both always agree. The kernel acks the end only once the
/// transaction is committed, and reports every refused message whether or
/// not it asked for an ack: with the end acked, an ack of every other
/// message tells nothing more, and each cost the kernel a message to build
/// and us a `recv` (a container's publish batch read 7 acks and an EAGAIN;
/// now 2).
pub(super) fn ends_acked() -> bool {
    // A small page: the probe is never sent.
    static ACKED: LazyLock<bool> = LazyLock::new(|| {
        let probe = nftnl::Batch::with_page_size(4096).finalize();
        !probe.sequence_numbers().is_empty()
    });
    *ACKED
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
    descriptions: Vec<Description>,
}

/// What a batch does to an object, written out only when a message names
/// it: a container's publish batch spent a tenth of its time formatting
/// the descriptions of its element messages (perf), which only a refusal
/// shows.
#[derive(Debug)]
enum Description {
    Text(String),
    /// Elements of a set: the verb ("add element to"), then the set.
    Elements(&'static str, SetRef),
}

impl Description {
    fn text(&self) -> String {
        match self {
            Description::Text(text) => text.clone(),
            Description::Elements(verb, set) => format!("{verb} {set}"),
        }
    }
}

impl Items {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn description(&mut self, desc: Description) -> u32 {
        self.descriptions.push(desc);
        (self.descriptions.len() - 1) as u32
    }

    fn describe(&self, item: Option<usize>) -> String {
        match item.and_then(|i| self.entries.get(i)) {
            Some((desc, None)) => self.descriptions[*desc as usize].text(),
            Some((desc, Some(label))) => {
                format!("{}: {label}", self.descriptions[*desc as usize].text())
            }
            None => "the transaction".to_string(),
        }
    }
}

/// A name for messages: cut after 64 characters, so a name too long for the
/// kernel does not flood the terminal.
pub(super) fn shown(name: &CStr) -> String {
    let text = name.to_string_lossy();
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], name.to_bytes().len()),
        None => text.into_owned(),
    }
}

fn write_set_ref(m: &mut Message<'_>, set: &SetRef) {
    m.put_strz(NFTA_SET_ELEM_LIST_TABLE, &set.table);
    m.put_strz(NFTA_SET_ELEM_LIST_SET, &set.name);
    if let Some(id) = set.id {
        m.put_be32(NFTA_SET_ELEM_LIST_SET_ID, id);
    }
}

#[cfg(test)]
mod tests {
    //! The encoder against inputs far past the kernel's limits: each must
    //! end in an error naming the object, never in a write past the buffer
    //! (these ran under "double free or corruption" before the checks) or
    //! a length that wraps (a 65,538-byte name sent as a 2-byte one).

    use std::ffi::CString;

    use super::*;
    use crate::nftables::{ElemData, Expr, Reg, Udata, Verdict};

    fn name(len: usize) -> CString {
        CString::new(vec![b'a'; len]).unwrap()
    }

    fn refused(batch: &Batch) -> String {
        batch.error().expect("the encoder must refuse").to_string()
    }

    /// Each message's flags, in the order sent.
    fn flags_of(batch: Batch) -> Vec<u16> {
        let finalized = batch.finalize().unwrap();
        let bytes: Vec<u8> = finalized.batch.iter().flatten().copied().collect();
        let mut flags = Vec::new();
        let mut rest = &bytes[..];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
            flags.push(u16::from_ne_bytes(rest[6..8].try_into().unwrap()));
            rest = &rest[len.next_multiple_of(4).clamp(16, rest.len())..];
        }
        flags
    }

    #[test]
    fn with_the_batch_end_acked_no_other_message_asks_for_an_ack() {
        let mut batch = Batch::new();
        batch.add_table(&Table::new(Family::Ip, name(3)), Mode::Add);
        let set = SetRef {
            family: Family::Ip,
            table: name(3),
            name: name(4),
            id: None,
            is_map: false,
        };
        let elements = [Element::new(vec![1; 4]), Element::new(vec![2; 4])];
        batch.add_elements(&set, &elements, Mode::Create).unwrap();
        let flags = flags_of(batch);
        // Begin, table, elements, end.
        assert_eq!(flags.len(), 4);
        let asks = |f: &u16| f & NLM_F_ACK != 0;
        if ends_acked() {
            assert!(asks(&flags[0]) && asks(&flags[3]), "{flags:?}");
            assert!(!flags[1..3].iter().any(asks), "{flags:?}");
        } else {
            assert!(flags[1..3].iter().all(asks), "{flags:?}");
        }
    }

    #[test]
    fn a_table_name_of_300000_bytes_is_refused_without_writing_it() {
        let mut batch = Batch::new();
        batch.add_table(&Table::new(Family::Ip, name(300_000)), Mode::Add);
        let err = refused(&batch);
        assert!(err.contains("300000 bytes"), "{err}");
        assert!(err.len() < 300, "the message must not carry the whole name");
        assert!(batch.finalize().is_err(), "a refused batch is never sent");
    }

    #[test]
    fn a_name_whose_length_would_wrap_16_bits_is_refused() {
        for len in [256, 65_531, 65_536, 65_538, 131_074] {
            let mut batch = Batch::new();
            batch.add_table(&Table::new(Family::Ip, name(len)), Mode::Add);
            assert!(refused(&batch).contains(&format!("{len} bytes")));
        }
        let mut batch = Batch::new();
        batch.add_table(&Table::new(Family::Ip, name(255)), Mode::Add);
        assert!(batch.error().is_none(), "255 bytes is the kernel's limit");
    }

    #[test]
    fn long_chain_set_and_rule_names_are_refused() {
        let mut batch = Batch::new();
        batch.add_chain(&Chain::new(Family::Ip, name(3), name(300_000)), Mode::Add);
        assert!(refused(&batch).contains("300000"));

        let mut batch = Batch::new();
        let set = Set::new(Family::Ip, name(3), name(300_000), 1, 7, 4);
        batch.add_set(&set, Mode::Add);
        assert!(refused(&batch).contains("300000"));

        let mut batch = Batch::new();
        let mut rule = Rule::new(Family::Ip, name(300_000), name(3));
        rule.push(Expr::Verdict(Verdict::Accept));
        assert!(batch.add_rule(&rule).is_err());

        let mut batch = Batch::new();
        let mut rule = Rule::new(Family::Ip, name(3), name(3));
        rule.push(Expr::Verdict(Verdict::Jump(name(70_000))));
        assert!(batch.add_rule(&rule).is_err());

        let mut batch = Batch::new();
        batch.delete_table(Family::Ip, &name(65_538));
        assert!(refused(&batch).contains("65538"));
    }

    #[test]
    fn register_values_longer_than_64_bytes_are_refused() {
        for data in [vec![1u8; 65], vec![1u8; 100_000]] {
            let mut batch = Batch::new();
            let mut rule = Rule::new(Family::Ip, name(1), name(1));
            rule.push(Expr::Cmp {
                op: crate::nftables::CmpOp::Eq,
                sreg: Reg::R1,
                data: data.clone(),
            });
            assert!(batch.add_rule(&rule).is_err(), "{} bytes", data.len());
        }
        let mut batch = Batch::new();
        let mut rule = Rule::new(Family::Ip, name(1), name(1));
        rule.push(Expr::Immediate {
            dreg: Reg::R1,
            data: vec![0; 65],
        });
        let err = batch.add_rule(&rule).unwrap_err().to_string();
        assert!(err.contains("65 bytes"), "{err}");
    }

    #[test]
    fn element_keys_data_and_user_data_past_their_limits_are_refused() {
        let set = SetRef {
            family: Family::Ip,
            table: name(1),
            name: name(1),
            id: None,
            is_map: true,
        };
        let too_long = [
            Element::new(vec![0; 65]),
            Element::new(vec![0; 1_000]),
            Element::with_data(vec![0; 4], vec![0; 65]),
            Element {
                key_end: Some(vec![0; 65]),
                ..Element::new(vec![0; 4])
            },
        ];
        for element in too_long {
            let mut batch = Batch::new();
            assert!(
                batch.add_elements(&set, &[element], Mode::Add).is_err(),
                "an element past 64 bytes"
            );
        }
        let mut udata = Udata::new();
        udata.put(0, &[b'x'; 300]);
        assert_eq!(udata.oversized(), Some(300), "an entry is never cut");
        let element = Element {
            udata: Some(udata),
            ..Element::new(vec![0; 4])
        };
        let mut batch = Batch::new();
        let err = batch
            .add_elements(&set, &[element], Mode::Add)
            .unwrap_err()
            .to_string();
        assert!(err.contains("300 bytes"), "{err}");
    }

    #[test]
    fn user_data_past_the_kernels_256_bytes_is_refused() {
        let mut udata = Udata::new();
        for _ in 0..3 {
            udata.put(1, &[b'x'; 200]);
        }
        let mut table = Table::new(Family::Ip, name(1));
        table.udata = Some(udata);
        let mut batch = Batch::new();
        batch.add_table(&table, Mode::Add);
        assert!(refused(&batch).contains("user data"));
    }

    #[test]
    fn a_concatenation_libnftnl_cannot_hold_is_refused() {
        let mut set = Set::new(Family::Ip, name(1), name(1), 1, 7, 64);
        set.field_lens = vec![4; 16];
        let mut batch = Batch::new();
        batch.add_set(&set, Mode::Add);
        assert!(refused(&batch).contains("16 fields"));

        set.field_lens = vec![4, 300];
        let mut batch = Batch::new();
        batch.add_set(&set, Mode::Add);
        assert!(refused(&batch).contains("300 bytes"));
    }

    #[test]
    fn thousands_of_long_named_elements_split_into_messages_that_fit() {
        let set = SetRef {
            family: Family::Ip,
            table: name(255),
            name: name(255),
            id: None,
            is_map: true,
        };
        let elements: Vec<Element> = (0..20_000u32)
            .map(|i| Element {
                data: Some(ElemData::Verdict(Verdict::Jump(name(255)))),
                ..Element::new(i.to_be_bytes().to_vec())
            })
            .collect();
        let mut batch = Batch::new();
        let items = batch.add_elements(&set, &elements, Mode::Add).unwrap();
        assert_eq!(items.len(), 20_000);
        assert!(batch.messages.len() > 1);
        assert!(batch.finalize().is_ok());
    }

    #[test]
    fn a_rule_too_large_for_one_attribute_is_refused() {
        let mut rule = Rule::new(Family::Ip, name(1), name(1));
        for _ in 0..2_000 {
            rule.push(Expr::Cmp {
                op: crate::nftables::CmpOp::Eq,
                sreg: Reg::R1,
                data: vec![0; 64],
            });
        }
        assert!(Batch::new().add_rule(&rule).is_err());
    }
}
