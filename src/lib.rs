//! supervisor: runs a command in its own namespaces and owns its network.

pub mod nftables;
pub mod ruleset;
