//! A plan as a person reads it, as `run --dry-run` prints it: each netlink
//! request as the `ip` command that makes it, each sysctl as `sysctl -w`,
//! and the nftables part as the `nft` commands that add the same elements.
//! `CONTAINER` stands for the container's network namespace, which a dry
//! run never creates.

use std::fmt;

use super::{ContainerPart, NetworkPart, NetworkPlan};
use crate::firewall::{Mac, Target};
use crate::netlink::sysctl::Setting;

impl fmt::Display for NetworkPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NetworkPlan { network, container } = self;
        let owner = &container.publication.owner;
        let subnet6 = match network.subnet6 {
            Some(subnet6) => format!(", {subnet6}"),
            None => String::new(),
        };
        writeln!(
            f,
            "# container {owner} on network {} ({}{subnet6})",
            network.bridge, network.subnet
        )?;
        network.fmt_netlink(f)?;
        container.fmt_netlink(f, &network.bridge)?;
        network.fmt_nft(f)?;
        container.fmt_nft(f)
    }
}

impl NetworkPart {
    fn fmt_netlink(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bridge = &self.bridge;
        if self.create_bridge {
            let gateway = self.subnet.gateway();
            let mac = Mac(crate::netlink::mac_for(gateway));
            writeln!(f, "ip link add {bridge} address {mac} type bridge")?;
            writeln!(
                f,
                "ip addr add {gateway}/{} dev {bridge}",
                self.subnet.prefix_len()
            )?;
            writeln!(f, "ip link set {bridge} up")?;
        }
        if let Some(subnet6) = self.subnet6 {
            let unless = if self.create_bridge {
                ""
            } else {
                "  # unless it is there"
            };
            writeln!(
                f,
                "ip -6 addr add {}/{} dev {bridge} nodad{unless}",
                subnet6.gateway(),
                subnet6.prefix_len()
            )?;
        }
        for sysctl in &self.sysctls {
            writeln!(f, "sysctl -w {}={}", sysctl.key, sysctl.value)?;
        }
        Ok(())
    }

    fn fmt_nft(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.load_base {
            // The defines the file needs, as the supervisor fills them in:
            // without them nft refuses it (unknown variable $VERSION).
            let defines: String = crate::firewall::defines()
                .iter()
                .map(|d| format!("-D {}={} ", d.name, d.value))
                .collect();
            writeln!(f, "nft {defines}-f nft/supervisor.nft")?;
        }
        let bridge = &self.bridge;
        writeln!(f, "add element ip supervisor bridges {{ \"{bridge}\" }}")?;
        writeln!(
            f,
            "add element ip supervisor same_bridge {{ \"{bridge}\" . \"{bridge}\" }}"
        )?;
        writeln!(
            f,
            "add element ip supervisor subnets {{ {} comment \"{bridge}\" }}",
            self.subnet
        )?;
        if let Some(subnet6) = self.subnet6 {
            writeln!(f, "add element ip6 supervisor bridges {{ \"{bridge}\" }}")?;
            writeln!(
                f,
                "add element ip6 supervisor same_bridge {{ \"{bridge}\" . \"{bridge}\" }}"
            )?;
            writeln!(
                f,
                "add element ip6 supervisor subnets6 {{ {subnet6} comment \"{bridge}\" }}"
            )?;
        }
        Ok(())
    }
}

impl ContainerPart {
    fn fmt_netlink(&self, f: &mut fmt::Formatter<'_>, bridge: &str) -> fmt::Result {
        let host = &self.host_ifname;
        let peer = &self.ifname;
        let mac = Mac(self.mac);
        match self.ipv6 {
            Some((address6, _)) => {
                writeln!(f, "# lease {} and {address6} on {bridge}", self.address)?
            }
            None => writeln!(f, "# lease {} on {bridge}", self.address)?,
        }
        writeln!(
            f,
            "ip link add {host} master {bridge} up type veth peer name {peer} address {mac} netns CONTAINER"
        )?;
        writeln!(f, "ip link set {host} type bridge_slave hairpin on")?;
        writeln!(f, "ip -n CONTAINER link set lo up")?;
        // In the run's order: with IPv6, the peer's sysctls and both its
        // addresses while it is down (left to the kernel, the link-local
        // address comes with the carrier, and adding it after fails).
        if let Some((address6, subnet6)) = self.ipv6 {
            for sysctl in Setting::container_ipv6(peer) {
                writeln!(
                    f,
                    "ip netns exec CONTAINER sysctl -w {}={}",
                    sysctl.key, sysctl.value
                )?;
            }
            writeln!(
                f,
                "ip -n CONTAINER -6 addr add {}/64 dev {peer} nodad",
                crate::netlink::link_local_for(self.mac)
            )?;
            writeln!(
                f,
                "ip -n CONTAINER -6 addr add {address6}/{} dev {peer} nodad",
                subnet6.prefix_len()
            )?;
        }
        writeln!(f, "ip -n CONTAINER link set {peer} up")?;
        writeln!(
            f,
            "ip -n CONTAINER addr add {}/{} dev {peer}",
            self.address, self.prefix_len
        )?;
        writeln!(
            f,
            "ip -n CONTAINER route add default via {} dev {peer} proto static",
            self.gateway
        )?;
        if let Some((_, subnet6)) = self.ipv6 {
            writeln!(
                f,
                "ip -n CONTAINER -6 route add default via {} dev {peer} proto static",
                subnet6.gateway()
            )?;
        }
        Ok(())
    }

    fn fmt_nft(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let comment = self.publication.owner.comment();
        for element in self.publication.elements() {
            // nft takes a map element's comment after its key, before the
            // colon: `KEY comment "…" : DATA`.
            write!(
                f,
                "add element {} {{ {} comment \"{comment}\"",
                set_name(element.target),
                element.label.key(),
            )?;
            if let Some(data) = element.label.data() {
                write!(f, " : {data}")?;
            }
            writeln!(f, " }}")?;
        }
        Ok(())
    }
}

/// The nft set a target names, with its family: `ip supervisor tcp_ports`,
/// `ip6 supervisor tcp_ports`.
fn set_name(target: Target) -> String {
    format!("{} supervisor {}", target.family(), target.name())
}
