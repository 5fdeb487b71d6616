//! The base ruleset: nft/supervisor.nft, embedded at build time, loaded
//! through our own ruleset loader.
//!
//! Loading replaces both supervisor tables in one transaction (the file
//! itself says so: add, delete, define). That happens only when the tables
//! are absent or were loaded from another version of the file or other
//! defines; the same batch then re-adds every container's elements, so a
//! live container never loses its ports.

use std::path::Path;

use nix::errno::Errno;

use crate::ipam::Subnet;
use crate::nftables::{Element, Family, Mode};
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

/// The defines the supervisor fills in, VERSION last.
pub fn defines(bridge: &str, subnet: &Subnet) -> Vec<Define> {
    vec![
        Define::new("BRIDGE", format!("\"{bridge}\"")),
        Define::new("SUBNET", subnet.to_string()),
        Define::new("VERSION", format!("0x{:08x}", version(bridge, subnet))),
    ]
}

/// A hash of the file and the configuration it is loaded with (FNV-1a,
/// 32 bits: this tells versions apart, it guards against no adversary).
pub fn version(bridge: &str, subnet: &Subnet) -> u32 {
    let subnet = subnet.to_string();
    let parts: [&[u8]; 3] = [RULESET.as_bytes(), bridge.as_bytes(), subnet.as_bytes()];
    let mut hash: u32 = 0x811c_9dc5;
    for part in parts {
        for &byte in part.iter().chain(&[0]) {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    hash
}

impl Firewall {
    /// Makes sure the tables are loaded from this binary's ruleset for this
    /// bridge and subnet. Concurrent supervisors are safe: the replacement
    /// runs under the exclusive firewall lock, element changes under the
    /// shared one.
    pub fn ensure_base(&self, bridge: &str, subnet: &Subnet) -> Result<Base, Error> {
        let wanted = version(bridge, subnet);
        if self.loaded_version()? == Some(wanted) {
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
            self.all_elements()?
        } else {
            Vec::new()
        };
        let checked = ruleset::load_str(
            "nft/supervisor.nft",
            RULESET,
            Path::new("/"),
            &defines(bridge, subnet),
        )
        .map_err(Error::Ruleset)?;
        let Compiled { mut batch, sources } =
            ruleset::compile::compile(&checked).map_err(Error::Ruleset)?;
        for (target, elements) in &survivors {
            batch.add_elements(&set_ref(*target), elements, Mode::Add)?;
        }
        ruleset::send(&self.socket, Compiled { batch, sources }).map_err(Error::Load)?;
        Ok(if exists {
            Base::Replaced
        } else {
            Base::Created
        })
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

    /// Every per-container element, by map or set.
    pub(super) fn all_elements(&self) -> Result<Vec<(Target, Vec<Element>)>, Error> {
        Target::ALL
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
    fn the_version_depends_on_bridge_and_subnet() {
        let a: Subnet = "172.16.0.0/24".parse().unwrap();
        let b: Subnet = "172.17.0.0/24".parse().unwrap();
        assert_eq!(version("sv0", &a), version("sv0", &a));
        assert_ne!(version("sv0", &a), version("sv1", &a));
        assert_ne!(version("sv0", &a), version("sv0", &b));
    }

    #[test]
    fn the_embedded_ruleset_parses_and_checks_with_the_defines() {
        let subnet: Subnet = "172.16.0.0/24".parse().unwrap();
        ruleset::load_str(
            "nft/supervisor.nft",
            RULESET,
            Path::new("/"),
            &defines("sv0", &subnet),
        )
        .unwrap();
    }
}
