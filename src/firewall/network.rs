//! A network in the supervisor's tables: its bridge and subnet held as
//! elements of the `bridges`, `same_bridge` and `subnets` sets, so the
//! rules stay the same for every network and one network coming or going
//! never rewrites another's (see nft/supervisor.nft).
//!
//! The elements are added without NLM_F_EXCL: every run on a network adds
//! them again, and the kernel keeps one of each. They stay while the bridge
//! exists: a container ending leaves its network's elements for the next.

use std::net::Ipv4Addr;

use crate::ipam::Subnet;
use crate::nftables::{Batch, ELEM_INTERVAL_END, Element, Mode, Udata, concat, ifname};

use super::{Error, Firewall, Target, set_ref};

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
    let mut start = Element::new(subnet.network().octets().to_vec());
    let mut udata = Udata::comment(&comment(bridge));
    let mut subnets = Vec::new();
    if subnet.network() != Ipv4Addr::UNSPECIFIED {
        subnets.push(interval_end(Ipv4Addr::UNSPECIFIED));
    }
    match u32::from(subnet.broadcast()).checked_add(1) {
        Some(end) => {
            start.udata = Some(udata);
            subnets.push(start);
            subnets.push(interval_end(Ipv4Addr::from(end)));
        }
        None => {
            udata.put_u32(UDATA_ELEM_FLAGS, ELEM_F_INTERVAL_OPEN);
            start.udata = Some(udata);
            subnets.push(start);
        }
    }
    vec![
        (Target::Bridges, vec![Element::new(name.clone())]),
        (
            Target::SameBridge,
            vec![Element::new(concat(&[&name, &name]))],
        ),
        (Target::Subnets, subnets),
    ]
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
    /// Adds the elements of the network of `bridge` and `subnet`, in one
    /// batch; those already there stay as they are. A subnet overlapping
    /// another network's is refused by the kernel.
    pub fn add_network(&self, bridge: &str, subnet: &Subnet) -> Result<(), Error> {
        let mut batch = Batch::new();
        for (target, elements) in network_elements(bridge, subnet) {
            batch.add_elements(&set_ref(target), &elements, Mode::Add)?;
        }
        let _lock = self.lock(false)?;
        self.socket.send(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
