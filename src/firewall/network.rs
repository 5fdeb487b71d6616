//! A network in the supervisor's tables: its bridge and subnet held as
//! elements of the `bridges`, `same_bridge` and `subnets` sets, so the
//! rules stay the same for every network and one network coming or going
//! never rewrites another's (see nft/supervisor.nft).
//!
//! The elements are added without NLM_F_EXCL: every run on a network adds
//! them again, and the kernel keeps one of each. They stay while the bridge
//! exists: a container ending leaves its network's elements for the next.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::nftables::{Batch, ELEM_INTERVAL_END, Element, Mode, Udata, concat, ifname};
use crate::values::Subnet;

use nix::errno::Errno;

use super::{Base, Error, Firewall, Target, set_ref};

/// Whether interface `name` exists in this network namespace: an ioctl,
/// so it can be asked under the firewall lock.
pub fn interface_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// `NFTNL_UDATA_SET_ELEM_FLAGS` and its `NFTNL_SET_ELEM_F_INTERVAL_OPEN`:
/// an interval reaching the type's maximum, which has no end element.
const UDATA_ELEM_FLAGS: u8 = 1;
const ELEM_F_INTERVAL_OPEN: u32 = 1;

/// One network's elements, by set, in the kernel's layout and as nft adds
/// them: the subnet as an interval (start, and an end element one past its
/// broadcast address), led by nft's end element at 0.0.0.0, and with the
/// bridge's name as its comment so `gc` can tell whose it is.
pub fn network_elements(bridge: &str, subnet: &Subnet) -> Vec<(Target, Vec<Element>)> {
    let name = ifname(bridge);
    let subnets = interval(bridge, subnet.network(), subnet.broadcast());
    vec![
        (Target::Bridges, vec![Element::new(name.clone())]),
        (
            Target::SameBridge,
            vec![Element::new(concat(&[&name, &name]))],
        ),
        (Target::Subnets, subnets),
    ]
}

/// A routed network's own element beside `network_elements`': its subnet
/// as the pair `S . S` in `routed_subnets`, one element whose key is the
/// pair of first addresses and whose end key (inclusive) the pair of last
/// ones, as nft adds a concatenated interval, with the bridge's name as its
/// comment so a stale one is found as a subnet is.
pub fn routed_network_elements(bridge: &str, subnet: &Subnet) -> Vec<(Target, Vec<Element>)> {
    let (first, last) = (subnet.network().octets(), subnet.broadcast().octets());
    let element = Element {
        key_end: Some(concat(&[&last, &last])),
        udata: Some(Udata::comment(&comment(bridge))),
        ..Element::new(concat(&[&first, &first]))
    };
    vec![(Target::RoutedSubnets, vec![element])]
}

/// A network's IPv6 elements in the ip6 table, as `network_elements`:
/// `subnet6` is (network address, prefix length).
pub fn network_elements6(bridge: &str, subnet6: (Ipv6Addr, u8)) -> Vec<(Target, Vec<Element>)> {
    let name = ifname(bridge);
    vec![
        (Target::Bridges6, vec![Element::new(name.clone())]),
        (
            Target::SameBridge6,
            vec![Element::new(concat(&[&name, &name]))],
        ),
        (Target::Subnets6, prefix_interval6(bridge, subnet6)),
    ]
}

/// The interval of the IPv6 prefix `(network, prefix length)`, as
/// `interval` lays out an IPv4 one.
fn prefix_interval6(bridge: &str, (network, prefix_len): (Ipv6Addr, u8)) -> Vec<Element> {
    let host_bits = u128::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
    let first = u128::from(network) & !host_bits;
    let mut start = Element::new(first.to_be_bytes().to_vec());
    let mut udata = Udata::comment(&comment(bridge));
    let mut elements = Vec::new();
    if first != 0 {
        elements.push(interval_end6(0));
    }
    match (first | host_bits).checked_add(1) {
        Some(end) => {
            start.udata = Some(udata);
            elements.push(start);
            elements.push(interval_end6(end));
        }
        None => {
            udata.put_u32(UDATA_ELEM_FLAGS, ELEM_F_INTERVAL_OPEN);
            start.udata = Some(udata);
            elements.push(start);
        }
    }
    elements
}

fn interval_end6(addr: u128) -> Element {
    Element {
        flags: ELEM_INTERVAL_END,
        ..Element::new(addr.to_be_bytes().to_vec())
    }
}

/// The interval `first`..=`last` in the kernel's layout, as nft adds it:
/// led by nft's end element at 0.0.0.0, then the start with `bridge` as its
/// comment, then an end element one past `last` (none when `last` is the
/// type's maximum: the start then carries the open-interval flag).
fn interval(bridge: &str, first: Ipv4Addr, last: Ipv4Addr) -> Vec<Element> {
    let mut start = Element::new(first.octets().to_vec());
    let mut udata = Udata::comment(&comment(bridge));
    let mut elements = Vec::new();
    if first != Ipv4Addr::UNSPECIFIED {
        elements.push(interval_end(Ipv4Addr::UNSPECIFIED));
    }
    match u32::from(last).checked_add(1) {
        Some(end) => {
            start.udata = Some(udata);
            elements.push(start);
            elements.push(interval_end(Ipv4Addr::from(end)));
        }
        None => {
            udata.put_u32(UDATA_ELEM_FLAGS, ELEM_F_INTERVAL_OPEN);
            start.udata = Some(udata);
            elements.push(start);
        }
    }
    elements
}

/// The `no_masquerade` elements for `cidrs` (network, prefix length),
/// asked for by the network of `bridge`: `bridge . first-last` each (a
/// concatenation's interval, a key and its end), with the bridge as the
/// comment too, as nft prints whose it is. A range inside another of the
/// same list is left out: the kernel refuses overlapping intervals.
/// `ensure_no_masquerade` merges a bridge's with what the set holds; a
/// routed attachment's veth has its own (`Firewall::routed_no_masquerade`).
pub(super) fn no_masquerade_elements(bridge: &str, cidrs: &[(Ipv4Addr, u8)]) -> Vec<Element> {
    bridge_ranges(bridge, &ranges4(cidrs), bytes4)
}

/// The `no_masquerade6` elements for IPv6 `cidrs`, as `no_masquerade_elements`.
#[cfg(test)]
pub(super) fn no_masquerade_elements6(bridge: &str, cidrs: &[(Ipv6Addr, u8)]) -> Vec<Element> {
    bridge_ranges(bridge, &ranges6(cidrs), bytes6)
}

/// IPv4 `cidrs` as (first, last) address ranges.
fn ranges4(cidrs: &[(Ipv4Addr, u8)]) -> Vec<(u128, u128)> {
    cidrs
        .iter()
        .map(|&(network, prefix_len)| {
            let host_bits = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
            let first = u32::from(network) & !host_bits;
            (u128::from(first), u128::from(first | host_bits))
        })
        .collect()
}

/// IPv6 `cidrs` as (first, last) address ranges.
fn ranges6(cidrs: &[(Ipv6Addr, u8)]) -> Vec<(u128, u128)> {
    cidrs
        .iter()
        .map(|&(network, prefix_len)| {
            let host_bits = u128::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
            let first = u128::from(network) & !host_bits;
            (first, first | host_bits)
        })
        .collect()
}

fn bytes4(v: u128) -> Vec<u8> {
    (v as u32).to_be_bytes().to_vec()
}

fn bytes6(v: u128) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// The (first, last) range of a `no_masquerade` or `no_masquerade6`
/// element (`bridge . first-last`), None for a key of another layout.
fn element_range(element: &Element) -> Option<(u128, u128)> {
    let number = |key: &[u8]| -> Option<u128> {
        match key.get(16..)? {
            b if b.len() == 4 => Some(u128::from(u32::from_be_bytes(b.try_into().ok()?))),
            b if b.len() == 16 => Some(u128::from_be_bytes(b.try_into().ok()?)),
            _ => None,
        }
    };
    let end = element.key_end.as_deref().unwrap_or(&element.key);
    Some((number(&element.key)?, number(end)?))
}

/// How a bridge's ranges held (`existing`) become their union with
/// `wanted`: the wanted ranges to add (those inside no range held nor
/// another wanted one) and the places in `existing` of the ranges to take
/// out, inside one added. The kernel refuses an interval overlapping
/// another, so a nested one never goes in beside its holder. CIDRs nest or
/// are apart; a range held that overlaps an added one partly (put there by
/// hand) is left, and the kernel's refusal says so.
pub(super) fn merge_ranges(
    existing: &[(u128, u128)],
    wanted: &[(u128, u128)],
) -> (Vec<(u128, u128)>, Vec<usize>) {
    let inside = |(first, last): (u128, u128), (f, l): (u128, u128)| f <= first && last <= l;
    let add: Vec<(u128, u128)> = wanted
        .iter()
        .enumerate()
        .filter(|&(i, &range)| {
            !existing.iter().any(|&held| inside(range, held))
                && !wanted
                    .iter()
                    .enumerate()
                    .any(|(j, &other)| j != i && inside(range, other) && (other != range || j < i))
        })
        .map(|(_, &range)| range)
        .collect();
    let remove = existing
        .iter()
        .enumerate()
        .filter(|&(_, &held)| add.iter().any(|&range| inside(held, range)))
        .map(|(at, _)| at)
        .collect();
    (add, remove)
}

/// `bridge . first-last` for each of `ranges` not inside another (nor a
/// repeat of an earlier one), the addresses laid out by `bytes`.
pub(super) fn bridge_ranges(
    bridge: &str,
    ranges: &[(u128, u128)],
    bytes: fn(u128) -> Vec<u8>,
) -> Vec<Element> {
    let name = ifname(bridge);
    ranges
        .iter()
        .enumerate()
        .filter(|&(i, &(first, last))| {
            !ranges.iter().enumerate().any(|(j, &(f, l))| {
                j != i && f <= first && last <= l && ((f, l) != (first, last) || j < i)
            })
        })
        .map(|(_, &(first, last))| Element {
            key_end: Some(concat(&[&name, &bytes(last)])),
            udata: Some(Udata::comment(&comment(bridge))),
            ..Element::new(concat(&[&name, &bytes(first)]))
        })
        .collect()
}

fn interval_end(addr: Ipv4Addr) -> Element {
    Element {
        flags: ELEM_INTERVAL_END,
        ..Element::new(addr.octets().to_vec())
    }
}

/// The comment of a network's subnet element: its bridge.
fn comment(bridge: &str) -> std::ffi::CString {
    std::ffi::CString::new(bridge).unwrap_or_default()
}

impl Firewall {
    /// Makes sure the tables are loaded (see `ensure_base`) and hold the
    /// network of `bridge` and `subnet`. When the tables are created or
    /// replaced, its elements go in the same transaction: a live network is
    /// never without them, not even for the moment between two batches.
    ///
    /// A subnet recorded for a bridge that is gone, or for this bridge before
    /// it was made again with another subnet, may overlap this one, which
    /// the kernel refuses: then those records go and it is tried once more.
    ///
    /// With `subnet6` (network address, prefix length), the network's IPv6
    /// elements go into the ip6 table in the same batches.
    pub fn ensure_network(
        &self,
        bridge: &str,
        subnet: &Subnet,
        subnet6: Option<(Ipv6Addr, u8)>,
    ) -> Result<Base, Error> {
        self.ensure_network_of(bridge, subnet, subnet6, false)
    }

    /// [`Firewall::ensure_network`] of a network in either mode: a routed
    /// one (`routed`) has its `routed_subnets` pair too.
    fn ensure_network_of(
        &self,
        bridge: &str,
        subnet: &Subnet,
        subnet6: Option<(Ipv6Addr, u8)>,
        routed: bool,
    ) -> Result<Base, Error> {
        let elements = PendingNetwork::new(bridge, subnet, subnet6, routed).elements;
        let ensure = || {
            let base = self.load_base(&elements)?;
            if base == Base::Current {
                self.add_elements(&elements)?;
            }
            Ok(base)
        };
        match ensure() {
            Ok(base) => Ok(base),
            Err(err) => {
                let current = Current {
                    bridge,
                    subnet,
                    subnet6,
                };
                let stale = self.remove_stale_networks(interface_exists, Some(current))?;
                if stale.is_empty() {
                    return Err(err);
                }
                log_stale(&stale);
                ensure()
            }
        }
    }

    /// [`Firewall::ensure_network`]'s load of the tables alone: when they
    /// were current already, the network's elements are left for the batch
    /// that publishes the container ([`Firewall::publish_with`]). A load
    /// (tables absent or another version's) adds them in its own
    /// transaction, as `ensure_network` does; a failure goes its way too.
    pub fn ensure_base_for(
        &self,
        bridge: &str,
        subnet: &Subnet,
        subnet6: Option<(Ipv6Addr, u8)>,
    ) -> Result<PendingNetwork, Error> {
        self.ensure_base_of(PendingNetwork::new(bridge, subnet, subnet6, false))
    }

    /// [`Firewall::ensure_base_for`] a routed network (IPv4 only): its
    /// elements with its `routed_subnets` pair.
    pub fn ensure_base_for_routed(
        &self,
        bridge: &str,
        subnet: &Subnet,
    ) -> Result<PendingNetwork, Error> {
        self.ensure_base_of(PendingNetwork::new(bridge, subnet, None, true))
    }

    fn ensure_base_of(&self, pending: PendingNetwork) -> Result<PendingNetwork, Error> {
        match self.load_base(&pending.elements) {
            Ok(Base::Current) => Ok(pending),
            Ok(_) => Ok(PendingNetwork::default()),
            Err(_) => {
                pending.ensure(self)?;
                Ok(PendingNetwork::default())
            }
        }
    }

    /// Takes out every subnet recorded for `bridge` but `subnet` (and, with
    /// `subnet6`, every IPv6 subnet but that one), with the networks of
    /// bridges that are gone: for a bridge this process has just made, which
    /// may have served other subnets before it was deleted. The kernel takes
    /// a new subnet that does not overlap the old one, which would otherwise
    /// stay masqueraded and accepted for a bridge that no longer serves it.
    pub fn remove_other_subnets(
        &self,
        bridge: &str,
        subnet: &Subnet,
        subnet6: Option<(Ipv6Addr, u8)>,
    ) -> Result<(), Error> {
        let current = Current {
            bridge,
            subnet,
            subnet6,
        };
        log_stale(&self.remove_stale_networks(interface_exists, Some(current))?);
        Ok(())
    }

    /// Adds `cidrs` to the destinations reached unmasqueraded (see
    /// nft/supervisor.nft), for the network of `bridge`; those already
    /// there stay. Like a network's own elements they stay with the tables:
    /// the tables are shared, and another network may have asked for them.
    ///
    /// The bridge's ranges become the union of those held and those asked
    /// for: one inside a range held is left out, and a range held inside
    /// one added goes in the same batch (the kernel refuses overlapping
    /// intervals: an ADD asking for 10.99.0.0/24 after one that asked for
    /// 10.0.0.0/8 failed, and so did every later one). The read and the
    /// batch go under the exclusive lock, so two ADDs of this state
    /// directory never merge with the same stale view.
    ///
    /// `cidrs6` go into the ip6 table's `no_masquerade6`, in the same batch.
    pub fn ensure_no_masquerade(
        &self,
        bridge: &str,
        cidrs: &[(Ipv4Addr, u8)],
        cidrs6: &[(Ipv6Addr, u8)],
    ) -> Result<(), Error> {
        if cidrs.is_empty() && cidrs6.is_empty() {
            return Ok(());
        }
        let key = ifname(bridge);
        let _lock = self.lock(true)?;
        let mut batch = Batch::new();
        let mut added = Vec::new();
        for (target, wanted, bytes) in [
            (
                Target::NoMasquerade,
                ranges4(cidrs),
                bytes4 as fn(u128) -> Vec<u8>,
            ),
            (Target::NoMasquerade6, ranges6(cidrs6), bytes6),
        ] {
            if wanted.is_empty() {
                continue;
            }
            let held: Vec<(Element, (u128, u128))> = self
                .all_elements(&[target])?
                .into_iter()
                .flat_map(|(_, elements)| elements)
                .filter(|e| e.key.get(..16) == Some(&key[..]))
                .filter_map(|e| element_range(&e).map(|range| (e, range)))
                .collect();
            let ranges: Vec<(u128, u128)> = held.iter().map(|(_, range)| *range).collect();
            let (add, remove) = merge_ranges(&ranges, &wanted);
            let doomed: Vec<Element> = remove
                .iter()
                .map(|&at| Element {
                    key_end: held[at].0.key_end.clone(),
                    ..Element::new(held[at].0.key.clone())
                })
                .collect();
            if !doomed.is_empty() {
                batch.destroy_elements(&set_ref(target), &doomed)?;
            }
            let elements = bridge_ranges(bridge, &add, bytes);
            if !elements.is_empty() {
                let items = batch.add_elements(&set_ref(target), &elements, Mode::Add)?;
                added.extend(items.zip(elements));
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        match self.socket.send(batch) {
            Err(crate::nftables::Error::Refused(refusals))
                if refusals.iter().any(|r| r.errno == Errno::EEXIST) =>
            {
                // The item named, or (a message of many elements refused
                // as one) every range added.
                let named: Vec<String> = refusals
                    .iter()
                    .filter(|r| r.errno == Errno::EEXIST && r.exact)
                    .filter_map(|r| added.iter().find(|(item, _)| Some(*item) == r.item))
                    .map(|(_, e)| no_masquerade_label(e))
                    .collect();
                let ranges = match named.is_empty() {
                    true => added.iter().map(|(_, e)| no_masquerade_label(e)).collect(),
                    false => named,
                };
                Err(Error::NoMasqueradeOverlap {
                    bridge: bridge.to_string(),
                    ranges: ranges.join(", "),
                })
            }
            other => Ok(other?),
        }
    }

    /// Adds (`add`) or removes a routed attachment's unmasqueraded ranges,
    /// keyed by its host veth `veth`: its packets are seen on that veth, not
    /// on a bridge (see nft/supervisor.nft, chain postrouting). One element
    /// per range, its own, so neither needs a read of the set, which grows
    /// with the attachments; a removal of one already gone is no error.
    pub fn routed_no_masquerade(
        &self,
        veth: &str,
        cidrs: &[(Ipv4Addr, u8)],
        add: bool,
    ) -> Result<(), Error> {
        let elements = no_masquerade_elements(veth, cidrs);
        if elements.is_empty() {
            return Ok(());
        }
        let set = set_ref(Target::NoMasquerade);
        let mut batch = Batch::new();
        if add {
            batch.add_elements(&set, &elements, Mode::Add)?;
        } else {
            batch.destroy_elements(&set, &elements)?;
        }
        let _lock = self.lock(false)?;
        self.socket.send(batch)?;
        Ok(())
    }

    /// Adds the elements of the network of `bridge` and `subnet`, in one
    /// batch; those already there stay as they are. A subnet overlapping
    /// another network's is refused by the kernel.
    pub fn add_network(&self, bridge: &str, subnet: &Subnet) -> Result<(), Error> {
        self.add_elements(&network_elements(bridge, subnet))
    }

    /// Adds network elements in one batch, keeping those already there.
    fn add_elements(&self, elements: &[(Target, Vec<Element>)]) -> Result<(), Error> {
        let mut batch = Batch::new();
        for (target, elements) in elements {
            batch.add_elements(&set_ref(*target), elements, Mode::Add)?;
        }
        let _lock = self.lock(false)?;
        self.socket.send(batch)?;
        Ok(())
    }
}

/// A network's elements still to add (see [`Firewall::ensure_base_for`]);
/// empty when there is nothing left to add.
#[derive(Debug, Clone, Default)]
pub struct PendingNetwork {
    network: Option<NetworkOf>,
    elements: Vec<(Target, Vec<Element>)>,
}

/// A network's bridge, subnet, IPv6 subnet (network, prefix length), and
/// whether it is routed.
type NetworkOf = (String, Subnet, Option<(Ipv6Addr, u8)>, bool);

impl PendingNetwork {
    fn new(
        bridge: &str,
        subnet: &Subnet,
        subnet6: Option<(Ipv6Addr, u8)>,
        routed: bool,
    ) -> PendingNetwork {
        let mut elements = network_elements(bridge, subnet);
        if let Some(subnet6) = subnet6 {
            elements.extend(network_elements6(bridge, subnet6));
        }
        if routed {
            elements.extend(routed_network_elements(bridge, subnet));
        }
        PendingNetwork {
            network: Some((bridge.to_string(), *subnet, subnet6, routed)),
            elements,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.network.is_none()
    }

    pub(super) fn elements(&self) -> &[(Target, Vec<Element>)] {
        &self.elements
    }

    /// The network's elements added in a batch of their own, as
    /// [`Firewall::ensure_network`] adds them.
    pub(super) fn ensure(&self, firewall: &Firewall) -> Result<(), Error> {
        match &self.network {
            Some((bridge, subnet, subnet6, routed)) => firewall
                .ensure_network_of(bridge, subnet, *subnet6, *routed)
                .map(|_| ()),
            None => Ok(()),
        }
    }
}

fn log_stale(stale: &[GoneNetwork]) {
    for network in stale {
        tracing::info!("removed stale {network}: its bridge is gone or serves another subnet");
    }
}

/// A live bridge and the subnets it serves now: its others are stale. An
/// IPv6 subnet of None says nothing of the bridge's IPv6 side (an
/// IPv4-only run on a dual-stack bridge), which is then left alone.
#[derive(Clone, Copy)]
struct Current<'a> {
    bridge: &'a str,
    subnet: &'a Subnet,
    subnet6: Option<(Ipv6Addr, u8)>,
}

/// A network whose elements were taken out, its bridge being gone (or,
/// when a run made its bridge again, only its stale subnets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoneNetwork {
    pub bridge: String,
    /// Its subnets as recorded (`10.1.0.0/24`); normally one.
    pub subnets: Vec<String>,
}

impl std::fmt::Display for GoneNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "network {}", self.bridge)?;
        if !self.subnets.is_empty() {
            write!(f, " ({})", self.subnets.join(", "))?;
        }
        Ok(())
    }
}

impl Firewall {
    /// Takes out, in one batch, the elements of every network whose bridge
    /// `exists` says is gone. Under the exclusive lock, so a run that has
    /// just created its bridge adds its elements after this, never before
    /// and then lost.
    pub fn remove_gone_networks(
        &self,
        exists: impl Fn(&str) -> bool,
    ) -> Result<Vec<GoneNetwork>, Error> {
        self.remove_stale_networks(exists, None)
    }

    /// `remove_gone_networks`, and with `current`, a bridge and the subnets
    /// it now serves, every other subnet recorded for that bridge.
    fn remove_stale_networks(
        &self,
        exists: impl Fn(&str) -> bool,
        current: Option<Current>,
    ) -> Result<Vec<GoneNetwork>, Error> {
        let _lock = self.lock(true)?;
        let found = self.all_elements(&Target::NETWORK)?;
        let of = |target| {
            found
                .iter()
                .find(|(t, _)| *t == target)
                .map_or(&[][..], |(_, e)| e.as_slice())
        };
        let mut subnets: Vec<&Element> = of(Target::Subnets).iter().collect();
        subnets.sort_by(|a, b| a.key.cmp(&b.key));
        let mut gone = Vec::new();
        let mut doomed: Vec<(Target, Element)> = Vec::new();
        for bridge in of(Target::Bridges) {
            let name = String::from_utf8_lossy(&bridge.key)
                .trim_end_matches('\0')
                .to_string();
            let mut intervals = intervals_of(&subnets, &name);
            if exists(&name) {
                // Only the current bridge's other subnets are stale.
                let Some(Current { subnet, .. }) = current.filter(|c| c.bridge == name) else {
                    continue;
                };
                let network = subnet.network().octets();
                let end = u32::from(subnet.broadcast())
                    .checked_add(1)
                    .map(|e| e.to_be_bytes());
                intervals.retain(|(s, e)| {
                    s.key != network || e.map(|e| e.key.as_slice()) != end.as_ref().map(|e| &e[..])
                });
                if intervals.is_empty() {
                    continue;
                }
            } else {
                let pair = concat(&[&bridge.key, &bridge.key]);
                doomed.push((Target::Bridges, Element::new(bridge.key.clone())));
                doomed.push((Target::SameBridge, Element::new(pair)));
            }
            let labels = doom_intervals(&mut doomed, Target::Subnets, &intervals, interval_label);
            gone.push(GoneNetwork {
                bridge: name,
                subnets: labels,
            });
        }
        // The ip6 table's: a gone bridge's IPv6 elements go with it.
        let mut subnets6: Vec<&Element> = of(Target::Subnets6).iter().collect();
        subnets6.sort_by(|a, b| a.key.cmp(&b.key));
        for bridge in of(Target::Bridges6) {
            let name = String::from_utf8_lossy(&bridge.key)
                .trim_end_matches('\0')
                .to_string();
            let mut intervals = intervals_of(&subnets6, &name);
            if exists(&name) {
                // As for IPv4: only the current bridge's other subnets6.
                let Some((network, prefix_len)) =
                    current.filter(|c| c.bridge == name).and_then(|c| c.subnet6)
                else {
                    continue;
                };
                let host_bits = u128::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
                let first = u128::from(network) & !host_bits;
                let start = first.to_be_bytes();
                let end = (first | host_bits).checked_add(1).map(u128::to_be_bytes);
                intervals.retain(|(s, e)| {
                    s.key != start || e.map(|e| e.key.as_slice()) != end.as_ref().map(|e| &e[..])
                });
                if intervals.is_empty() {
                    continue;
                }
            } else {
                let pair = concat(&[&bridge.key, &bridge.key]);
                doomed.push((Target::Bridges6, Element::new(bridge.key.clone())));
                doomed.push((Target::SameBridge6, Element::new(pair)));
            }
            let labels = doom_intervals(&mut doomed, Target::Subnets6, &intervals, interval_label6);
            match gone.iter_mut().find(|g| g.bridge == name) {
                Some(network) => network.subnets.extend(labels),
                None => gone.push(GoneNetwork {
                    bridge: name,
                    subnets: labels,
                }),
            }
        }
        // A gone bridge's unmasqueraded ranges, whatever its other sets
        // hold: its name leads their keys.
        for target in [Target::NoMasquerade, Target::NoMasquerade6] {
            for element in of(target) {
                let name = ifname_of(&element.key);
                if name.is_empty() || exists(&name) {
                    continue;
                }
                let label = format!("unmasqueraded {}", no_masquerade_label(element));
                match gone.iter_mut().find(|g| g.bridge == name) {
                    Some(network) => network.subnets.push(label),
                    None => gone.push(GoneNetwork {
                        bridge: name,
                        subnets: vec![label],
                    }),
                }
                doomed.push((target, element.clone()));
            }
        }
        // A routed network's pair goes with its bridge, or when its bridge
        // now serves another subnet (or none routed: a pair of another
        // subnet than the current one's).
        for pair in of(Target::RoutedSubnets) {
            let Some(name) = pair.udata.as_ref().and_then(|u| u.comment_text()) else {
                continue;
            };
            let stale = if exists(&name) {
                current.is_some_and(|c| {
                    c.bridge == name
                        && pair.key
                            != concat(&[&c.subnet.network().octets(), &c.subnet.network().octets()])
                })
            } else {
                true
            };
            if stale {
                let element = Element {
                    key_end: pair.key_end.clone(),
                    ..Element::new(pair.key.clone())
                };
                doomed.push((Target::RoutedSubnets, element));
                if !gone.iter().any(|g| g.bridge == name) {
                    gone.push(GoneNetwork {
                        bridge: name,
                        subnets: Vec::new(),
                    });
                }
            }
        }
        if doomed.is_empty() {
            return Ok(gone);
        }
        let mut batch = Batch::new();
        for target in Target::NETWORK {
            let elements: Vec<Element> = doomed
                .iter()
                .filter(|(t, _)| *t == target)
                .map(|(_, e)| e.clone())
                .collect();
            if !elements.is_empty() {
                batch.destroy_elements(&set_ref(target), &elements)?;
            }
        }
        self.socket.send(batch)?;
        Ok(gone)
    }
}

/// The interface name leading a key (`ifname`, NUL-padded to 16 bytes).
fn ifname_of(key: &[u8]) -> String {
    let field = key.get(..16.min(key.len())).unwrap_or_default();
    String::from_utf8_lossy(field)
        .trim_end_matches('\0')
        .to_string()
}

/// `192.0.2.0/24` (`FIRST-LAST` when it is no prefix) from a
/// `no_masquerade` or `no_masquerade6` element: `bridge . first-last`.
pub(super) fn no_masquerade_label(element: &Element) -> String {
    let number = |key: &[u8]| -> Option<(u128, u32)> {
        match key.get(16..)? {
            b if b.len() == 4 => Some((u128::from(u32::from_be_bytes(b.try_into().ok()?)), 32)),
            b if b.len() == 16 => Some((u128::from_be_bytes(b.try_into().ok()?), 128)),
            _ => None,
        }
    };
    let end = element.key_end.as_deref().unwrap_or(&element.key);
    let (Some((first, bits)), Some((last, _))) = (number(&element.key), number(end)) else {
        return format!("{:02x?}", element.key);
    };
    let show = |v: u128| match bits {
        32 => Ipv4Addr::from(v as u32).to_string(),
        _ => Ipv6Addr::from(v).to_string(),
    };
    let size = last.wrapping_sub(first).wrapping_add(1);
    if size.is_power_of_two() && first & (size - 1) == 0 {
        format!("{}/{}", show(first), bits - size.trailing_zeros())
    } else if size == 0 && bits == 128 {
        format!("{}/0", show(first))
    } else {
        format!("{}-{}", show(first), show(last))
    }
}

/// Adds the elements of `intervals` of `target` to `doomed`; their labels.
fn doom_intervals(
    doomed: &mut Vec<(Target, Element)>,
    target: Target,
    intervals: &[(&Element, Option<&Element>)],
    label: fn(&[u8], Option<&[u8]>) -> String,
) -> Vec<String> {
    let mut labels = Vec::new();
    for (start, end) in intervals {
        labels.push(label(&start.key, end.map(|e| e.key.as_slice())));
        doomed.push((target, Element::new(start.key.clone())));
        if let Some(end) = end {
            let end = Element {
                flags: ELEM_INTERVAL_END,
                ..Element::new(end.key.clone())
            };
            doomed.push((target, end));
        }
    }
    labels
}

/// The intervals of sorted `subnets` whose start carries `bridge` as its
/// comment, each with its end element (the next end above its start; none
/// for an interval open to the top).
fn intervals_of<'a>(
    subnets: &[&'a Element],
    bridge: &str,
) -> Vec<(&'a Element, Option<&'a Element>)> {
    subnets
        .iter()
        .enumerate()
        .filter(|(_, e)| e.flags & ELEM_INTERVAL_END == 0)
        .filter(|(_, e)| e.udata.as_ref().and_then(|u| u.comment_text()).as_deref() == Some(bridge))
        .map(|(i, start)| {
            let end = subnets[i + 1..]
                .iter()
                .find(|e| e.flags & ELEM_INTERVAL_END != 0 && e.key > start.key)
                .copied();
            (*start, end)
        })
        .collect()
}

/// `10.1.0.0/24` from an interval's start and end keys (`10.1.0.0+SIZE`
/// when it is no prefix).
fn interval_label(start: &[u8], end: Option<&[u8]>) -> String {
    let addr = |key: &[u8]| -> Option<u32> { Some(u32::from_be_bytes(key.try_into().ok()?)) };
    let Some(first) = addr(start) else {
        return format!("{start:02x?}");
    };
    let size = match end.map(addr) {
        Some(Some(end)) => u64::from(end.wrapping_sub(first)),
        _ => (1u64 << 32) - u64::from(first),
    };
    let start = Ipv4Addr::from(first);
    if size.is_power_of_two() {
        format!("{start}/{}", 32 - size.trailing_zeros())
    } else {
        format!("{start}+{size}")
    }
}

/// `fd53:7570:6572::/64` from an IPv6 interval's start and end keys.
fn interval_label6(start: &[u8], end: Option<&[u8]>) -> String {
    let addr = |key: &[u8]| -> Option<u128> { Some(u128::from_be_bytes(key.try_into().ok()?)) };
    let Some(first) = addr(start) else {
        return format!("{start:02x?}");
    };
    let start = Ipv6Addr::from(first);
    match end.map(addr) {
        Some(Some(end)) if end.wrapping_sub(first).is_power_of_two() => {
            format!("{start}/{}", 128 - end.wrapping_sub(first).trailing_zeros())
        }
        Some(Some(end)) => format!("{start}-{}", Ipv6Addr::from(end.wrapping_sub(1))),
        _ => format!("{start}-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_ranges_keep_the_union_without_nesting() {
        let cidr = |text: &str| {
            let (network, len) = text.split_once('/').unwrap();
            ranges4(&[(network.parse().unwrap(), len.parse().unwrap())])[0]
        };
        let [wide, mid, narrow, apart] =
            ["10.0.0.0/8", "10.99.0.0/16", "10.99.0.0/24", "192.0.2.0/24"].map(cidr);
        // Inside one held: nothing to do.
        assert_eq!(merge_ranges(&[mid], &[narrow]), (vec![], vec![]));
        assert_eq!(merge_ranges(&[mid], &[mid]), (vec![], vec![]));
        // Holding ones held: added, and they go.
        assert_eq!(
            merge_ranges(&[narrow, apart, mid], &[wide]),
            (vec![wide], vec![0, 2])
        );
        // Nested or repeated within the list, apart from what is held.
        assert_eq!(
            merge_ranges(&[wide], &[apart, narrow, apart]),
            (vec![apart], vec![])
        );
        assert_eq!(merge_ranges(&[], &[narrow, wide]), (vec![wide], vec![]));
        // IPv6 alike.
        let six = |text: &str| {
            let (network, len) = text.split_once('/').unwrap();
            ranges6(&[(network.parse().unwrap(), len.parse().unwrap())])[0]
        };
        assert_eq!(
            merge_ranges(&[six("fd00:10::/64")], &[six("fd00::/16")]),
            (vec![six("fd00::/16")], vec![0])
        );
    }

    /// An element's key and key end as `(bridge, first, last)`.
    fn ranges(elements: &[Element]) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        elements
            .iter()
            .map(|e| {
                let end = e.key_end.clone().expect("a key end");
                assert_eq!(e.key[..16], end[..16], "one bridge at both ends");
                (ifname_of(&e.key), e.key[16..].to_vec(), end[16..].to_vec())
            })
            .collect()
    }

    #[test]
    fn a_routed_networks_pair_is_one_concatenated_interval_named_by_its_bridge() {
        let subnet: Subnet = "10.77.0.0/24".parse().unwrap();
        let elements = routed_network_elements("rt0", &subnet);
        assert_eq!(elements.len(), 1);
        let (target, pair) = &elements[0];
        assert_eq!(*target, Target::RoutedSubnets);
        assert_eq!(
            pair.len(),
            1,
            "no interval end elements: the end is key_end"
        );
        assert_eq!(pair[0].key, [10, 77, 0, 0, 10, 77, 0, 0]);
        assert_eq!(
            pair[0].key_end.as_deref(),
            Some(&[10, 77, 0, 255, 10, 77, 0, 255][..])
        );
        assert_eq!(
            pair[0]
                .udata
                .as_ref()
                .and_then(|u| u.comment_text())
                .as_deref(),
            Some("rt0")
        );
    }

    #[test]
    fn no_masquerade_ranges_are_the_bridge_and_each_range_nested_ones_left_out() {
        let cidrs = [
            (Ipv4Addr::new(10, 244, 0, 0), 16),
            (Ipv4Addr::new(192, 0, 2, 0), 24),
            (Ipv4Addr::new(10, 244, 7, 0), 24),
            (Ipv4Addr::new(192, 0, 2, 0), 24),
        ];
        let elements = no_masquerade_elements("sv0", &cidrs);
        assert_eq!(
            ranges(&elements),
            [
                ("sv0".into(), vec![10, 244, 0, 0], vec![10, 244, 255, 255]),
                ("sv0".into(), vec![192, 0, 2, 0], vec![192, 0, 2, 255]),
            ]
        );
        assert!(elements.iter().all(|e| e.flags == 0));
        let comment = elements[0].udata.as_ref().and_then(Udata::comment_text);
        assert_eq!(comment.as_deref(), Some("sv0"));
        assert_eq!(no_masquerade_label(&elements[0]), "10.244.0.0/16");
        let everything = no_masquerade_elements("sv0", &[(Ipv4Addr::UNSPECIFIED, 0)]);
        assert_eq!(no_masquerade_label(&everything[0]), "0.0.0.0/0");
    }

    #[test]
    fn ipv6_no_masquerade_ranges_are_the_bridge_and_each_range() {
        let at = |text: &str| text.parse::<Ipv6Addr>().unwrap();
        let cidrs = [(at("fd00:10::"), 32), (at("2001:db8::"), 64)];
        let elements = no_masquerade_elements6("cni0", &cidrs);
        let bytes = |text: &str| at(text).octets().to_vec();
        assert_eq!(
            ranges(&elements),
            [
                (
                    "cni0".into(),
                    bytes("fd00:10::"),
                    bytes("fd00:10:ffff:ffff:ffff:ffff:ffff:ffff")
                ),
                (
                    "cni0".into(),
                    bytes("2001:db8::"),
                    bytes("2001:db8::ffff:ffff:ffff:ffff")
                ),
            ]
        );
        assert_eq!(no_masquerade_label(&elements[1]), "2001:db8::/64");
        let everything = no_masquerade_elements6("sv0", &[(Ipv6Addr::UNSPECIFIED, 0)]);
        assert_eq!(no_masquerade_label(&everything[0]), "::/0");
    }

    #[test]
    fn a_network_is_its_bridge_its_bridge_pair_and_its_subnet_interval() {
        let subnet: Subnet = "10.1.0.0/24".parse().unwrap();
        let elements = network_elements("sv1", &subnet);
        let targets: Vec<Target> = elements.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            targets,
            [Target::Bridges, Target::SameBridge, Target::Subnets]
        );
        assert_eq!(elements[0].1[0].key, ifname("sv1"));
        assert_eq!(elements[1].1[0].key.len(), 32);
        let subnets = &elements[2].1;
        let keys: Vec<(&[u8], u32)> = subnets
            .iter()
            .map(|e| (e.key.as_slice(), e.flags))
            .collect();
        assert_eq!(
            keys,
            [
                (&[0, 0, 0, 0][..], ELEM_INTERVAL_END),
                (&[10, 1, 0, 0][..], 0),
                (&[10, 1, 1, 0][..], ELEM_INTERVAL_END),
            ]
        );
        let comment = subnets[1].udata.as_ref().and_then(|u| u.comment_text());
        assert_eq!(comment.as_deref(), Some("sv1"));
    }

    #[test]
    fn an_ipv6_network_is_its_bridge_its_pair_and_its_subnet6_interval() {
        let subnet6 = ("fd53:7570:6572::".parse().unwrap(), 64);
        let elements = network_elements6("sv1", subnet6);
        let targets: Vec<Target> = elements.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            targets,
            [Target::Bridges6, Target::SameBridge6, Target::Subnets6]
        );
        let keys: Vec<(Vec<u8>, u32)> = elements[2]
            .1
            .iter()
            .map(|e| (e.key.clone(), e.flags))
            .collect();
        let mut start = vec![0xfd, 0x53, 0x75, 0x70, 0x65, 0x72, 0, 0];
        start.extend([0; 8]);
        let mut end = vec![0xfd, 0x53, 0x75, 0x70, 0x65, 0x72, 0, 1];
        end.extend([0; 8]);
        assert_eq!(
            keys,
            [
                (vec![0; 16], ELEM_INTERVAL_END),
                (start, 0),
                (end, ELEM_INTERVAL_END),
            ]
        );
        let comment = elements[2].1[1]
            .udata
            .as_ref()
            .and_then(|u| u.comment_text());
        assert_eq!(comment.as_deref(), Some("sv1"));
    }

    #[test]
    fn a_networks_subnet_is_found_by_its_comment_with_its_own_end() {
        // Two adjacent subnets: sv0's end and sv1's start share a key.
        let mut all: Vec<Element> = ["172.16.0.0/24", "172.16.1.0/24"]
            .iter()
            .zip(["sv0", "sv1"])
            .flat_map(|(net, bridge)| {
                let subnet: Subnet = net.parse().unwrap();
                network_elements(bridge, &subnet).remove(2).1
            })
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        let sorted: Vec<&Element> = all.iter().collect();
        let found = intervals_of(&sorted, "sv1");
        assert_eq!(found.len(), 1);
        let (start, end) = found[0];
        assert_eq!(start.key, [172, 16, 1, 0]);
        assert_eq!(end.map(|e| e.key.clone()), Some(vec![172, 16, 2, 0]));
        let label = interval_label(&start.key, end.map(|e| e.key.as_slice()));
        assert_eq!(label, "172.16.1.0/24");
    }
}
