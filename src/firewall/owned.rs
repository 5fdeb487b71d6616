//! The per-container elements as the kernel holds them, each with its
//! owner read back from its comment: what `gc` sweeps, what a run takes
//! back from a dead supervisor, and what `inspect` shows.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::plan::Mac;
use super::{Error, Firewall, Owner, PlannedElement, Target, set_ref};
use crate::nftables::{Batch, Element};

/// A per-container element found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub target: Target,
    /// In the kernel's layout.
    pub key: Vec<u8>,
    /// Its comment read back; None when it holds none of ours.
    pub owner: Option<Owner>,
}

/// A planned element as it would be found, without its owner: for
/// comparing plans with what the kernel holds.
impl From<PlannedElement> for Owned {
    fn from(planned: PlannedElement) -> Owned {
        Owned {
            target: planned.target,
            key: planned.key,
            owner: None,
        }
    }
}

impl Firewall {
    /// Every per-container element with its owner; none when the tables
    /// are not loaded.
    pub fn owned_elements(&self) -> Result<Vec<Owned>, Error> {
        let mut owned = Vec::new();
        for (target, elements) in self.all_elements(&Target::ALL)? {
            owned.extend(elements.into_iter().map(|element| {
                Owned {
                    target,
                    owner: element
                        .udata
                        .and_then(|u| u.comment_text())
                        .and_then(|c| Owner::from_comment(&c)),
                    key: element.key,
                }
            }));
        }
        Ok(owned)
    }

    /// The first of `elements` (in their order) the kernel does not hold,
    /// by target and key, if any: one lookup of their keys per target, not
    /// a dump of every element.
    pub fn first_missing<'a>(
        &self,
        elements: &'a [PlannedElement],
    ) -> Result<Option<&'a PlannedElement>, Error> {
        let mut groups: BTreeMap<Target, Vec<usize>> = BTreeMap::new();
        for (i, element) in elements.iter().enumerate() {
            groups.entry(element.target).or_default().push(i);
        }
        let mut first: Option<usize> = None;
        for (target, indices) in groups {
            let keys: Vec<Element> = indices
                .iter()
                .map(|&i| Element::new(elements[i].key.clone()))
                .collect();
            let held = self.socket.held_prefix(&set_ref(target), &keys)?;
            if let Some(&missing) = indices.get(held) {
                first = Some(first.map_or(missing, |f| f.min(missing)));
            }
        }
        Ok(first.map(|i| &elements[i]))
    }

    /// Removes `elements` in one batch; those already gone are no error.
    pub fn remove(&self, elements: &[Owned]) -> Result<(), Error> {
        if elements.is_empty() {
            return Ok(());
        }
        let mut groups: BTreeMap<Target, Vec<Element>> = BTreeMap::new();
        for owned in elements {
            let element = Element::new(owned.key.clone());
            groups.entry(owned.target).or_default().push(element);
        }
        let mut batch = Batch::new();
        for (target, group) in &groups {
            batch.destroy_elements(&set_ref(*target), group)?;
        }
        let _lock = self.lock(false)?;
        self.socket.send(batch)?;
        Ok(())
    }
}

/// As nft prints it, after the set's name: `tcp_ports 8080`,
/// `tcp_addr_ports 127.0.0.1 . 8080`,
/// `spoof_guard "sv-…" . 172.16.0.2 . 02:42:ac:10:00:02`.
impl fmt::Display for Owned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.target.name();
        let key = &self.key;
        let addr = |at: usize| {
            key.get(at..at + 4)
                .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        };
        let addr6 = |at: usize| {
            let b: [u8; 16] = key.get(at..at + 16)?.try_into().ok()?;
            Some(Ipv6Addr::from(b))
        };
        let mac = |at: usize| {
            let b = key.get(at..at + 6)?;
            Some(Mac([b[0], b[1], b[2], b[3], b[4], b[5]]))
        };
        // A mark is in host order, as the kernel keeps it.
        let mark = |at: usize| {
            let b: [u8; 4] = key.get(at..at + 4)?.try_into().ok()?;
            Some(u32::from_ne_bytes(b))
        };
        let port = |at: usize| {
            key.get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        match self.target {
            Target::Ports(_) | Target::Ports6(_) => match port(0) {
                Some(port) => write!(f, "{name} {port}"),
                None => write!(f, "{name} {key:02x?}"),
            },
            Target::AddrPorts(_) => match (addr(0), port(4)) {
                (Some(addr), Some(port)) => write!(f, "{name} {addr} . {port}"),
                _ => write!(f, "{name} {key:02x?}"),
            },
            Target::AddrPorts6(_) => match (addr6(0), port(16)) {
                (Some(addr), Some(port)) => write!(f, "{name} {addr} . {port}"),
                _ => write!(f, "{name} {key:02x?}"),
            },
            // Its key alone: `bridge . first` (the end is the key's end).
            Target::NoMasquerade => match addr(16) {
                Some(addr) => write!(f, "{name} \"{}\" . {addr}", ifname_at(key, 0)),
                None => write!(f, "{name} {key:02x?}"),
            },
            Target::NoMasquerade6 => match addr6(16) {
                Some(addr) => write!(f, "{name} \"{}\" . {addr}", ifname_at(key, 0)),
                None => write!(f, "{name} {key:02x?}"),
            },
            Target::Subnets6 => match addr6(0) {
                Some(addr) => write!(f, "{name} {addr}"),
                None => write!(f, "{name} {key:02x?}"),
            },
            Target::SpoofGuard6 => match (addr6(16), mac(32)) {
                (Some(addr), Some(mac)) => {
                    write!(f, "{name} \"{}\" . {addr} . {mac}", ifname_at(key, 0))
                }
                _ => write!(f, "{name} {key:02x?}"),
            },
            Target::Subnets => match addr(0) {
                Some(addr) => write!(f, "{name} {addr}"),
                None => write!(f, "{name} {key:02x?}"),
            },
            Target::Bridges | Target::Bridges6 => write!(f, "{name} \"{}\"", ifname_at(key, 0)),
            Target::SameBridge | Target::SameBridge6 => write!(
                f,
                "{name} \"{}\" . \"{}\"",
                ifname_at(key, 0),
                ifname_at(key, 16)
            ),
            Target::SpoofGuard => match (addr(16), mac(20)) {
                (Some(addr), Some(mac)) => {
                    write!(f, "{name} \"{}\" . {addr} . {mac}", ifname_at(key, 0))
                }
                _ => write!(f, "{name} {key:02x?}"),
            },
            Target::MacGuard => match mac(16) {
                Some(mac) => write!(f, "{name} \"{}\" . {mac}", ifname_at(key, 0)),
                None => write!(f, "{name} {key:02x?}"),
            },
            Target::Generations => match addr(0) {
                Some(addr) => write!(f, "{name} {addr}"),
                None => write!(f, "{name} {key:02x?}"),
            },
            Target::Generations6 => match addr6(0) {
                Some(addr) => write!(f, "{name} {addr}"),
                None => write!(f, "{name} {key:02x?}"),
            },
            Target::Live => match (addr(0), mark(4)) {
                (Some(addr), Some(mark)) => write!(f, "{name} {addr} . {mark:#010x}"),
                _ => write!(f, "{name} {key:02x?}"),
            },
            Target::Live6 => match (addr6(0), mark(16)) {
                (Some(addr), Some(mark)) => write!(f, "{name} {addr} . {mark:#010x}"),
                _ => write!(f, "{name} {key:02x?}"),
            },
            Target::Version => write!(f, "{name} {key:02x?}"),
            Target::RoutedSubnets => match (addr(0), addr(4)) {
                (Some(a), Some(b)) => write!(f, "{name} {a} . {b}"),
                _ => write!(f, "{name} {key:02x?}"),
            },
            Target::Sources => match addr(16) {
                Some(addr) => write!(f, "{name} \"{}\" . {addr}", ifname_at(key, 0)),
                None => write!(f, "{name} {key:02x?}"),
            },
        }
    }
}

/// The interface name of an `ifname` field at `at` of a key.
fn ifname_at(key: &[u8], at: usize) -> String {
    let field = key.get(at..(at + 16).min(key.len())).unwrap_or_default();
    String::from_utf8_lossy(field)
        .trim_end_matches('\0')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::plan::tests::web;

    #[test]
    fn elements_print_as_nft_would() {
        let publication = web();
        let printed: Vec<String> = publication
            .elements()
            .into_iter()
            .map(|e| {
                Owned {
                    target: e.target,
                    key: e.key,
                    owner: None,
                }
                .to_string()
            })
            .collect();
        assert_eq!(
            printed,
            [
                "spoof_guard \"sv-0123456789ab\" . 172.16.0.2 . 02:42:ac:10:00:02",
                "mac_guard \"sv-0123456789ab\" . 02:42:ac:10:00:02",
                "tcp_ports 8080",
                "udp_addr_ports 127.0.0.1 . 5353",
            ]
        );
    }

    #[test]
    fn generations_print_as_nft_would() {
        let mut publication = crate::firewall::plan::tests::web6();
        publication.generation = crate::values::Generation::new(0x11);
        let printed: Vec<String> = publication
            .elements()
            .into_iter()
            .filter(|e| e.port.is_none() && !e.target.is_bridge())
            .map(|e| Owned::from(e).to_string())
            .collect();
        assert_eq!(
            printed,
            [
                "generations 172.16.0.2",
                "live 172.16.0.2 . 0x00000011",
                "generations fd53:7570:6572::2",
                "live fd53:7570:6572::2 . 0x00000011",
            ]
        );
    }
}
