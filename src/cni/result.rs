//! ADD's result document, in the version the configuration asked for:
//! `interfaces` (the host veth, then the sandbox interface with its
//! namespace path), `ips` pointing at the sandbox interface, `routes`,
//! `dns`. 0.4.0 adds `version` to each IP. A dual-stack attachment has an
//! IPv6 address after its IPv4 one, on the same interface, and a `::/0`
//! route.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Value, json};

use super::protocol::at_least;

/// An interface of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Vec<u8>,
    /// The network namespace path, for the container's end.
    pub sandbox: Option<String>,
}

/// What ADD made, in the spec's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub interfaces: Vec<Interface>,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// Index into `interfaces` of the interface holding `address`.
    pub interface: usize,
    /// On a dual-stack network: the IPv6 address, its prefix length and
    /// gateway, on the same interface.
    pub ipv6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Outcome {
    /// The result document in `version`.
    pub fn to_json(&self, version: &str) -> Value {
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut v = json!({ "name": i.name, "mac": mac_text(&i.mac) });
                if let Some(sandbox) = &i.sandbox {
                    v["sandbox"] = json!(sandbox);
                }
                v
            })
            .collect();
        let ip = |address: String, gateway: String, family: &str| {
            let mut ip = json!({
                "address": address,
                "gateway": gateway,
                "interface": self.interface,
            });
            if !at_least(version, "1.0.0") {
                ip["version"] = json!(family);
            }
            ip
        };
        let mut ips = vec![ip(
            format!("{}/{}", self.address, self.prefix_len),
            self.gateway.to_string(),
            "4",
        )];
        let mut routes = vec![json!({ "dst": "0.0.0.0/0", "gw": self.gateway.to_string() })];
        if let Some((address, prefix_len, gateway)) = self.ipv6 {
            ips.push(ip(
                format!("{address}/{prefix_len}"),
                gateway.to_string(),
                "6",
            ));
            routes.push(json!({ "dst": "::/0", "gw": gateway.to_string() }));
        }
        json!({
            "cniVersion": version,
            "interfaces": interfaces,
            "ips": ips,
            "routes": routes,
            "dns": {},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        Outcome {
            interfaces: vec![
                Interface {
                    name: "sv-0123456789ab".into(),
                    mac: vec![0xaa, 0xbb, 0xcc, 0, 1, 2],
                    sandbox: None,
                },
                Interface {
                    name: "eth0".into(),
                    mac: vec![2, 0x42, 10, 88, 7, 2],
                    sandbox: Some("/run/netns/c1".into()),
                },
            ],
            address: Ipv4Addr::new(10, 88, 7, 2),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 88, 7, 1),
            interface: 1,
            ipv6: None,
        }
    }

    fn dual() -> Outcome {
        let (address, gateway) = ("fd00:7::2".parse().unwrap(), "fd00:7::1".parse().unwrap());
        Outcome {
            ipv6: Some((address, 64, gateway)),
            ..outcome()
        }
    }

    #[test]
    fn a_result_names_both_interfaces_and_points_the_ip_at_the_sandbox_one() {
        let doc = outcome().to_json("1.1.0");
        assert_eq!(doc["interfaces"][0]["mac"], "aa:bb:cc:00:01:02");
        assert_eq!(doc["interfaces"][1]["sandbox"], "/run/netns/c1");
        assert_eq!(doc["interfaces"][1]["mac"], "02:42:0a:58:07:02");
        assert_eq!(doc["ips"][0]["address"], "10.88.7.2/24");
        assert_eq!(doc["ips"][0]["interface"], 1);
        assert_eq!(doc["ips"][0]["gateway"], "10.88.7.1");
        assert!(doc["ips"][0].get("version").is_none());
        assert_eq!(doc["routes"][0]["dst"], "0.0.0.0/0");
        assert!(doc["dns"].is_object());
    }

    #[test]
    fn a_0_4_0_result_gives_each_ip_its_version() {
        let doc = outcome().to_json("0.4.0");
        assert_eq!(doc["cniVersion"], "0.4.0");
        assert_eq!(doc["ips"][0]["version"], "4");
        let dual = dual();
        assert_eq!(dual.to_json("0.4.0")["ips"][1]["version"], "6");
    }

    #[test]
    fn a_dual_stack_result_has_both_ips_on_the_sandbox_interface_and_both_default_routes() {
        let dual = dual();
        let doc = dual.to_json("1.1.0");
        assert_eq!(doc["ips"][0]["address"], "10.88.7.2/24");
        assert_eq!(
            doc["ips"][1],
            json!({"address": "fd00:7::2/64", "gateway": "fd00:7::1", "interface": 1})
        );
        assert_eq!(
            doc["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "10.88.7.1"}, {"dst": "::/0", "gw": "fd00:7::1"}])
        );
    }
}
