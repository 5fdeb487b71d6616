//! Tables, chains, rules, sets and elements as plain values, and how each is
//! written into a netlink message.

use std::ffi::{CStr, CString};

use nftnl::nftnl_sys as sys;

use super::Family;
use super::expr::{Expr, Verdict};
use super::sys::{Message, NlChain, NlElem, NlRule, NlSet, NlTable};
use super::uapi::{NFTA_CHAIN_NAME, NFTA_CHAIN_TABLE, NFTA_TABLE_NAME};

/// `NFTNL_UDATA_*_COMMENT`: the type nft gives a comment in every object's
/// user data.
const UDATA_COMMENT: u8 = 0;

/// The kernel's cap on an object's user data (`NFT_USERDATA_MAXLEN`).
pub const USERDATA_MAX: usize = 256;

/// User data in libnftnl's TLV layout (`nftnl_udata`): a type byte, a length
/// byte, the value. nft keeps comments and set type information here; the
/// kernel stores it untouched and `nft list` reads it back.
///
/// An entry holds at most 255 bytes (its length is one byte): a longer one
/// is not cut but marks the whole user data as oversized, and the encoder
/// refuses to send it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Udata {
    bytes: Vec<u8>,
    /// The length of the first entry that did not fit, if any.
    oversized: Option<usize>,
}

impl Udata {
    pub fn new() -> Self {
        Self::default()
    }

    /// User data holding only a comment, as nft writes for tables, chains
    /// and rules.
    pub fn comment(text: &CStr) -> Self {
        let mut udata = Udata::new();
        udata.put_strz(UDATA_COMMENT, text);
        udata
    }

    /// The comment, if this user data holds one (as nft and `comment` write
    /// it: a NUL-terminated string in a type-0 TLV).
    pub fn comment_text(&self) -> Option<String> {
        let mut rest = self.bytes.as_slice();
        while let [ty, len, tail @ ..] = rest {
            let value = tail.get(..*len as usize)?;
            if *ty == UDATA_COMMENT {
                let text = value.strip_suffix(&[0]).unwrap_or(value);
                return Some(String::from_utf8_lossy(text).into_owned());
            }
            rest = &tail[*len as usize..];
        }
        None
    }

    pub fn put(&mut self, ty: u8, value: &[u8]) {
        let Ok(len) = u8::try_from(value.len()) else {
            self.oversized.get_or_insert(value.len());
            return;
        };
        self.bytes.push(ty);
        self.bytes.push(len);
        self.bytes.extend_from_slice(value);
    }

    /// The length of an entry that was too long to store, if there was one.
    pub fn oversized(&self) -> Option<usize> {
        self.oversized
    }

    /// A u32 in host byte order, as `nftnl_udata_put_u32` stores it.
    pub fn put_u32(&mut self, ty: u8, value: u32) {
        self.put(ty, &value.to_ne_bytes());
    }

    pub fn put_strz(&mut self, ty: u8, value: &CStr) {
        self.put(ty, value.to_bytes_with_nul());
    }

    /// A nested TLV list.
    pub fn put_nest(&mut self, ty: u8, inner: &Udata) {
        if let Some(len) = inner.oversized {
            self.oversized.get_or_insert(len);
        }
        self.put(ty, &inner.bytes);
    }

    /// User data as the kernel returned it.
    pub fn from_raw(bytes: Vec<u8>) -> Self {
        Udata {
            bytes,
            oversized: None,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub family: Family,
    pub name: CString,
    pub flags: u32,
    pub udata: Option<Udata>,
}

impl Table {
    pub fn new(family: Family, name: CString) -> Self {
        Table {
            family,
            name,
            flags: 0,
            udata: None,
        }
    }

    pub(super) fn write(&self, msg: &mut Message<'_>) {
        msg.put_strz(NFTA_TABLE_NAME, &self.name);
        let mut t = NlTable::new();
        t.set_u32(sys::NFTNL_TABLE_FAMILY, self.family as u32);
        t.set_u32(sys::NFTNL_TABLE_FLAGS, self.flags);
        if let Some(udata) = &self.udata {
            t.set_udata(sys::NFTNL_TABLE_USERDATA, udata);
        }
        t.build(msg);
    }
}

/// The hook of a base chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// `filter`, `nat` or `route`.
    pub chain_type: CString,
    /// `NF_INET_PRE_ROUTING` (0) … `NF_INET_POST_ROUTING` (4), `NF_NETDEV_INGRESS` (0).
    pub hooknum: u32,
    pub priority: i32,
    /// `NF_ACCEPT` (1) or `NF_DROP` (0); `None` leaves the kernel's default.
    pub policy: Option<u32>,
    pub device: Option<CString>,
}

/// A chain: a base chain when it has a hook, a regular one otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub family: Family,
    pub table: CString,
    pub name: CString,
    pub hook: Option<Hook>,
    pub udata: Option<Udata>,
}

impl Chain {
    pub fn new(family: Family, table: CString, name: CString) -> Self {
        Chain {
            family,
            table,
            name,
            hook: None,
            udata: None,
        }
    }

    pub(super) fn write(&self, msg: &mut Message<'_>) {
        msg.put_strz(NFTA_CHAIN_TABLE, &self.table);
        msg.put_strz(NFTA_CHAIN_NAME, &self.name);
        let mut c = NlChain::new();
        c.set_u32(sys::NFTNL_CHAIN_FAMILY, self.family as u32);
        if let Some(hook) = &self.hook {
            c.set_u32(sys::NFTNL_CHAIN_HOOKNUM, hook.hooknum);
            c.set_u32(sys::NFTNL_CHAIN_PRIO, hook.priority as u32);
            c.set_str(sys::NFTNL_CHAIN_TYPE, &hook.chain_type, "a chain type");
            if let Some(policy) = hook.policy {
                c.set_u32(sys::NFTNL_CHAIN_POLICY, policy);
            }
            if let Some(device) = &hook.device {
                c.set_str(sys::NFTNL_CHAIN_DEV, device, "a device name");
            }
        }
        if let Some(udata) = &self.udata {
            c.set_udata(sys::NFTNL_CHAIN_USERDATA, udata);
        }
        c.build(msg);
    }
}

/// A rule, appended to its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub family: Family,
    pub table: CString,
    pub chain: CString,
    pub exprs: Vec<Expr>,
    pub udata: Option<Udata>,
}

impl Rule {
    pub fn new(family: Family, table: CString, chain: CString) -> Self {
        Rule {
            family,
            table,
            chain,
            exprs: Vec::new(),
            udata: None,
        }
    }

    pub fn push(&mut self, expr: Expr) -> &mut Self {
        self.exprs.push(expr);
        self
    }

    /// An upper bound of the message size, checked before writing.
    pub(super) fn encoded_len_bound(&self) -> usize {
        let names = self.table.as_bytes().len() + self.chain.as_bytes().len() + 32;
        let udata = self.udata.as_ref().map_or(0, |u| u.as_bytes().len() + 8);
        64 + names
            + udata
            + self
                .exprs
                .iter()
                .map(Expr::encoded_len_bound)
                .sum::<usize>()
    }

    pub(super) fn write(&self, msg: &mut Message<'_>) {
        let mut r = NlRule::new();
        r.set_u32(sys::NFTNL_RULE_FAMILY, self.family as u32);
        r.set_str(sys::NFTNL_RULE_TABLE, &self.table, "a table name");
        r.set_str(sys::NFTNL_RULE_CHAIN, &self.chain, "a chain name");
        if let Some(udata) = &self.udata {
            r.set_udata(sys::NFTNL_RULE_USERDATA, udata);
        }
        for expr in &self.exprs {
            r.add_expr(expr.to_nftnl());
        }
        r.build(msg);
    }
}

/// Set flags (`NFT_SET_*`).
pub mod set_flags {
    pub const ANONYMOUS: u32 = 0x1;
    pub const CONSTANT: u32 = 0x2;
    pub const INTERVAL: u32 = 0x4;
    pub const MAP: u32 = 0x8;
    pub const TIMEOUT: u32 = 0x10;
    pub const EVAL: u32 = 0x20;
    pub const OBJECT: u32 = 0x40;
    pub const CONCAT: u32 = 0x80;
}

/// The data type of a verdict map (`NFT_DATA_VERDICT`).
pub const DATA_VERDICT: u32 = 0xffff_ff00;

/// A named or anonymous set, or a map when `data` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub family: Family,
    pub table: CString,
    /// For anonymous sets, a template such as `__set%d` the kernel fills in.
    pub name: CString,
    /// Identifies the set within one batch, so rules and elements in the same
    /// batch can refer to it before it has a name or handle.
    pub id: u32,
    pub flags: u32,
    /// nft's type number (`TYPE_IPADDR`…, concatenations packed 6 bits each).
    pub key_type: u32,
    pub key_len: u32,
    /// A map's data type and length (`DATA_VERDICT` with length 0 for vmaps).
    pub data: Option<(u32, u32)>,
    pub policy: Option<u32>,
    /// `NFTA_SET_DESC_SIZE`: expected number of elements.
    pub size: Option<u32>,
    /// `NFTA_SET_DESC_CONCAT`: the byte length of each field of a concatenated key.
    pub field_lens: Vec<u32>,
    pub timeout_ms: Option<u64>,
    pub gc_interval_ms: Option<u32>,
    pub udata: Option<Udata>,
}

impl Set {
    pub fn new(
        family: Family,
        table: CString,
        name: CString,
        id: u32,
        key_type: u32,
        key_len: u32,
    ) -> Self {
        Set {
            family,
            table,
            name,
            id,
            flags: 0,
            key_type,
            key_len,
            data: None,
            policy: None,
            size: None,
            field_lens: Vec::new(),
            timeout_ms: None,
            gc_interval_ms: None,
            udata: None,
        }
    }

    pub fn is_map(&self) -> bool {
        self.flags & set_flags::MAP != 0
    }

    pub(super) fn write(&self, msg: &mut Message<'_>) {
        let mut s = NlSet::new();
        s.set_u32(sys::NFTNL_SET_FAMILY, self.family as u32);
        s.set_str(sys::NFTNL_SET_TABLE, &self.table, "a table name");
        s.set_str(sys::NFTNL_SET_NAME, &self.name, "a set name");
        s.set_u32(sys::NFTNL_SET_ID, self.id);
        s.set_u32(sys::NFTNL_SET_FLAGS, self.flags);
        s.set_u32(sys::NFTNL_SET_KEY_TYPE, self.key_type);
        s.set_u32(sys::NFTNL_SET_KEY_LEN, self.key_len);
        if let Some((data_type, data_len)) = self.data {
            s.set_u32(sys::NFTNL_SET_DATA_TYPE, data_type);
            s.set_u32(sys::NFTNL_SET_DATA_LEN, data_len);
        }
        if let Some(policy) = self.policy {
            s.set_u32(sys::NFTNL_SET_POLICY, policy);
        }
        if let Some(size) = self.size {
            s.set_u32(sys::NFTNL_SET_DESC_SIZE, size);
        }
        if !self.field_lens.is_empty() {
            s.set_field_lens(sys::NFTNL_SET_DESC_CONCAT, &self.field_lens);
        }
        if let Some(timeout) = self.timeout_ms {
            s.set_u64(sys::NFTNL_SET_TIMEOUT, timeout);
        }
        if let Some(gc) = self.gc_interval_ms {
            s.set_u32(sys::NFTNL_SET_GC_INTERVAL, gc);
        }
        if let Some(udata) = &self.udata {
            s.set_udata(sys::NFTNL_SET_USERDATA, udata);
        }
        s.build(msg);
    }
}

/// Names a set for element operations: by name, and by batch id when it was
/// added in the same batch (anonymous sets have no usable name until then).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetRef {
    pub family: Family,
    pub table: CString,
    pub name: CString,
    pub id: Option<u32>,
    /// `true` for a map, for messages only ("add element to map …").
    pub is_map: bool,
}

impl From<&Set> for SetRef {
    fn from(set: &Set) -> Self {
        SetRef {
            family: set.family,
            table: set.table.clone(),
            name: set.name.clone(),
            id: Some(set.id),
            is_map: set.is_map(),
        }
    }
}

impl std::fmt::Display for SetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_map { "map" } else { "set" };
        write!(
            f,
            "{kind} {} {} {}",
            self.family,
            super::batch::shown(&self.table),
            super::batch::shown(&self.name)
        )
    }
}

/// What a map element maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElemData {
    Value(Vec<u8>),
    Verdict(Verdict),
}

/// `NFT_SET_ELEM_INTERVAL_END`: marks the element that closes an interval.
pub const ELEM_INTERVAL_END: u32 = 1;

/// One set or map element. Keys and data are in the kernel's layout: each
/// field of a concatenation padded to four bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub key: Vec<u8>,
    /// The end of a range, for sets whose interval keys are concatenations.
    pub key_end: Option<Vec<u8>>,
    pub data: Option<ElemData>,
    pub flags: u32,
    pub timeout_ms: Option<u64>,
    pub udata: Option<Udata>,
}

impl Element {
    pub fn new(key: Vec<u8>) -> Self {
        Element {
            key,
            ..Element::default()
        }
    }

    pub fn with_data(key: Vec<u8>, data: Vec<u8>) -> Self {
        Element {
            key,
            data: Some(ElemData::Value(data)),
            ..Element::default()
        }
    }

    pub(super) fn write(&self, msg: &mut Message<'_>) {
        let mut e = NlElem::new();
        e.set_value(sys::NFTNL_SET_ELEM_KEY, &self.key, "an element key");
        if let Some(end) = &self.key_end {
            e.set_value(sys::NFTNL_SET_ELEM_KEY_END, end, "an element key");
        }
        if self.flags != 0 {
            e.set_u32(sys::NFTNL_SET_ELEM_FLAGS, self.flags);
        }
        match &self.data {
            Some(ElemData::Value(data)) => {
                e.set_value(sys::NFTNL_SET_ELEM_DATA, data, "an element's data")
            }
            Some(ElemData::Verdict(verdict)) => {
                e.set_u32(sys::NFTNL_SET_ELEM_VERDICT, verdict.code() as u32);
                if let Some(chain) = verdict.chain() {
                    e.set_str(sys::NFTNL_SET_ELEM_CHAIN, chain, "a chain name");
                }
            }
            None => {}
        }
        if let Some(timeout) = self.timeout_ms {
            e.set_u64(sys::NFTNL_SET_ELEM_TIMEOUT, timeout);
        }
        if let Some(udata) = &self.udata {
            e.set_udata(sys::NFTNL_SET_ELEM_USERDATA, udata);
        }
        e.build(msg);
    }

    /// An upper bound of the element's encoded size.
    pub(super) fn encoded_len_bound(&self) -> usize {
        let data = match &self.data {
            Some(ElemData::Value(d)) => d.len(),
            Some(ElemData::Verdict(v)) => 16 + v.chain().map_or(0, |c| c.to_bytes().len() + 1),
            None => 0,
        };
        let udata = self.udata.as_ref().map_or(0, |u| u.as_bytes().len());
        64 + self.key.len() + self.key_end.as_ref().map_or(0, Vec::len) + data + udata
    }
}

/// A concatenated key or data value (`ipv4_addr . inet_service`): each field
/// padded to the kernel's 4-byte register words.
pub fn concat(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        out.extend_from_slice(field);
        out.resize(out.len().div_ceil(4) * 4, 0);
    }
    out
}

/// An interface name as `ifname` keys hold it: NUL-padded to 16 bytes
/// (longer names are cut, as the kernel allows 15 characters).
pub fn ifname(name: &str) -> Vec<u8> {
    let mut out: Vec<u8> = name.bytes().take(15).collect();
    out.resize(16, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenated_fields_start_on_four_byte_words() {
        let key = concat(&[&[172, 16, 0, 2], &8000u16.to_be_bytes()]);
        assert_eq!(key, [172, 16, 0, 2, 0x1f, 0x40, 0, 0]);
        assert_eq!(concat(&[&ifname("veth0"), &[10, 0, 0, 2]]).len(), 20);
    }
}
