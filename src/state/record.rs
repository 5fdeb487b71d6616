//! One container's record, as JSON in `STATE_DIR/containers/NAME.json`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::values::{HostIp, Port, Process, Protocol, Resources};

/// The labels of a CNI attachment's record (see `cni`): what its engine
/// named, for `ps`, `inspect`, DEL and GC.
pub mod cni_label {
    pub const CONTAINER: &str = "cni.container";
    pub const IFNAME: &str = "cni.ifname";
    /// The engine's network namespace path.
    pub const NETNS: &str = "cni.netns";
    pub const NETWORK: &str = "cni.network";
    /// Present on an attachment chained after another plugin.
    pub const CHAINED: &str = "cni.chained";
    /// The attachment's mode when it is not the bridge's: `ROUTED`.
    pub const MODE: &str = "cni.mode";
    pub const ROUTED: &str = "routed";
    /// A routed attachment's noMasqueradeCidrs as its ADD added them
    /// (`10.244.0.0/16,192.0.2.0/24`): its DEL removes these, whatever the
    /// configuration says by then.
    pub const NO_MASQUERADE: &str = "cni.noMasquerade";
}

/// What a running container holds, and who supervises it. Written by its
/// supervisor; read by `ps`, `stop`, `inspect`, `gc` and by runs that want
/// its name, address or ports after it died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub id: String,
    /// The supervisor process: the record is stale once it is gone.
    pub supervisor: Process,
    /// The container's first process, once it is created and plumbed.
    #[serde(default)]
    pub container: Option<Process>,
    /// True from the record's first write by `run` until its command is
    /// released: until then its process (once `container` names it) sets
    /// up its mount and IPC
    /// namespaces (the host's tree, unsealed, at first), which `exec` must
    /// not join. Written only while true: records of earlier versions, and
    /// of every container running, have none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub starting: bool,
    /// The bridge of the container's network; None with `--network none`.
    #[serde(default)]
    pub bridge: Option<String>,
    /// `bridge`, `none` or `container:NAME`; records of earlier versions
    /// have none.
    #[serde(default)]
    pub network: Option<String>,
    /// With `container:NAME`: the id of the container whose network
    /// namespace and /etc files this one shares (NAME's own, or the one NAME
    /// shares in turn).
    #[serde(default)]
    pub joined: Option<String>,
    /// The hostname its command sees.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The leased address, once leased.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// Its IPv6 address on a dual-stack network; records of earlier
    /// versions have none.
    #[serde(default)]
    pub address6: Option<Ipv6Addr>,
    /// The host end of the veth pair, once created.
    #[serde(default)]
    pub veth: Option<String>,
    /// The published ports, host ports decided.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
    /// The generation its connections carry (see `values::Generation`);
    /// records of earlier versions, and chained CNI attachments, have none.
    #[serde(default)]
    pub generation: Option<u32>,
    /// When the supervisor started, in seconds since the Unix epoch.
    pub started_at: u64,
    pub command: Vec<String>,
    /// `run --label` values; records of earlier versions have none.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What `exec` gives a command it runs inside: the container's own.
    /// Records of older versions have none; `exec` then uses the defaults.
    #[serde(default)]
    pub exec: Option<Box<ExecContext>>,
    /// Its limits and their cgroup; None: unlimited, no cgroup.
    #[serde(default)]
    pub resources: Option<Box<Limits>>,
    /// `run --stop-timeout`, in seconds: how long `stop` without `-t`
    /// waits after SIGTERM. Records of earlier versions, and CNI
    /// attachments, have none (see `Record::stop_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
}

/// `run --stop-timeout`'s default, and the stop timeout of a record that
/// has none.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `--memory`, `--cpus`, `--pids-limit`, and where they are enforced.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    #[serde(flatten)]
    pub limits: Resources,
    /// The container's cgroup directories (one per v1 hierarchy, or one
    /// v2), written before they are created.
    #[serde(default)]
    pub cgroup: Vec<PathBuf>,
}

/// The container's environment, working directory, user and confinement,
/// as `exec` repeats them for each command it runs inside.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecContext {
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub workdir: Option<String>,
    /// `UID:GID`, as `--user` takes it; None: root.
    #[serde(default)]
    pub user: Option<String>,
    /// Capability names (`CAP_NET_RAW`); None: docker's default set.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// `--security-opt` values that choose the seccomp profile.
    #[serde(default)]
    pub security_opt: Vec<String>,
    /// The container's compiled seccomp program (in the state directory's
    /// cache): `exec` installs it as it is, and builds the profile from
    /// `security_opt` only when it is gone.
    #[serde(default)]
    pub seccomp_program: Option<PathBuf>,
}

/// A published port as the record keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// None: every IPv4 address (records before IPv6 hold null for it);
    /// `::` every IPv6 address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    #[serde(with = "protocol")]
    pub protocol: Protocol,
}

impl From<Port> for PublishedPort {
    fn from(port: Port) -> PublishedPort {
        PublishedPort {
            host_ip: match port.host_ip {
                HostIp::AnyV4 => None,
                ip => Some(ip.ip()),
            },
            host_port: port.host_port,
            container_port: port.container_port,
            protocol: port.protocol,
        }
    }
}

impl From<PublishedPort> for Port {
    fn from(port: PublishedPort) -> Port {
        Port {
            host_ip: port.host_ip.map_or(HostIp::AnyV4, HostIp::from_ip),
            host_port: port.host_port,
            container_port: port.container_port,
            protocol: port.protocol,
        }
    }
}

impl std::fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Port::from(*self).fmt(f)
    }
}

/// `"tcp"` / `"udp"`, as in `--publish`.
mod protocol {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::values::Protocol;

    pub fn serialize<S: Serializer>(protocol: &Protocol, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(protocol.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
        match String::deserialize(d)?.as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            other => Err(D::Error::custom(format!("unknown protocol {other:?}"))),
        }
    }
}

impl Record {
    /// Whether it is a CNI attachment in routed mode: its host link is on
    /// no bridge, its guard is a `sources` element.
    pub fn is_routed(&self) -> bool {
        self.labels.get(cni_label::MODE).map(String::as_str) == Some(cni_label::ROUTED)
    }

    /// The record of a supervisor starting now: who it is and what it runs;
    /// the network and the container are filled in as they come.
    pub fn new(name: &str, id: &str, supervisor: Process, command: Vec<String>) -> Record {
        Record {
            name: name.to_string(),
            id: id.to_string(),
            supervisor,
            container: None,
            starting: false,
            bridge: None,
            network: None,
            joined: None,
            hostname: None,
            address: None,
            address6: None,
            veth: None,
            ports: Vec::new(),
            generation: None,
            started_at: unix_now(),
            command,
            labels: BTreeMap::new(),
            exec: None,
            resources: None,
            stop_timeout: None,
        }
    }

    /// How long `stop` without `-t` waits between SIGTERM and SIGKILL: the
    /// container's `--stop-timeout`, as docker's `stop` does.
    pub fn stop_timeout(&self) -> Duration {
        self.stop_timeout
            .map_or(DEFAULT_STOP_TIMEOUT, Duration::from_secs)
    }

    /// True once its supervisor is gone: what it holds is nobody's.
    pub fn is_stale(&self) -> bool {
        !self.supervisor.is_alive()
    }

    /// Whether its supervisor is still setting the container up (`run`
    /// marks its record `starting` from the first write until the command
    /// is released). A CNI attachment's record, held by no process, never
    /// is.
    pub fn is_starting(&self) -> bool {
        !self.supervisor.is_none() && self.starting
    }

    /// Seconds since the supervisor started.
    pub fn uptime(&self) -> u64 {
        unix_now().saturating_sub(self.started_at)
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let mut record = Record::new(
            "web",
            "0123456789ab",
            Process {
                pid: 42,
                start_time: 7,
            },
            vec!["nc".into(), "-l".into()],
        );
        record.bridge = Some("sv0".into());
        record.address = Some(Ipv4Addr::new(172, 16, 0, 2));
        record.ports = vec![PublishedPort {
            host_ip: None,
            host_port: 8080,
            container_port: 8000,
            protocol: Protocol::Udp,
        }];
        record.resources = Some(Box::new(Limits {
            limits: Resources {
                memory: Some(64 << 20),
                ..Resources::default()
            },
            cgroup: vec!["/sys/fs/cgroup/memory/supervisor-0/0123456789ab".into()],
        }));
        record.exec = Some(Box::new(ExecContext {
            env: vec![("PATH".into(), "/bin".into())],
            capabilities: Some(vec!["CAP_KILL".into()]),
            ..ExecContext::default()
        }));
        record
    }

    #[test]
    fn a_record_round_trips_through_json_with_ports_as_in_publish() {
        let record = sample();
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""protocol":"udp""#), "{json}");
        assert!(json.contains(r#""address":"172.16.0.2""#), "{json}");
        assert!(json.contains(r#""memory":67108864"#), "{json}");
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record);
        assert_eq!(record.ports[0].to_string(), "0.0.0.0:8080->8000/udp");
    }

    #[test]
    fn a_record_without_a_stop_timeout_stops_after_10_seconds() {
        let mut record = sample();
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains("stop_timeout"), "{json}");
        let old: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(old.stop_timeout(), Duration::from_secs(10));
        record.stop_timeout = Some(3);
        let json = serde_json::to_string(&record).unwrap();
        let read: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(read.stop_timeout(), Duration::from_secs(3));
    }

    #[test]
    fn unknown_fields_are_ignored_and_missing_optional_ones_default() {
        let json = r#"{"name":"a","id":"b","supervisor":{"pid":1,"start_time":2},
            "started_at":3,"command":[],"from_a_later_version":true}"#;
        let record: Record = serde_json::from_str(json).unwrap();
        assert_eq!(record.address, None);
        assert!(record.ports.is_empty());
        assert!(record.labels.is_empty());
        assert_eq!(record.exec, None, "exec then takes docker's defaults");
        assert_eq!(record.resources, None);
        assert!(serde_json::from_str::<Record>(r#"{"name":"a"}"#).is_err());
    }
}
