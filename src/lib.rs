//! supervisor: runs a command in its own namespaces and owns its network.
//!
//! Data flows one way: `spec` (validated user input) → the `supervisor`
//! lifecycle → the kernel through `spawn` (clone3, pidfd), `netlink`
//! (links, addresses, routes) and `firewall` (nftables batches); the
//! `ruleset` loader compiles nft-syntax files to `nftables` batches.
//!
//! `state` keeps a record of each running container; `reconcile` gives back
//! what crashed supervisors left; `control` is `ps`, `stop`, `inspect` and
//! `gc`, run from another process.

pub mod bench;
pub mod confinement;
pub mod conntrack;
pub mod control;
pub mod etc_files;
#[doc(hidden)]
pub mod fault;
pub mod filesystem;
pub mod firewall;
pub mod identity;
pub mod ipam;
pub mod netlink;
pub mod network;
pub mod nftables;
pub mod publish;
pub mod reconcile;
pub mod reserve;
pub mod ruleset;
pub mod seccomp;
pub mod signals;
pub mod spawn;
pub mod spec;
pub mod state;
pub mod supervisor;
