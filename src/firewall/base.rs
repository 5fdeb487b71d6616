//! The base ruleset: nft/supervisor.nft, embedded at build time, loaded
//! through our own ruleset loader.
//!
//! Loading replaces both supervisor tables in one transaction (the file
//! itself says so: add, delete, define). That happens only when the tables
//! are absent or were loaded from another version of the file; the same
//! batch then re-adds every network's and every container's elements, so a
//! live network never loses its rules nor a live container its ports. The
//! file is the same for every network: networks are elements (network.rs).

use std::net::Ipv4Addr;
use std::path::Path;

use nix::errno::Errno;

use crate::netlink::mac_for;
use crate::nftables::{ELEM_INTERVAL_END, Element, Family, Mode, concat};
use crate::ruleset::{self, Define, compile::Compiled};

use super::{Error, Firewall, Target, set_ref};

/// The base ruleset as shipped.
pub const RULESET: &str = include_str!("../../nft/supervisor.nft");

/// How `ensure_base` found the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// Already loaded from this version: nothing changed.
    Current,
    /// Absent: created.
    Created,
    /// Loaded from another version or configuration: replaced, with the
    /// containers' elements carried over.
    Replaced,
}

/// The define the supervisor fills in.
pub fn defines() -> Vec<Define> {
    vec![Define::new("VERSION", format!("0x{:08x}", version()))]
}

/// A hash of the file (FNV-1a, 32 bits: this tells versions apart, it
/// guards against no adversary).
pub fn version() -> u32 {
    VERSION
}

/// [`version`], hashed at build time: hashing the 10 KB file at every
/// start was about 15 us of each CNI ADD and `run` (perf).
const VERSION: u32 = fnv1a(RULESET.as_bytes());

const fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
}

/// Elements read from tables an older version loaded, in this version's
/// layout: `spoof_guard` held host veth . address before it held the MAC
/// too, and `mac_guard` did not exist. A live container's guard must come
/// back in the new shape, or the new rules would drop all it sends.
fn in_this_layout(mut survivors: Vec<(Target, Vec<Element>)>) -> Vec<(Target, Vec<Element>)> {
    for (target, elements) in &mut survivors {
        if matches!(target, Target::NoMasquerade | Target::NoMasquerade6) {
            *elements = keyed_by_bridge(std::mem::take(elements));
        }
    }
    let mut macs = Vec::new();
    for (target, elements) in &mut survivors {
        if *target != Target::SpoofGuard {
            continue;
        }
        for element in elements.iter_mut() {
            let Some(&[a, b, c, d]) = element.key.get(16..).filter(|k| k.len() == 4) else {
                continue;
            };
            let mac = mac_for(Ipv4Addr::new(a, b, c, d));
            let veth = &element.key[..16];
            macs.push(Element {
                udata: element.udata.clone(),
                ..Element::new(concat(&[veth, &mac]))
            });
            element.key = concat(&[&element.key, &mac]);
        }
    }
    if !macs.is_empty() {
        match survivors.iter_mut().find(|(t, _)| *t == Target::MacGuard) {
            Some((_, elements)) => elements.extend(macs),
            None => survivors.push((Target::MacGuard, macs)),
        }
    }
    survivors
}

/// `no_masquerade` (or `no_masquerade6`) elements of tables an older
/// version loaded, in this version's layout: the set held address
/// intervals for every bridge at once (a start with the bridge as its
/// comment, an end element one past its last address), it holds `bridge .
/// first-last` now. Each range goes on for the bridge of its comment;
/// one without a comment names no bridge and is left out. Elements in
/// this layout already (a key end of their own) stay as they are.
fn keyed_by_bridge(mut elements: Vec<Element>) -> Vec<Element> {
    if elements.iter().all(|e| e.key_end.is_some()) {
        return elements;
    }
    elements.sort_by(|a, b| a.key.cmp(&b.key));
    let number = |key: &[u8]| -> Option<u128> {
        match key.len() {
            4 => Some(u128::from(u32::from_be_bytes(key.try_into().ok()?))),
            16 => Some(u128::from_be_bytes(key.try_into().ok()?)),
            _ => None,
        }
    };
    let mut ranges: Vec<(String, (u128, u128), usize)> = Vec::new();
    for (i, start) in elements.iter().enumerate() {
        if start.flags & ELEM_INTERVAL_END != 0 {
            continue;
        }
        let Some(bridge) = start.udata.as_ref().and_then(|u| u.comment_text()) else {
            continue;
        };
        let Some(first) = number(&start.key) else {
            continue;
        };
        let top = match start.key.len() {
            4 => u128::from(u32::MAX),
            _ => u128::MAX,
        };
        // The next end element above it closes it; none: open to the top.
        let last = elements[i + 1..]
            .iter()
            .find(|e| e.flags & ELEM_INTERVAL_END != 0 && e.key > start.key)
            .and_then(|end| number(&end.key))
            .map_or(top, |end| end.wrapping_sub(1));
        ranges.push((bridge, (first, last), start.key.len()));
    }
    ranges
        .into_iter()
        .flat_map(|(bridge, range, len)| {
            let bytes: fn(u128) -> Vec<u8> = match len {
                4 => |v| (v as u32).to_be_bytes().to_vec(),
                _ => |v| v.to_be_bytes().to_vec(),
            };
            super::network::bridge_ranges(&bridge, &[range], bytes)
        })
        .collect()
}

impl Firewall {
    /// Makes sure the tables are loaded from this binary's ruleset.
    /// Concurrent supervisors are safe: the replacement runs under the
    /// exclusive firewall lock, element changes under the shared one.
    pub fn ensure_base(&self) -> Result<Base, Error> {
        self.load_base(&[])
    }

    /// Whether the tables are loaded from this binary's ruleset; reads only.
    pub fn is_current(&self) -> Result<bool, Error> {
        Ok(self.loaded_version()? == Some(version()))
    }

    /// `ensure_base`, where a (re)load also adds `extra` elements in the
    /// same transaction.
    pub(super) fn load_base(&self, extra: &[(Target, Vec<Element>)]) -> Result<Base, Error> {
        let wanted = version();
        if self.holds_version(wanted) {
            return Ok(Base::Current);
        }
        let _lock = self.lock(true)?;
        let loaded = self.loaded_version()?;
        if loaded == Some(wanted) {
            return Ok(Base::Current);
        }
        // loaded_version already told: None only when the table is absent.
        let exists = loaded.is_some();
        let survivors = if exists {
            let targets = Target::NETWORK.into_iter().chain(Target::ALL);
            self.all_elements(&targets.collect::<Vec<_>>())?
        } else {
            Vec::new()
        };
        let checked = ruleset::load_str("nft/supervisor.nft", RULESET, Path::new("/"), &defines())
            .map_err(Error::Ruleset)?;
        let Compiled { mut batch, sources } =
            ruleset::compile::compile(&checked).map_err(Error::Ruleset)?;
        for (target, elements) in in_this_layout(survivors).iter().chain(extra) {
            batch.add_elements(&set_ref(*target), elements, Mode::Add)?;
        }
        ruleset::send(&self.socket, Compiled { batch, sources }).map_err(Error::Load)?;
        Ok(if exists {
            Base::Replaced
        } else {
            Base::Created
        })
    }

    /// Whether the `version` set holds `wanted`: one lookup of that
    /// element (NFT_MSG_GETSETELEM without NLM_F_DUMP), answered at once,
    /// where [`Firewall::loaded_version`]'s dump of the set costs the
    /// kernel a dump's state and two replies (on every CNI ADD and `run`).
    /// Anything but a yes (the table or set missing, another version, an
    /// error) leaves the answer to `loaded_version`.
    fn holds_version(&self, wanted: u32) -> bool {
        let key = Element::new(wanted.to_ne_bytes().to_vec());
        let version = set_ref(Target::Version);
        matches!(self.socket.held_prefix(&version, &[key]), Ok(1))
    }

    /// The VERSION the tables were loaded with: None when they are absent,
    /// Some(0) when they hold no version (not loaded from our file).
    fn loaded_version(&self) -> Result<Option<u32>, Error> {
        let version = set_ref(Target::Version);
        match self.socket.elements(&version) {
            Ok(elements) => Ok(Some(
                elements
                    .first()
                    .and_then(|e| e.key.get(..4))
                    .map(|k| u32::from_ne_bytes([k[0], k[1], k[2], k[3]]))
                    .unwrap_or(0),
            )),
            Err(crate::nftables::Error::Io {
                source: Errno::ENOENT,
                ..
            }) => {
                let exists = self.socket.table_exists(Family::Ip, super::TABLE)?;
                Ok(exists.then_some(0))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The elements of `targets`, by map or set (none when absent).
    pub(super) fn all_elements(
        &self,
        targets: &[Target],
    ) -> Result<Vec<(Target, Vec<Element>)>, Error> {
        targets
            .iter()
            .map(|&target| match self.socket.elements(&set_ref(target)) {
                Ok(elements) => Ok((target, elements)),
                Err(crate::nftables::Error::Io {
                    source: Errno::ENOENT,
                    ..
                }) => Ok((target, Vec::new())),
                Err(e) => Err(e.into()),
            })
            .collect()
    }

    /// Tables of others whose forward hook drops by default (firewalld,
    /// docker, ufw install such): they drop the containers' forwarded
    /// traffic whatever our table accepts. `family table` for each.
    pub fn foreign_forward_drops(&self) -> Result<Vec<String>, Error> {
        const FORWARD: u32 = 2;
        const DROP: u32 = 0;
        let chains = self.socket.chains()?;
        let mut tables: Vec<String> = chains
            .into_iter()
            .filter(|c| c.hook == Some(FORWARD) && c.policy == Some(DROP))
            // netdev and arp have no forward hook; 2 means something else there.
            .filter(|c| !matches!(c.family, Family::Netdev | Family::Arp))
            .filter(|c| c.table != "supervisor")
            .map(|c| format!("{} {}", c.family, c.table))
            .collect();
        tables.dedup();
        Ok(tables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_versions_no_masquerade_intervals_come_back_keyed_by_their_bridge() {
        use crate::nftables::Udata;
        let start = |key: Vec<u8>, bridge: &str| Element {
            udata: Some(Udata::comment(&std::ffi::CString::new(bridge).unwrap())),
            ..Element::new(key)
        };
        let end = |key: Vec<u8>| Element {
            flags: ELEM_INTERVAL_END,
            ..Element::new(key)
        };
        // As the kernel dumped them: any order, nft's leading end element.
        let old = vec![
            end(vec![192, 0, 3, 0]),
            start(vec![10, 244, 0, 0], "cni0"),
            end(vec![0, 0, 0, 0]),
            start(vec![192, 0, 2, 0], "sv1"),
            end(vec![10, 245, 0, 0]),
            Element::new(vec![172, 20, 0, 0]),
        ];
        let new = in_this_layout(vec![(Target::NoMasquerade, old)]);
        let expected = [
            super::super::network::no_masquerade_elements(
                "cni0",
                &[(Ipv4Addr::new(10, 244, 0, 0), 16)],
            ),
            super::super::network::no_masquerade_elements(
                "sv1",
                &[(Ipv4Addr::new(192, 0, 2, 0), 24)],
            ),
        ]
        .concat();
        assert_eq!(new, [(Target::NoMasquerade, expected.clone())]);
        // Already in this layout: as it was.
        let again = in_this_layout(vec![(Target::NoMasquerade, expected.clone())]);
        assert_eq!(again, [(Target::NoMasquerade, expected)]);
        let six = vec![
            end(vec![0; 16]),
            end("fd00:11::"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
                .to_vec()),
            start(
                "fd00:10::"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()
                    .to_vec(),
                "cni0",
            ),
        ];
        let new = in_this_layout(vec![(Target::NoMasquerade6, six)]);
        assert_eq!(
            new[0].1,
            super::super::network::no_masquerade_elements6(
                "cni0",
                &[("fd00:10::".parse().unwrap(), 32)]
            )
        );
    }

    #[test]
    fn the_version_is_the_files_fnv1a_hash_made_at_build_time() {
        // A constant only where a constant may stand: computed at run time
        // (at every start), this does not build.
        const AT_BUILD: u32 = VERSION;
        let mut hash: u32 = 0x811c_9dc5;
        for &byte in RULESET.as_bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        assert_eq!((AT_BUILD, version()), (hash, hash));
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
    }

    #[test]
    fn the_embedded_ruleset_parses_and_checks_with_the_defines() {
        ruleset::load_str("nft/supervisor.nft", RULESET, Path::new("/"), &defines()).unwrap();
    }
}
