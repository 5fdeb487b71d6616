//! The network configuration an engine sends on stdin, checked field by
//! field: a document that is not JSON is code 6, a field we cannot use is
//! code 7 naming the field.
//!
//! ```json
//! {"cniVersion":"1.0.0","name":"NET","type":"supervisor","bridge":"sv0",
//!  "subnet":"10.88.7.0/24","stateDir":"/run/supervisor",
//!  "noMasqueradeCidrs":["10.244.0.0/16"],"capabilities":{"portMappings":true},
//!  "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":8000,
//!                                     "protocol":"tcp","hostIP":""}]}}
//! ```
//!
//! `bridge` and `subnet` default as `run`'s do (`sv0`, 172.16.0.0/24).
//! Dual stack as `run --ipv6`: `"subnet6":"fd00:7::/64"` (the key beside
//! `subnet`, as host-local's `ranges` give each family its own `subnet`),
//! or `"ipv6":true` for `run`'s default subnet6; each container's IPv6
//! address is derived from its IPv4 one, as `run`'s is. `noMasqueradeCidrs`
//! takes networks of either family, and a port mapping without `hostIP` is
//! published on both families (`0.0.0.0` or `::` one only, as netavark).
//!
//! `"mode": "routed"` (the default is `"bridge"`) gives each container a
//! routed veth of its own, on no bridge: its address a `/32`, the host
//! routing to it, the bridge holding only the gateway's address (see
//! `netlink::routed`). IPv4 only for now. A chained attachment has no mode.
//!
//! `stateDir` defaults to `$SUPERVISOR_STATE_DIR`, else `/run/supervisor`,
//! so a plugin and `run` with the same settings share leases and records.
//! With a `prevResult` the plugin is chained after another that made the
//! interface and address (see `chained`).

use std::collections::hash_map::{Entry, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::protocol::{CniError, code};
use crate::values::{DEFAULT_SUBNET6, HostIp, Port, Protocol, Subnet, Subnet6, quoted};

pub const DEFAULT_BRIDGE: &str = "sv0";
pub const DEFAULT_SUBNET: &str = "172.16.0.0/24";
pub const DEFAULT_STATE_DIR: &str = "/run/supervisor";

/// A checked network configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub cni_version: String,
    pub name: String,
    pub bridge: String,
    pub subnet: Subnet,
    /// Dual stack: the IPv6 subnet (`subnet6`, or `ipv6: true`).
    pub subnet6: Option<Subnet6>,
    /// `"mode": "routed"`: a routed veth per container, no bridge port.
    pub routed: bool,
    pub state_dir: PathBuf,
    /// Destinations the subnet's traffic reaches with its own source
    /// address (a cluster's pod range): network, prefix length.
    pub no_masquerade: Vec<(Ipv4Addr, u8)>,
    /// The IPv6 ones, for the subnet6's traffic.
    pub no_masquerade6: Vec<(Ipv6Addr, u8)>,
    /// `runtimeConfig.portMappings`, every host port given.
    pub ports: Vec<Port>,
    /// The host addresses of `ports` given as one (not `0.0.0.0`, `::` or
    /// none), each with its mapping's place in `portMappings`.
    pub host_ips: HostIps,
    /// The previous plugin's result, when chained.
    pub prev_result: Option<Value>,
    /// `cni.dev/valid-attachments` (GC): container id, interface.
    pub valid_attachments: Vec<(String, String)>,
}

/// Parses the document: code 6 when it is not a JSON object.
pub fn decode(stdin: &[u8]) -> Result<Map<String, Value>, CniError> {
    match serde_json::from_slice::<Value>(stdin) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(CniError::new(
            code::DECODE,
            "the network configuration is not a JSON object",
        )),
        Err(err) => Err(CniError::new(
            code::DECODE,
            format!("decoding the network configuration: {err}"),
        )),
    }
}

/// The `cniVersion` of a decoded document, if it has one.
pub fn version_of(doc: &Map<String, Value>) -> Option<&str> {
    doc.get("cniVersion").and_then(Value::as_str)
}

fn invalid(field: &str, why: impl std::fmt::Display) -> CniError {
    CniError::new(code::CONFIG, format!("{field}: {why}"))
}

fn string<'a>(doc: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, CniError> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

/// The plugin name engines run this binary by (`CNI_PATH/supervisor`).
pub const PLUGIN_TYPE: &str = "supervisor";

/// Whether `doc` is one plugin's configuration, and that plugin is us:
/// `type` is `supervisor`, or `program`, the file name we were run as
/// (installed under another name). A conflist (`plugins`) is the engine's
/// to read: taken as ours, its plugins' keys went unread and every default
/// was used. Keys we do not know are left alone, as the reference plugins
/// leave them.
pub fn check_entry(doc: &Map<String, Value>, program: Option<&str>) -> Result<(), CniError> {
    if doc.contains_key("plugins") {
        return Err(invalid(
            "plugins",
            "this is a conflist, which an engine reads from its configuration directory \
             (e.g. /etc/cni/net.d) and hands one plugin's entry at a time: install it there, \
             or give one entry of \"plugins\" with the list's name and cniVersion",
        ));
    }
    match string(doc, "type")? {
        None => Err(invalid(
            "type",
            format!(
                "is missing: a plugin's configuration names its plugin, \"type\":\"{PLUGIN_TYPE}\""
            ),
        )),
        Some(kind) if kind == PLUGIN_TYPE || Some(kind) == program => Ok(()),
        Some(kind) => Err(invalid(
            "type",
            format!(
                "{} is another plugin; this one is {PLUGIN_TYPE:?}",
                quoted(kind)
            ),
        )),
    }
}

/// Checks every field we use; `env_state_dir` is `$SUPERVISOR_STATE_DIR`.
pub fn parse(doc: &Map<String, Value>, env_state_dir: Option<&str>) -> Result<Config, CniError> {
    let cni_version = string(doc, "cniVersion")?
        .ok_or_else(|| invalid("cniVersion", "is missing"))?
        .to_string();
    let name = string(doc, "name")?
        .ok_or_else(|| invalid("name", "is missing"))?
        .to_string();
    if name.len() > NAME_MAX {
        // It lands in the record, in `ps` and in the engine's cache file
        // names: an unbounded one (a document holds nearly 4 MiB) is no name.
        return Err(invalid(
            "name",
            format!("{} is longer than {NAME_MAX} bytes", quoted(&name)),
        ));
    }
    if !network_name_ok(&name) {
        return Err(invalid(
            "name",
            format!(
                "{} may hold only letters, digits, '_', '.' and '-'",
                quoted(&name)
            ),
        ));
    }
    let bridge = string(doc, "bridge")?.unwrap_or(DEFAULT_BRIDGE).to_string();
    if let Some(why) = crate::network::bridge_name_problem(&bridge) {
        return Err(invalid("bridge", format!("{}: {why}", quoted(&bridge))));
    }
    let subnet = string(doc, "subnet")?
        .unwrap_or(DEFAULT_SUBNET)
        .parse::<Subnet>()
        .map_err(|err| invalid("subnet", err))?;
    let subnet6 = subnet6(doc, subnet)?;
    let routed = match string(doc, "mode")? {
        None | Some("bridge") => false,
        Some("routed") => true,
        Some(other) => {
            return Err(invalid(
                "mode",
                format!("{} is no mode: \"bridge\" or \"routed\"", quoted(other)),
            ));
        }
    };
    if routed && subnet6.is_some() {
        let field = if doc.contains_key("subnet6") {
            "subnet6"
        } else {
            "ipv6"
        };
        return Err(invalid(
            field,
            "routed mode is IPv4 only for now: leave IPv6 out, or use \"mode\": \"bridge\"",
        ));
    }
    let state_dir = PathBuf::from(
        string(doc, "stateDir")?
            .or(env_state_dir.filter(|d| !d.is_empty()))
            .unwrap_or(DEFAULT_STATE_DIR),
    );
    if !state_dir.is_absolute() {
        return Err(invalid("stateDir", "must be an absolute path"));
    }
    // As `--state-dir` is checked: one that is, or is under, a file is
    // refused saying so, not by the first file a command opens there.
    crate::state::parse_dir(&state_dir.to_string_lossy())
        .map_err(|why| invalid("stateDir", why))?;
    let mut no_masquerade = Vec::new();
    let mut no_masquerade6 = Vec::new();
    match doc.get("noMasqueradeCidrs") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let field = format!("noMasqueradeCidrs[{i}]");
                let text = item
                    .as_str()
                    .ok_or_else(|| invalid(&field, "must be a string"))?;
                let bad = |why| invalid(&field, format!("{}: {why}", quoted(text)));
                let prefix_len = if text.contains(':') {
                    let network = cidr6(text).map_err(bad)?;
                    no_masquerade6.push(network);
                    network.1
                } else {
                    let network = cidr(text).map_err(bad)?;
                    no_masquerade.push(network);
                    network.1
                };
                if prefix_len == 0 {
                    // The set is also the sources whose new connections
                    // the bridges accept: every address, from anywhere.
                    return Err(bad(
                        "a zero-length prefix is every address, which could then \
                         open connections to every container; give the cluster's pod range"
                            .to_string(),
                    ));
                }
            }
        }
        Some(_) => return Err(invalid("noMasqueradeCidrs", "must be a list")),
    }
    let runtime = match doc.get("runtimeConfig") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => return Err(invalid("runtimeConfig", "must be an object")),
    };
    let (ports, host_ips) = match runtime.and_then(|r| r.get("portMappings")) {
        None | Some(Value::Null) => (Vec::new(), Vec::new()),
        Some(Value::Array(items)) => {
            // Chained, the previous plugin's result says the families.
            let ipv6 = match doc.get("prevResult") {
                Some(prev @ Value::Object(_)) => super::chained::has_ipv6(prev),
                _ => subnet6.is_some(),
            };
            port_mappings(items, ipv6)?
        }
        Some(_) => return Err(invalid("runtimeConfig.portMappings", "must be a list")),
    };
    let valid_attachments = match doc.get("cni.dev/valid-attachments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = |f: &str| format!("cni.dev/valid-attachments[{i}].{f}");
                let get = |f: &str| {
                    item.get(f)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| invalid(&field(f), "must be a string"))
                };
                Ok((get("containerID")?, get("ifname")?))
            })
            .collect::<Result<_, CniError>>()?,
        Some(_) => return Err(invalid("cni.dev/valid-attachments", "must be a list")),
    };
    let prev_result = match doc.get("prevResult") {
        None | Some(Value::Null) => None,
        Some(value @ Value::Object(_)) => Some(value.clone()),
        Some(_) => return Err(invalid("prevResult", "must be an object")),
    };
    Ok(Config {
        cni_version,
        name,
        bridge,
        subnet,
        subnet6,
        routed,
        state_dir,
        no_masquerade,
        no_masquerade6,
        ports,
        host_ips,
        prev_result,
        valid_attachments,
    })
}

/// `subnet6`, or with `"ipv6": true` alone `run`'s default one; it must
/// hold every host number of `subnet`, as `run --subnet6` must.
fn subnet6(doc: &Map<String, Value>, subnet: Subnet) -> Result<Option<Subnet6>, CniError> {
    let ipv6 = match doc.get("ipv6") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(on)) => Some(*on),
        Some(_) => return Err(invalid("ipv6", "must be true or false")),
    };
    let text = match (string(doc, "subnet6")?, ipv6) {
        (Some(_), Some(false)) => {
            return Err(invalid("subnet6", "is given, but ipv6 is false"));
        }
        (Some(text), _) => text,
        (None, Some(true)) => DEFAULT_SUBNET6,
        (None, _) => return Ok(None),
    };
    let subnet6: Subnet6 = text.parse().map_err(|err| invalid("subnet6", err))?;
    let v4_host_bits = 32 - u32::from(subnet.prefix_len());
    if subnet6.host_bits() < v4_host_bits {
        return Err(invalid(
            "subnet6",
            format!(
                "{subnet6} has fewer host addresses than subnet {subnet}, whose host numbers \
                 give the containers' IPv6 addresses; use a prefix of /{} or shorter",
                128 - v4_host_bits
            ),
        ));
    }
    Ok(Some(subnet6))
}

/// The longest network name, in bytes: a file name's limit, which the
/// spec sets none below.
const NAME_MAX: usize = 255;

/// The spec's network names: letters, digits, then also `_`, `.`, `-`.
fn network_name_ok(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `a.b.c.d/n` with no host bits set.
fn cidr(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, len) = text
        .split_once('/')
        .ok_or("expected an IPv4 network like 10.244.0.0/16")?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| "expected an IPv4 network like 10.244.0.0/16")?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or("the prefix length must be 0 to 32")?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    if u32::from(addr) & !mask != 0 {
        return Err(format!(
            "host bits set, did you mean {}/{len}?",
            Ipv4Addr::from(u32::from(addr) & mask)
        ));
    }
    Ok((addr, len))
}

/// `a:b::/n` with no host bits set.
fn cidr6(text: &str) -> Result<(Ipv6Addr, u8), String> {
    let syntax = "expected an IPv6 network like fd00:10::/56";
    let (addr, len) = text.split_once('/').ok_or(syntax)?;
    let addr: Ipv6Addr = addr.parse().map_err(|_| syntax)?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 128)
        .ok_or("the prefix length must be 0 to 128")?;
    let host_bits = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    if u128::from(addr) & host_bits != 0 {
        return Err(format!(
            "host bits set, did you mean {}/{len}?",
            Ipv6Addr::from(u128::from(addr) & !host_bits)
        ));
    }
    Ok((addr, len))
}

/// Host addresses given, each with its mapping's place in the list.
pub type HostIps = Vec<(usize, IpAddr)>;

/// `runtimeConfig.portMappings`, as the `portMappings` capability gives
/// them, each on the families it is published on: one without `hostIP` on
/// both when the network has IPv6 (`ipv6`), netavark's rule. Without IPv6
/// a mapping on an IPv6 host address is not ours to publish and is left
/// out, as the reference `portmap` does for a container without an
/// address of that family. `::1` is refused: the kernel cannot forward
/// connections from it, and no process of ours lives on to serve it as
/// `run`'s does.
fn port_mappings(items: &[Value], ipv6: bool) -> Result<(Vec<Port>, HostIps), CniError> {
    let mut ports: Vec<Port> = Vec::new();
    let mut host_ips = Vec::new();
    // Each published host port's place in `ports`: the earlier mapping of
    // a host port found by a lookup, not by a walk of every one before (a
    // 4 MiB list holds over 100,000 mappings: walked, 4 s of a real-time
    // ADD, and as long again for its DEL).
    let mut published = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let field = |f: &str| format!("runtimeConfig.portMappings[{i}].{f}");
        let number = |f: &str| -> Result<u16, CniError> {
            let value = item
                .get(f)
                .ok_or_else(|| invalid(&field(f), "is missing"))?;
            value
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(&field(f), format!("{value} is not a port (1-65535)")))
        };
        let host_port = number("hostPort")?;
        let container_port = number("containerPort")?;
        // A key of the wrong type is refused, not read as absent.
        let text = |f: &str| match item.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(invalid(&field(f), "must be a string")),
        };
        let protocol = match text("protocol")? {
            None | Some("") => Protocol::Tcp,
            Some(p) if p.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
            Some(p) if p.eq_ignore_ascii_case("udp") => Protocol::Udp,
            Some(p) => {
                return Err(invalid(
                    &field("protocol"),
                    format!("{} is not tcp or udp", quoted(p)),
                ));
            }
        };
        let host_ips = match text("hostIP")? {
            None | Some("") if ipv6 => vec![HostIp::AnyV4, HostIp::AnyV6],
            None | Some("") => vec![HostIp::AnyV4],
            Some(ip) => match ip.parse::<IpAddr>() {
                Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
                    // An IPv6 socket that is IPv6 only cannot bind it: a
                    // system error later, where this is the config's.
                    return Err(invalid(
                        &field("hostIP"),
                        format!("{ip:?} is an IPv4-mapped address: write the IPv4 address"),
                    ));
                }
                Ok(IpAddr::V6(_)) if !ipv6 => continue,
                Ok(IpAddr::V6(v6)) if v6.is_unicast_link_local() => {
                    // Unbindable without a zone, and never DNATed (see the
                    // ip6 table): as `run -p`.
                    return Err(invalid(
                        &field("hostIP"),
                        format!(
                            "{ip:?} is a link-local address, which is no host address to publish \
                             on: use a global or unique local one"
                        ),
                    ));
                }
                Ok(IpAddr::V6(v6)) if v6.is_loopback() => {
                    return Err(invalid(
                        &field("hostIP"),
                        format!(
                            "{ip:?}: the kernel cannot forward connections from ::1 and the \
                             plugin serves none itself; publish on \"\" or \"::\""
                        ),
                    ));
                }
                Ok(ip) => {
                    let host_ip = HostIp::from_ip(ip);
                    if host_ip.specific().is_some() {
                        host_ips.push((i, ip));
                    }
                    vec![host_ip]
                }
                Err(_) => {
                    return Err(invalid(
                        &field("hostIP"),
                        format!("{} is not an IP address", quoted(ip)),
                    ));
                }
            },
        };
        for host_ip in host_ips {
            let port = Port {
                host_ip,
                host_port,
                container_port,
                protocol,
            };
            // The same mapping twice is one; the same host port to two
            // container ports is a mistake of the request, not a port
            // another container holds.
            match published.entry((host_ip, host_port, protocol)) {
                Entry::Occupied(earlier) => {
                    let earlier: &Port = &ports[*earlier.get()];
                    if *earlier != port {
                        return Err(invalid(
                            &field("hostPort"),
                            format!("{port} and {earlier} publish the same host port"),
                        ));
                    }
                }
                Entry::Vacant(place) => {
                    place.insert(ports.len());
                    ports.push(port);
                }
            }
        }
    }
    Ok((ports, host_ips))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> Result<Config, CniError> {
        parse(&decode(json.as_bytes())?, None)
    }

    #[test]
    fn mode_is_bridge_by_default_routed_when_asked_and_routed_is_ipv4_only() {
        let doc = |extra: &str| format!(r#"{{"cniVersion":"1.0.0","name":"n"{extra}}}"#);
        assert!(!parsed(&doc("")).unwrap().routed);
        assert!(!parsed(&doc(r#","mode":"bridge""#)).unwrap().routed);
        assert!(parsed(&doc(r#","mode":"routed""#)).unwrap().routed);
        assert!(
            parsed(&doc(r#","mode":"routed","ipv6":false"#))
                .unwrap()
                .routed
        );
        let err = parsed(&doc(r#","mode":"l3""#)).unwrap_err();
        assert_eq!(
            (err.code, err.msg.as_str()),
            (7, r#"mode: "l3" is no mode: "bridge" or "routed""#)
        );
        for (extra, field) in [
            (r#","mode":"routed","ipv6":true"#, "ipv6"),
            (r#","mode":"routed","subnet6":"fd00:7::/64""#, "subnet6"),
        ] {
            let err = parsed(&doc(extra)).unwrap_err();
            assert_eq!(err.code, 7);
            assert!(
                err.msg
                    .starts_with(&format!("{field}: routed mode is IPv4 only")),
                "{}",
                err.msg
            );
        }
    }

    #[test]
    fn the_documented_example_parses_with_every_field() {
        let config = parsed(
            r#"{"cniVersion":"1.0.0","name":"NET","type":"supervisor","bridge":"sv0",
            "subnet":"10.88.7.0/24","stateDir":"/run/supervisor",
            "noMasqueradeCidrs":["10.244.0.0/16"],"capabilities":{"portMappings":true},
            "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":8000,
            "protocol":"tcp","hostIP":""}]}}"#,
        )
        .unwrap();
        assert_eq!(config.subnet.to_string(), "10.88.7.0/24");
        assert_eq!(
            config.no_masquerade,
            vec![(Ipv4Addr::new(10, 244, 0, 0), 16)]
        );
        assert_eq!(config.ports[0].to_string(), "0.0.0.0:8080->8000/tcp");
        assert!(config.prev_result.is_none());
    }

    #[test]
    fn defaults_are_runs_and_the_environment_names_the_state_dir() {
        let doc = decode(br#"{"cniVersion":"1.1.0","name":"n"}"#).unwrap();
        let config = parse(&doc, Some("/tmp/s")).unwrap();
        assert_eq!(config.bridge, "sv0");
        assert_eq!(config.subnet.to_string(), DEFAULT_SUBNET);
        assert_eq!(config.state_dir, PathBuf::from("/tmp/s"));
        assert_eq!(
            parse(&doc, None).unwrap().state_dir,
            PathBuf::from(DEFAULT_STATE_DIR)
        );
    }

    #[test]
    fn a_bad_field_is_code_7_naming_the_field() {
        let cases = [
            (r#"{"name":"n"}"#, "cniVersion"),
            (r#"{"cniVersion":"1.0.0"}"#, "name"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","subnet":"10.0.0.1/24"}"#,
                "subnet",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","bridge":"a/b"}"#,
                "bridge",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","noMasqueradeCidrs":["10.244.0.1/16"]}"#,
                "noMasqueradeCidrs[0]",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[{"hostPort":70000,"containerPort":80}]}}"#,
                "runtimeConfig.portMappings[0].hostPort",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"sctp"}]}}"#,
                "runtimeConfig.portMappings[0].protocol",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":17}]}}"#,
                "runtimeConfig.portMappings[0].protocol",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80},{"hostPort":81,"containerPort":80,"hostIP":["127.0.0.1"]}]}}"#,
                "runtimeConfig.portMappings[1].hostIP",
            ),
        ];
        for (json, field) in cases {
            let err = parsed(json).unwrap_err();
            assert_eq!(err.code, 7, "{json}");
            assert!(err.msg.starts_with(&format!("{field}:")), "{}", err.msg);
        }
    }

    #[test]
    fn a_long_bad_value_is_quoted_shortened_with_its_length() {
        let long = "ä".repeat(5_000);
        for key in ["name", "bridge", "subnet"] {
            let json = format!(r#"{{"cniVersion":"1.0.0","name":"n","{key}":"{long}"}}"#);
            let err = parsed(&json).unwrap_err();
            assert!(err.msg.len() < 400, "{key}: {:.200}", err.msg);
            assert!(
                err.msg.contains("… (10000 bytes)"),
                "{key}: {:.200}",
                err.msg
            );
        }
    }

    #[test]
    fn a_plugin_installed_under_another_name_answers_to_that_type_too() {
        let doc = decode(br#"{"cniVersion":"1.0.0","name":"n","type":"sv-net"}"#).unwrap();
        assert!(check_entry(&doc, Some("sv-net")).is_ok());
        let err = check_entry(&doc, Some("supervisor")).unwrap_err();
        assert_eq!(err.code, 7);
        assert!(err.msg.starts_with("type: \"sv-net\""), "{}", err.msg);
    }

    #[test]
    fn a_document_that_is_not_json_is_code_6() {
        assert_eq!(decode(b"{not json").unwrap_err().code, 6);
        assert_eq!(decode(b"[1]").unwrap_err().code, 6);
    }

    #[test]
    fn a_document_nested_deeper_than_json_allows_is_code_6_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let err = decode(deep.as_bytes()).unwrap_err();
        assert_eq!(err.code, 6);
        assert!(err.msg.contains("recursion limit"), "{}", err.msg);
    }

    #[test]
    fn odd_unicode_in_a_network_or_bridge_name_is_code_7_naming_the_field() {
        for (doc, field) in [
            (r#""name":"ne\u202et""#, "name"),
            (r#""name":"n\u0000""#, "name"),
            (r#""name":"n","bridge":"br\u00e0""#, "bridge"),
            (r#""name":"n","bridge":"br\u001b[2J""#, "bridge"),
        ] {
            let text = format!(r#"{{"cniVersion":"1.0.0","type":"supervisor",{doc}}}"#);
            let err = parse(&decode(text.as_bytes()).unwrap(), None).unwrap_err();
            assert_eq!(err.code, 7, "{doc}: {}", err.msg);
            assert!(err.msg.starts_with(&format!("{field}:")), "{}", err.msg);
        }
    }

    #[test]
    fn a_key_given_twice_takes_its_last_value_as_gos_encoding_json_does() {
        // The engine (libcni, in Go) reads the last one too: what it
        // validated is what we use.
        let doc = decode(
            br#"{"cniVersion":"1.0.0","name":"n","type":"supervisor",
                 "subnet":"10.1.0.0/24","subnet":"10.2.0.0/24"}"#,
        )
        .unwrap();
        let config = parse(&doc, None).unwrap();
        assert_eq!(config.subnet.to_string(), "10.2.0.0/24");
    }

    #[test]
    fn one_host_port_to_two_container_ports_is_code_7_and_a_repeated_mapping_counts_once() {
        let err = parsed(
            r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[
            {"hostPort":80,"containerPort":80},{"hostPort":80,"containerPort":81}]}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, 7);
        assert!(
            err.msg
                .starts_with("runtimeConfig.portMappings[1].hostPort: 0.0.0.0:80->81/tcp and"),
            "{}",
            err.msg
        );
        let config = parsed(
            r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[
            {"hostPort":80,"containerPort":80},{"hostPort":80,"containerPort":80,"protocol":"TCP"},
            {"hostPort":80,"containerPort":81,"protocol":"udp"}]}}"#,
        )
        .unwrap();
        assert_eq!(config.ports.len(), 2);
    }

    #[test]
    fn subnet6_or_ipv6_true_makes_it_dual_stack_and_a_mapping_without_host_ip_both_families() {
        let config = parsed(
            r#"{"cniVersion":"1.0.0","name":"n","subnet":"10.88.7.0/24","subnet6":"fd00:7::/64",
            "noMasqueradeCidrs":["10.244.0.0/16","fd00:244::/56"],
            "runtimeConfig":{"portMappings":[
            {"hostPort":80,"containerPort":8000,"hostIP":""},
            {"hostPort":81,"containerPort":8000,"hostIP":"0.0.0.0"},
            {"hostPort":82,"containerPort":8000,"hostIP":"::"},
            {"hostPort":83,"containerPort":8000,"protocol":"udp","hostIP":"2001:db8::1"}]}}"#,
        )
        .unwrap();
        assert_eq!(config.subnet6.unwrap().to_string(), "fd00:7::/64");
        assert_eq!(
            config.no_masquerade,
            vec![(Ipv4Addr::new(10, 244, 0, 0), 16)]
        );
        assert_eq!(
            config.no_masquerade6,
            vec![("fd00:244::".parse().unwrap(), 56)]
        );
        let ports: Vec<String> = config.ports.iter().map(Port::to_string).collect();
        assert_eq!(
            ports,
            [
                "0.0.0.0:80->8000/tcp",
                "[::]:80->8000/tcp",
                "0.0.0.0:81->8000/tcp",
                "[::]:82->8000/tcp",
                "[2001:db8::1]:83->8000/udp",
            ]
        );
        let default = parsed(r#"{"cniVersion":"1.0.0","name":"n","ipv6":true}"#).unwrap();
        assert_eq!(default.subnet6.unwrap().to_string(), DEFAULT_SUBNET6);
        let off = parsed(r#"{"cniVersion":"1.0.0","name":"n","ipv6":false}"#).unwrap();
        assert_eq!(off.subnet6, None);
    }

    #[test]
    fn a_bad_ipv6_field_is_code_7_naming_the_field() {
        let cases = [
            (r#""subnet6":"fd00:7::1/64""#, "subnet6", "host bits set"),
            (r#""subnet6":"10.0.0.0/24""#, "subnet6", "IPv6 prefix"),
            (
                r#""subnet6":"fd00:7::/64","ipv6":false"#,
                "subnet6",
                "ipv6 is false",
            ),
            (r#""ipv6":"yes""#, "ipv6", "true or false"),
            (
                r#""subnet":"10.0.0.0/16","subnet6":"fd00:7::/120""#,
                "subnet6",
                "/112 or shorter",
            ),
            (
                r#""noMasqueradeCidrs":["fd00:244::1/56"]"#,
                "noMasqueradeCidrs[0]",
                "did you mean fd00:244::/56",
            ),
            (
                r#""noMasqueradeCidrs":["fd00::/129"]"#,
                "noMasqueradeCidrs[0]",
                "0 to 128",
            ),
            (
                r#""ipv6":true,"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"::1"}]}"#,
                "runtimeConfig.portMappings[0].hostIP",
                "::1",
            ),
            (
                r#""ipv6":true,"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"::ffff:224.0.0.1"}]}"#,
                "runtimeConfig.portMappings[0].hostIP",
                "IPv4-mapped",
            ),
            (
                r#""ipv6":true,"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"fe80::1"}]}"#,
                "runtimeConfig.portMappings[0].hostIP",
                "\"fe80::1\" is a link-local address",
            ),
        ];
        for (fields, field, why) in cases {
            let json = format!(r#"{{"cniVersion":"1.0.0","name":"n",{fields}}}"#);
            let err = parsed(&json).unwrap_err();
            assert_eq!(err.code, 7, "{json}");
            assert!(err.msg.starts_with(&format!("{field}:")), "{}", err.msg);
            assert!(err.msg.contains(why), "{why}: {}", err.msg);
        }
    }

    #[test]
    fn an_ipv6_host_ip_is_left_out() {
        let config = parsed(
            r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[
            {"hostPort":80,"containerPort":80,"hostIP":"::1"},
            {"hostPort":81,"containerPort":80,"protocol":"UDP","hostIP":"127.0.0.1"}]}}"#,
        )
        .unwrap();
        assert_eq!(config.ports.len(), 1);
        assert_eq!(config.ports[0].to_string(), "127.0.0.1:81->80/udp");
    }
}
