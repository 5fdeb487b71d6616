//! `-p/--publish` in docker's syntax, parsed and checked before anything is
//! created: `[HOSTIP:][HOSTPORT:]CTRPORT[/PROTO]`, with equal-length ranges
//! (`8000-8010:9000-9010`) expanding to one mapping per port, and a host
//! range for one container port (`8000-8010:80`) published on the first
//! free port of it, as docker and podman do. An IPv6 host
//! address is in brackets (`[::]:8080:80`, `[2001:db8::1]:8080:80`), as
//! docker and netavark write it; `0.0.0.0` is every IPv4 address only, `[::]`
//! every IPv6 address only, and no address every address of each family
//! the network has (see `plan::families`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::values::{HostIp, PortMapping, Protocol, quoted};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid --publish {}: {reason}", quoted(.spec))]
pub struct PublishError {
    pub spec: String,
    pub reason: String,
}

/// Parses one `--publish` value into its port mappings.
pub fn parse(spec: &str) -> Result<Vec<PortMapping>, PublishError> {
    let fail = |reason: String| PublishError {
        spec: spec.to_string(),
        reason,
    };
    let (ports, protocol) = match spec.rsplit_once('/') {
        Some((ports, "tcp")) => (ports, Protocol::Tcp),
        Some((ports, "udp")) => (ports, Protocol::Udp),
        Some((_, other)) => {
            return Err(fail(format!(
                "unknown protocol {} (tcp or udp)",
                quoted(other)
            )));
        }
        None => (spec, Protocol::Tcp),
    };
    let expected = || fail("expected [HOSTIP:][HOSTPORT:]CTRPORT[/tcp|/udp]".into());
    let (host_ip, host, container) = if let Some(bracketed) = ports.strip_prefix('[') {
        let (ip, rest) = bracketed
            .split_once(']')
            .ok_or_else(|| fail("IPv6 host address without its closing \"]\"".into()))?;
        let ip = ipv6_host(ip).map_err(fail)?;
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.as_slice() {
            ["", host, container] => (Some(HostIp::from_ip(ip.into())), *host, *container),
            _ => {
                return Err(fail(
                    "expected [IPV6]:[HOSTPORT]:CTRPORT after the address".into(),
                ));
            }
        }
    } else {
        let parts: Vec<&str> = ports.split(':').collect();
        match parts.as_slice() {
            [container] => (None, "", *container),
            [host, container] => (None, *host, *container),
            [ip, host, container] => {
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| fail(format!("bad host address {}", quoted(ip))))?;
                (Some(HostIp::from_ip(ip.into())), *host, *container)
            }
            _ if ports.parse::<IpAddr>().is_ok() || ports.matches(':').count() > 3 => {
                return Err(fail(
                    "an IPv6 host address goes in brackets: [ADDR]:HOSTPORT:CTRPORT".into(),
                ));
            }
            _ => return Err(expected()),
        }
    };
    let container = range(container).map_err(fail)?;
    let host = if host.is_empty() {
        None
    } else {
        Some(range(host).map_err(fail)?)
    };
    let one = |host_port, host_range| PortMapping {
        host_ip,
        host_port,
        host_range,
        container_port: container.0,
        protocol,
    };
    match host {
        // docker's and podman's choice: the first free port of the range
        // (see `reserve`).
        Some(host) if host.0 != host.1 && container.0 == container.1 => {
            Ok(vec![one(None, Some(host))])
        }
        None if container.0 != container.1 => Err(fail(
            "a container port range needs a host port range of the same length".into(),
        )),
        None => Ok(vec![one(None, None)]),
        Some(host) if host.1 - host.0 != container.1 - container.0 => Err(fail(format!(
            "host range {}-{} and container range {}-{} differ in length",
            host.0, host.1, container.0, container.1
        ))),
        Some(host) => Ok((0..=container.1 - container.0)
            .map(|i| PortMapping {
                host_port: Some(host.0 + i),
                container_port: container.0 + i,
                ..one(None, None)
            })
            .collect()),
    }
}

/// The address between `[` and `]`: IPv6 only, without a zone and not
/// link-local (a port is published on the host's addresses, not on one
/// link's), and not an IPv4-mapped address (that is IPv4: written without
/// brackets).
fn ipv6_host(text: &str) -> Result<Ipv6Addr, String> {
    if text.contains('%') {
        return Err(format!(
            "zone ids are not supported (host address [{text}])"
        ));
    }
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) if ip.to_ipv4_mapped().is_some() => Err(format!(
            "[{text}] is an IPv4-mapped address: write {} without brackets",
            ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)
        )),
        // Without its zone the kernel refuses to bind it (EINVAL), and with
        // one it names a single link; link-local destinations are never
        // DNATed (see the ip6 table), so nothing could reach the container.
        Ok(IpAddr::V6(ip)) if ip.is_unicast_link_local() => Err(format!(
            "[{text}] is a link-local address, which is no host address to publish on: use a global or unique local one"
        )),
        Ok(IpAddr::V6(ip)) => Ok(ip),
        Ok(IpAddr::V4(_)) => Err(format!(
            "[{text}] is an IPv4 address: write it without brackets"
        )),
        Err(_) => Err(format!("bad IPv6 host address [{text}]")),
    }
}

/// `parse`, refusing an IPv6 host address when the network has no IPv6.
pub fn parse_for(spec: &str, ipv6: bool) -> Result<Vec<PortMapping>, PublishError> {
    let mappings = parse(spec)?;
    if !ipv6
        && mappings
            .iter()
            .any(|m| m.host_ip.is_some_and(HostIp::is_ipv6))
    {
        return Err(PublishError {
            spec: spec.to_string(),
            reason: "an IPv6 host address needs --ipv6".into(),
        });
    }
    Ok(mappings)
}

/// `N` or `N-M`, each 1..=65535, N ≤ M.
fn range(text: &str) -> Result<(u16, u16), String> {
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(text)?, port(text)?),
    };
    if first > last {
        return Err(format!("range {text} runs backwards"));
    }
    Ok((first, last))
}

/// Decimal digits only: `u32::from_str` would also take `+80`, which
/// docker refuses.
fn port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad port {}", quoted(text)));
    }
    match text.parse::<u32>() {
        Ok(0) => Err("port 0 is not a port".into()),
        Ok(n) if n <= 65535 => Ok(n as u16),
        Ok(n) => Err(format!("port {n} is above 65535")),
        Err(_) => Err(format!("bad port {}", quoted(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortMapping {
        let mut v = parse(spec).unwrap();
        assert_eq!(v.len(), 1, "{spec}");
        v.remove(0)
    }

    #[test]
    fn host_port_to_container_port_defaults_to_tcp_on_every_address() {
        assert_eq!(
            one("8080:8000"),
            PortMapping {
                host_ip: None,
                host_port: Some(8080),
                host_range: None,
                container_port: 8000,
                protocol: Protocol::Tcp
            }
        );
    }

    #[test]
    fn host_address_and_udp() {
        let m = one("127.0.0.1:5353:53/udp");
        assert_eq!(m.host_ip, Some(HostIp::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(m.protocol, Protocol::Udp);
        assert_eq!((m.host_port, m.container_port), (Some(5353), 53));
        assert_eq!(
            one("0.0.0.0:80:80").host_ip,
            Some(HostIp::AnyV4),
            "0.0.0.0 means every IPv4 address"
        );
    }

    #[test]
    fn container_port_alone_picks_the_host_port() {
        assert_eq!(one("8000").host_port, None);
        assert_eq!(one("127.0.0.1::8000").host_port, None);
        assert_eq!(one(":8000").host_port, None);
        assert_eq!(
            one("127.0.0.1::8000").host_ip,
            Some(HostIp::V4(Ipv4Addr::LOCALHOST))
        );
    }

    #[test]
    fn equal_ranges_expand_port_by_port() {
        let v = parse("8000-8002:9000-9002/udp").unwrap();
        let pairs: Vec<_> = v
            .iter()
            .map(|m| (m.host_port.unwrap(), m.container_port))
            .collect();
        assert_eq!(pairs, [(8000, 9000), (8001, 9001), (8002, 9002)]);
        assert!(v.iter().all(|m| m.protocol == Protocol::Udp));
    }

    #[test]
    fn a_host_range_for_one_container_port_is_one_mapping_picked_in_the_range() {
        for (spec, host_ip, protocol) in [
            ("8000-8002:9000", None, Protocol::Tcp),
            (
                "127.0.0.1:8000-8002:9000/udp",
                Some(HostIp::V4(Ipv4Addr::LOCALHOST)),
                Protocol::Udp,
            ),
            ("[::]:8000-8002:9000", Some(HostIp::AnyV6), Protocol::Tcp),
        ] {
            assert_eq!(
                one(spec),
                PortMapping {
                    host_ip,
                    host_port: None,
                    host_range: Some((8000, 8002)),
                    container_port: 9000,
                    protocol,
                },
                "{spec}"
            );
        }
        assert_eq!(one("8000-8002:9000").to_string(), "8000-8002->9000/tcp");
        assert_eq!(
            one("127.0.0.1:8000-8002:9000/udp").to_string(),
            "127.0.0.1:8000-8002->9000/udp"
        );
        // A range of one port is that port.
        assert_eq!(one("8000-8000:9000").host_port, Some(8000));
        assert_eq!(one("8000-8000:9000").host_range, None);
    }

    #[test]
    fn bad_specs_are_named_with_the_reason() {
        for (spec, reason) in [
            ("0:80", "port 0"),
            ("70000:80", "above 65535"),
            ("8000-8010:9000-9005", "differ in length"),
            ("9000-9005", "same length"),
            ("8010-8000:9010-9000", "backwards"),
            ("8010-8000:9000", "backwards"),
            ("8000-70000:9000", "above 65535"),
            ("1.2.3:80:80", "bad host address"),
            ("80:80/sctp", "unknown protocol"),
            ("[::1", "closing \"]\""),
            ("[::1]80:80", "after the address"),
            ("[::1]:80", "after the address"),
            ("[1.2.3.4]:80:80", "IPv4 address: write it without brackets"),
            (
                "[::ffff:1.2.3.4]:80:80",
                "IPv4-mapped address: write 1.2.3.4",
            ),
            ("[fe80::1%eth0]:80:80", "zone ids"),
            ("[fe80::1%25eth0]:80:80", "zone ids"),
            (
                "[fe80::1]:80:80",
                "[fe80::1] is a link-local address, which is no host address",
            ),
            ("[febf::1]:80:80", "[febf::1] is a link-local address"),
            ("[::g]:80:80", "bad IPv6 host address [::g]"),
            ("::1:80:80", "goes in brackets"),
            ("2001:db8::1:80:80", "goes in brackets"),
            ("[::1]:0:80", "port 0"),
            ("a:b:c:d", "expected"),
            ("http:80", "bad port"),
            ("+80:80", "bad port \"+80\""),
            ("80:+80", "bad port \"+80\""),
            ("8000-+8001:80-81", "bad port \"+8001\""),
            ("123456:80", "above 65535"),
            (" 80:80", "bad port"),
            ("", "bad port"),
        ] {
            let err = parse(spec).unwrap_err();
            assert_eq!(err.spec, spec);
            assert!(err.reason.contains(reason), "{spec}: {}", err.reason);
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid --publish {spec:?}"))
            );
        }
    }

    #[test]
    fn ipv6_host_addresses_are_bracketed_and_each_is_one_family() {
        assert_eq!(one("[::]:8080:8000").host_ip, Some(HostIp::AnyV6));
        assert_eq!(
            one("[::1]:8080:8000").host_ip,
            Some(HostIp::V6(Ipv6Addr::LOCALHOST))
        );
        let m = one("[2001:db8::1]:8080:8000/udp");
        assert_eq!(m.host_ip, Some(HostIp::V6("2001:db8::1".parse().unwrap())));
        assert_eq!((m.host_port, m.container_port), (Some(8080), 8000));
        assert_eq!(m.protocol, Protocol::Udp);
        assert_eq!(one("[::1]::8000").host_port, None);
        assert_eq!(one("8080:8000").host_ip, None, "no address: every family");
        let v = parse("[::]:8000-8002:9000-9002").unwrap();
        assert_eq!(v.len(), 3);
        assert!(v.iter().all(|m| m.host_ip == Some(HostIp::AnyV6)));
        assert_eq!(v[2].host_port, Some(8002));
    }

    #[test]
    fn an_ipv6_host_address_without_ipv6_is_refused_naming_the_value() {
        for spec in ["[::]:8080:80", "[::1]:8080:80/udp", "[2001:db8::1]::80"] {
            let err = parse_for(spec, false).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid --publish {}: an IPv6 host address needs --ipv6",
                    quoted(spec)
                )
            );
            assert!(parse_for(spec, true).is_ok());
        }
        assert!(parse_for("8080:80", false).is_ok());
        assert!(parse_for("0.0.0.0:8080:80", false).is_ok());
    }

    #[test]
    fn mappings_print_like_docker_port() {
        assert_eq!(one("[::1]:8080:80").to_string(), "[::1]:8080->80/tcp");
        assert_eq!(
            one("127.0.0.1:8080:80").to_string(),
            "127.0.0.1:8080->80/tcp"
        );
        assert_eq!(one("53/udp").to_string(), "?->53/udp");
    }
}
