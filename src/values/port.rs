//! Ports and their protocols: asked for (`PortMapping`) and decided (`Port`).

use std::fmt;
use std::net::Ipv4Addr;

use super::Owner;

/// A published port's transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One host port forwarded to one container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// None: every address of the host.
    pub host_ip: Option<Ipv4Addr>,
    /// None: pick a free one.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        match self.host_port {
            Some(port) => write!(f, "{port}")?,
            None => f.write_str("?")?,
        }
        write!(f, "->{}/{}", self.container_port, self.protocol)
    }
}

/// A published port with its host port decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port {
    /// None: every host address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{ip}:{}->{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

/// A host port someone else publishes already: what both the plan (from a
/// snapshot) and the kernel (refusing the batch) report, with its holder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("port {port} is already published by {holder}")]
pub struct PortTaken {
    pub port: Port,
    /// The holder, for people: "container NAME (ID)" or "another container".
    pub holder: String,
    /// The holder, when its element carries our comment.
    pub owner: Option<Owner>,
}
