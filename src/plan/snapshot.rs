//! What is taken, read without changing anything: the leases of a
//! network, the published ports with their owners, whether the bridge and
//! the supervisor's tables are there. `plan` decides from it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::firewall::{self, Firewall, Owned};
use crate::ipam::LeaseDir;
use crate::values::Generation;

/// What is taken when a plan is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Whether the supervisor's tables are loaded at this binary's version.
    pub base_loaded: bool,
    pub bridge_exists: bool,
    pub leases: Vec<Leased>,
    /// The address the leases last handed out unasked: the search for a
    /// free one starts after it (see `ipam`).
    pub last_handed_out: Option<Ipv4Addr>,
    /// The elements of the port maps, with their owners.
    pub published: Vec<Owned>,
    /// The kernel's ephemeral port range, where picked host ports come from.
    pub ephemeral: (u16, u16),
    /// Where in the ephemeral range picking starts.
    pub pick_from: u64,
    /// The generation of the container planned (random in a real
    /// snapshot, as `pick_from`); None: no generation elements.
    pub generation: Option<Generation>,
    /// What could not be read (the plan then assumes it free), for people.
    pub unread: Vec<String>,
}

/// A leased address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub addr: Ipv4Addr,
    /// The IPv6 address its record holds, on a dual-stack network.
    pub addr6: Option<Ipv6Addr>,
    /// Who holds it, for people.
    pub holder: String,
    /// Whether its holder's supervisor lives (an unreadable lease counts as
    /// live: nobody can tell it is not).
    pub live: bool,
}

impl Default for Snapshot {
    /// Nothing there and nothing taken.
    fn default() -> Snapshot {
        Snapshot {
            base_loaded: false,
            bridge_exists: false,
            leases: Vec::new(),
            last_handed_out: None,
            published: Vec::new(),
            ephemeral: (32768, 60999),
            pick_from: 0,
            generation: None,
            unread: Vec::new(),
        }
    }
}

impl Snapshot {
    /// Reads what is taken on the network of `bridge` now. Opens the
    /// netfilter socket but sends no change; what cannot be read (no
    /// CAP_NET_ADMIN, say) is noted in `unread`.
    pub fn read(state_dir: &Path, bridge: &str) -> Snapshot {
        let mut snapshot = Snapshot {
            bridge_exists: firewall::interface_exists(bridge),
            ephemeral: ephemeral_range(),
            pick_from: crate::values::random_u64(),
            generation: Some(Generation::random()),
            ..Snapshot::default()
        };
        let dir = LeaseDir::new(state_dir, bridge);
        match dir.as_ref().map_err(|e| e.to_string()).and_then(|dir| {
            let leases = dir.leases().map_err(|e| e.to_string())?;
            Ok((dir, leases))
        }) {
            Ok((dir, leases)) => {
                snapshot.last_handed_out = dir.last_handed_out();
                snapshot.leases = leases
                    .into_iter()
                    .map(|(addr, holder)| match holder {
                        Some(h) => Leased {
                            addr,
                            addr6: dir.addr6_of(addr),
                            holder: format!("container {} ({})", h.name, h.id),
                            live: h.process.is_alive(),
                        },
                        None => Leased {
                            addr,
                            addr6: None,
                            holder: "an unreadable lease".to_string(),
                            live: true,
                        },
                    })
                    .collect();
            }
            Err(err) => snapshot.unread.push(format!("leases: {err}")),
        }
        match Firewall::open(state_dir).and_then(|fw| {
            let current = fw.is_current()?;
            let owned = fw.owned_elements()?;
            fw.close();
            Ok((current, owned))
        }) {
            Ok((current, owned)) => {
                snapshot.base_loaded = current;
                snapshot.published = owned
                    .into_iter()
                    .filter(|e| e.target.is_port_map())
                    .collect();
            }
            Err(err) => snapshot.unread.push(format!("firewall: {err}")),
        }
        snapshot
    }

    /// The elements of the port maps only, for `apply` after a refusal.
    pub fn published(firewall: &Firewall) -> Result<Snapshot, firewall::Error> {
        let published = firewall.owned_elements()?;
        Ok(Snapshot {
            base_loaded: true,
            bridge_exists: true,
            published: published
                .into_iter()
                .filter(|e| e.target.is_port_map())
                .collect(),
            ephemeral: ephemeral_range(),
            pick_from: crate::values::random_u64(),
            ..Snapshot::default()
        })
    }
}

/// The kernel's ephemeral port range.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>());
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .filter(|(low, high)| low <= high && *low > 0)
        .unwrap_or((32768, 60999))
}
