//! supervisor: runs a command in its own namespaces and owns its network.

pub mod ipam;
pub mod netlink;
