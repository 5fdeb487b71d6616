//! Which families a published port is on. A `-p` value without a host
//! address publishes on every address of every family the network has (one
//! mapping each, so one reservation and one element each, as netavark
//! does); `0.0.0.0` and `[::]` and a given address are one family already.

use crate::values::{HostIp, PortMapping};

/// An IPv6 host address on a network without IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot publish {0}: an IPv6 host address needs --ipv6")]
pub struct NeedsIpv6(pub PortMapping);

/// Every mapping with its family decided (`host_ip` never None), in the
/// order given, an unqualified one as its IPv4 mapping then its IPv6 one.
pub fn per_family(mappings: &[PortMapping], ipv6: bool) -> Result<Vec<PortMapping>, NeedsIpv6> {
    let mut out = Vec::with_capacity(mappings.len() * 2);
    for mapping in mappings {
        let with = |host_ip| PortMapping {
            host_ip: Some(host_ip),
            ..*mapping
        };
        match mapping.host_ip {
            None => {
                out.push(with(HostIp::AnyV4));
                if ipv6 {
                    out.push(with(HostIp::AnyV6));
                }
            }
            Some(ip) if ip.is_ipv6() && !ipv6 => return Err(NeedsIpv6(*mapping)),
            Some(_) => out.push(*mapping),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::publish::parse;

    fn families(spec: &str, ipv6: bool) -> Vec<Option<HostIp>> {
        per_family(&parse(spec).unwrap(), ipv6)
            .unwrap()
            .iter()
            .map(|m| m.host_ip)
            .collect()
    }

    #[test]
    fn no_address_is_both_families_with_ipv6_and_ipv4_without() {
        assert_eq!(
            families("8080:80", true),
            [Some(HostIp::AnyV4), Some(HostIp::AnyV6)]
        );
        assert_eq!(families("8080:80", false), [Some(HostIp::AnyV4)]);
        let both = per_family(&parse("8080:80/udp").unwrap(), true).unwrap();
        assert!(both.iter().all(|m| m.host_port == Some(8080)
            && m.container_port == 80
            && m.protocol == crate::values::Protocol::Udp));
    }

    #[test]
    fn an_address_or_an_unspecified_address_is_its_family_only() {
        assert_eq!(families("0.0.0.0:8080:80", true), [Some(HostIp::AnyV4)]);
        assert_eq!(families("[::]:8080:80", true), [Some(HostIp::AnyV6)]);
        assert_eq!(
            families("[::1]:8080:80", true),
            [Some(HostIp::V6(Ipv6Addr::LOCALHOST))]
        );
        assert_eq!(
            families("127.0.0.1:8080:80", true),
            [Some(HostIp::V4(Ipv4Addr::LOCALHOST))]
        );
    }

    #[test]
    fn an_ipv6_address_without_ipv6_is_refused() {
        let err = per_family(&parse("[::]:8080:80").unwrap(), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot publish [::]:8080->80/tcp: an IPv6 host address needs --ipv6"
        );
    }
}
