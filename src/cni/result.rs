//! ADD's result document, in the version the configuration asked for:
//! `interfaces` (the host veth, then the sandbox interface with its
//! namespace path), `ips` pointing at the sandbox interface, `routes`,
//! `dns`. 0.4.0 adds `version` to each IP.

use std::net::Ipv4Addr;

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
        let mut ip = json!({
            "address": format!("{}/{}", self.address, self.prefix_len),
            "gateway": self.gateway.to_string(),
            "interface": self.interface,
        });
        if !at_least(version, "1.0.0") {
            ip["version"] = json!("4");
        }
        json!({
            "cniVersion": version,
            "interfaces": interfaces,
            "ips": [ip],
            "routes": [{ "dst": "0.0.0.0/0", "gw": self.gateway.to_string() }],
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
    }
}
