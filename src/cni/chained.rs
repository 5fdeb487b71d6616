//! The plugin chained after another that made the interface and address
//! (the reference `bridge` with `host-local`, say): a drop-in for the
//! reference `portmap`. It publishes `portMappings` to the container's
//! address from `prevResult` as elements of our maps, one per port, with
//! no rule of its own, and passes `prevResult` on as its result.
//!
//! The other plugin's bridge joins our network sets when it can be found
//! (the result's first interface outside the sandbox that is a bridge), so
//! the hairpin, 127.0.0.1 and CVE-2020-8558 rules serve it as they serve
//! ours. DEL removes this attachment's elements and nothing else.

use serde_json::Value;

use super::attachment::{self, system};
use super::config::Config;
use super::protocol::{CniError, Invocation, code};
use super::routed;
use crate::firewall::{self, Firewall, Publication};
use crate::netlink::Netlink;
use crate::netlink::sysctl::Setting;
use crate::plan::apply;
use crate::reserve::Reservations;
use crate::values::Subnet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What we take from `prevResult`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// Its IPv6 address and prefix length, when the previous plugin gave
    /// it one (dual stack): ports are published on IPv6 to it.
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// The places of `address` and of the IPv6 one in `prevResult.ips`.
    pub address_at: usize,
    pub ipv6_at: Option<usize>,
    /// The host bridge of the previous plugin, if one is named.
    pub bridge: Option<String>,
}

/// Whether `prevResult.ips` of a configuration holds an IPv6 address: a
/// port mapping without a host address is then published on both
/// families.
pub fn has_ipv6(prev: &Value) -> bool {
    prev.get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address")?.as_str())
        .any(|text| text.contains(':'))
}

/// The container's IPv4 address from `prevResult.ips` (and its IPv6 one,
/// if any), and the bridge.
pub fn previous(prev: &Value, is_bridge: impl Fn(&str) -> bool) -> Result<Previous, CniError> {
    let invalid = |why: &str| CniError::new(code::CONFIG, format!("prevResult: {why}"));
    let ips = prev
        .get("ips")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("has no ips"))?;
    let ipv6 = match first_address::<Ipv6Addr>(ips, 128)? {
        // As for IPv4: ports are published to it.
        Some((_, text, address, _))
            if address.is_loopback()
                || address.is_unspecified()
                || address.is_multicast()
                || address.is_unicast_link_local() =>
        {
            return Err(invalid(&format!(
                "{text:?} is not an address a container can have"
            )));
        }
        found => found.map(|(at, _, address, prefix_len)| (at, address, prefix_len)),
    };
    let (address_at, text, address, prefix_len) =
        first_address::<Ipv4Addr>(ips, 32)?.ok_or_else(|| invalid("has no IPv4 address in ips"))?;
    // Ports are published to this address: one of the host's own ranges
    // would send outside traffic to the host's loopback services.
    if address.is_loopback()
        || address.is_unspecified()
        || address.is_multicast()
        || address.is_broadcast()
    {
        return Err(invalid(&format!(
            "{text:?} is not an address a container can have"
        )));
    }
    let bridge = prev
        .get("interfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| {
            i.get("sandbox")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
        .filter_map(|i| i.get("name")?.as_str())
        .find(|name| is_bridge(name))
        .map(str::to_string);
    Ok(Previous {
        address,
        prefix_len,
        ipv6: ipv6.map(|(_, address, prefix_len)| (address, prefix_len)),
        address_at,
        ipv6_at: ipv6.map(|(at, ..)| at),
        bridge,
    })
}

/// The first address of family `A` in `ips`: its place, as written, and
/// with its prefix length (at most `max_len`, else code 7 naming it).
fn first_address<A: std::str::FromStr>(
    ips: &[Value],
    max_len: u8,
) -> Result<Option<(usize, &str, A, u8)>, CniError> {
    let found = ips.iter().enumerate().find_map(|(at, ip)| {
        let text = ip.get("address")?.as_str()?;
        let (addr, len) = text.split_once('/')?;
        Some((at, text, addr.parse::<A>().ok()?, len))
    });
    let Some((at, text, address, len)) = found else {
        return Ok(None);
    };
    let prefix_len = len
        .parse::<u8>()
        .ok()
        .filter(|len| *len <= max_len)
        .ok_or_else(|| {
            CniError::new(
                code::CONFIG,
                format!("prevResult: {text:?}: the prefix length must be 0 to {max_len}"),
            )
        })?;
    Ok(Some((at, text, address, prefix_len)))
}

/// The names of `prevResult`'s host-side interfaces that are bridges in
/// this network namespace (asked over netlink: /sys may show another's).
async fn bridges(prev: &Value) -> Result<Vec<String>, CniError> {
    let nl = Netlink::connect().map_err(|e| system("netlink", &e))?;
    let mut found = Vec::new();
    let names = prev
        .get("interfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("name")?.as_str());
    for name in names {
        if crate::netlink::ifname_problem(name).is_some() {
            continue;
        }
        if let Ok(Some(link)) = crate::netlink::link_state(&nl, name).await {
            if link.is_bridge {
                found.push(name.to_string());
            }
        }
    }
    Ok(found)
}

/// ADD chained: the record, the network's elements and sysctls for the
/// previous plugin's bridge, then this container's port elements in one
/// batch. Returns `prevResult` to pass on.
pub async fn add(
    invocation: &Invocation,
    config: &Config,
    prev: &Value,
) -> Result<Value, CniError> {
    let bridges = bridges(prev).await?;
    let previous = previous(prev, |name| bridges.iter().any(|b| b == name))?;
    let ours = match previous.bridge.as_deref() {
        Some(bridge) if routed::is_ours(config, bridge)? => Some(bridge),
        _ => None,
    };
    if let Some(bridge) = ours {
        // Its network sets would take the previous plugin's subnet.
        return Err(CniError::new(
            code::CONFIG,
            format!(
                "prevResult.interfaces: {bridge} is a bridge of this plugin's own networks, \
                 not the previous plugin's"
            ),
        ));
    }
    attachment::check_ports(config)?;
    let mut addresses = vec![(previous.address_at, IpAddr::V4(previous.address))];
    if let (Some(at), Some((address, _))) = (previous.ipv6_at, previous.ipv6) {
        addresses.push((at, IpAddr::V6(address)));
    }
    routed::check(config, &addresses)?;
    let mut registration = attachment::claim(invocation, config, true, None)?;
    let firewall = Firewall::open(&config.state_dir).map_err(|e| system("firewall", &e))?;
    let subnet = previous.bridge.as_ref().and_then(|bridge| {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(previous.prefix_len))
            .unwrap_or(0);
        let network = Ipv4Addr::from(u32::from(previous.address) & mask);
        Some((bridge, Subnet::new(network, previous.prefix_len).ok()?))
    });
    if let Some((bridge, subnet)) = subnet {
        // The previous plugin's IPv6 prefix, as its IPv4 subnet: it
        // serves this bridge.
        let subnet6 = previous.ipv6.map(|(address, prefix_len)| {
            let host_bits = u128::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
            (Ipv6Addr::from(u128::from(address) & !host_bits), prefix_len)
        });
        check_network(prev, &previous, bridge, subnet, subnet6)?;
        let mut settings = vec![Setting::ip_forward(), Setting::route_localnet(bridge)];
        if subnet6.is_some() {
            settings.push(Setting::ipv6_forwarding());
        }
        for setting in settings {
            setting.apply().map_err(|e| system("sysctl", &e))?;
        }
        firewall
            .ensure_network(bridge, &subnet, subnet6)
            .map_err(|e| system("firewall", &e))?;
        // The network's, as the bridge is (tagged with it, gone with it):
        // an ADD failing after this leaves them for the network's next ADD,
        // whose configuration names them too.
        firewall
            .ensure_no_masquerade(bridge, &config.no_masquerade, &config.no_masquerade6)
            .map_err(|e| system("firewall", &e))?;
    } else {
        firewall.ensure_base().map_err(|e| system("firewall", &e))?;
    }
    let mut publication = Publication {
        owner: attachment::owner(&invocation.container_id, &invocation.ifname),
        address: previous.address,
        address6: previous.ipv6.map(|(address, _)| address),
        // Not our interface: no guards, ports only; nor a generation:
        // its traffic leaves by the other plugin's bridge, where the
        // generation rules do not look (DEL forgets its connections).
        veth: String::new(),
        ports: config.ports.clone(),
        generation: None,
        routed: false,
    };
    let publication = apply::publish(
        &firewall,
        &config.state_dir,
        &mut publication,
        &mut Reservations::default(),
    )
    .await
    .map_err(|err| match err {
        apply::Error::Firewall(firewall::Error::PortTaken(taken)) => {
            CniError::new(code::PORT_TAKEN, taken.to_string())
        }
        err => system("publishing", &err),
    })?;
    let recorded = registration.update(|record| {
        record.address = Some(publication.address);
        record.address6 = publication.address6;
        record.ports = publication.ports.iter().map(|&p| p.into()).collect();
    });
    if let Err(err) = recorded {
        if let Err(undo) = firewall.unpublish(&publication) {
            tracing::warn!("undoing a failed ADD: {}", crate::error_chain::Chain(&undo));
        }
        return Err(system("writing the record", &err));
    }
    firewall.close();
    registration.keep();
    let mut result = prev.clone();
    result["cniVersion"] = Value::String(config.cni_version.clone());
    Ok(result)
}

/// Refuses (code 7, naming the address) a network of the previous
/// plugin's bridge that reaches past it: its subnet, from the address's
/// prefix, overlapping a route on another link or an address of the
/// host's there. Our sets would make that
/// other network's traffic the bridge's: masqueraded as a container's
/// when it leaves, and judged by the container rules.
fn check_network(
    prev: &Value,
    previous: &Previous,
    bridge: &str,
    subnet: Subnet,
    subnet6: Option<(Ipv6Addr, u8)>,
) -> Result<(), CniError> {
    let subnet6 = subnet6.and_then(|(network, len)| crate::values::Subnet6::new(network, len).ok());
    let found = crate::netlink::overlap_beside(bridge, subnet, subnet6)
        .map_err(|e| system("routes", &e))?;
    let Some(found) = found else {
        return Ok(());
    };
    let at = match found.subnet.contains(':') {
        true => previous.ipv6_at.unwrap_or(previous.address_at),
        false => previous.address_at,
    };
    let text = prev["ips"][at]["address"].as_str().unwrap_or_default();
    Err(CniError::new(
        code::CONFIG,
        format!(
            "prevResult.ips[{at}]: {text:?} makes {} the network of {bridge}, which {} on {}: \
             not the previous plugin's network alone",
            found.subnet, found.meets, found.interface
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_and_bridge_come_from_the_reference_bridges_result() {
        let prev = serde_json::json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:aa:aa:aa:aa:aa"},
                {"name": "veth1234", "mac": "bb:bb:bb:bb:bb:bb"},
                {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/netns/x"}
            ],
            "ips": [
                {"address": "fd00::2/64", "interface": 2},
                {"address": "10.22.0.5/16", "gateway": "10.22.0.1", "interface": 2}
            ]
        });
        let found = previous(&prev, |name| name == "cni0").unwrap();
        assert_eq!(found.address, Ipv4Addr::new(10, 22, 0, 5));
        assert_eq!(found.ipv6, Some(("fd00::2".parse().unwrap(), 64)));
        assert!(has_ipv6(&prev));
        assert_eq!(found.prefix_len, 16);
        assert_eq!(found.bridge.as_deref(), Some("cni0"));
        let none = previous(&serde_json::json!({"ips": []}), |_| true).unwrap_err();
        assert_eq!(none.code, 7);
    }

    #[test]
    fn a_prev_result_address_with_a_bad_prefix_or_of_the_hosts_own_ranges_is_code_7() {
        for address in [
            "10.1.5.77/99",
            "127.0.0.1/8",
            "0.0.0.0/0",
            "224.0.0.1/4",
            "fd00::2/129",
            "::1/128",
            "fe80::2/64",
            "ff02::1/16",
        ] {
            let mut ips = vec![serde_json::json!({"address": address})];
            if address.contains(':') {
                ips.push(serde_json::json!({"address": "10.22.0.5/16"}));
            }
            let prev = serde_json::json!({ "ips": ips });
            let err = previous(&prev, |_| true).unwrap_err();
            assert_eq!(err.code, 7, "{address}: {}", err.msg);
            assert!(err.msg.contains(address), "{}", err.msg);
        }
    }
}
