//! supervisor: runs a command in its own namespaces and owns its network.
//!
//! Data flows one way: `spec` (validated user input) → `plan` (the
//! container's network as a plain value, built by a pure function from the
//! spec and a snapshot of what is taken; `run --dry-run` prints the whole
//! plan, while `run` itself builds only the container's part, from its
//! lease and reservations, once they are taken: `plan::container_part`) →
//! `plan::apply` and the `supervisor` lifecycle → the kernel through `spawn`
//! (clone3, pidfd), `netlink` (links, addresses, routes) and `firewall`
//! (nftables batches); the `ruleset` loader compiles nft-syntax files to
//! `nftables` batches.
//!
//! `state` keeps a record of each running container (and of each detached
//! one that exited); `reconcile` gives back what crashed supervisors left;
//! `control` is `ps`, `stop`, `rm`, `inspect`, `logs`, `check` and `gc`,
//! run from another process. `cni` is the same
//! network for container engines: a CNI plugin over the same plan and apply
//! steps. `proxy` serves `[::1]:PORT` for ports published on IPv6, which
//! the kernel cannot DNAT. `detach` is `run -d`:
//! the supervisor in the background, its container's output in a
//! `container_log`. `cgroup` holds a container's resource limits (v1 or
//! v2).
//!
//! Dependencies run downward only. The layers, top to bottom; a module uses
//! only the modules after it in this list (tests/layers.rs checks every
//! `crate::` path against it, so add a new module here first):
//!
//! ```text
//! edge:      main usage cli bench reader_gone entry
//! lifecycle: detach supervisor cni control
//! plan:      plan spec publish env_file
//! apply:     reconcile network firewall ruleset confinement filesystem
//!            identity root_file spawn root_path seccomp netlink conntrack proxy ebpf reserve ipam
//!            container_log state cgroup etc_files nftables signals
//! leaf:      milestones error_chain scratch realtime regular_file netns_cookie values
//! ```
//!
//! `values` holds what every layer shares (subnets, ports and protocols,
//! owners, processes, ids) and imports nothing of ours; `error_chain` prints
//! an error with each of its causes once; `milestones` times the lifecycle's
//! phases and holds its fault-test pause points; `scratch` (tests only)
//! makes unit tests' temporary directories and says when they skip for want of root; `realtime` makes a thread's
//! short work on a container's path run before ordinary tasks;
//! `regular_file` reads a file that must be a regular one without opening
//! anything else, and bounds a read.

pub mod cgroup;
pub mod cni;
pub mod confinement;
pub mod conntrack;
pub mod container_log;
pub mod control;
pub mod detach;
pub mod ebpf;
pub mod env_file;
pub mod error_chain;
pub mod etc_files;
pub mod filesystem;
pub mod firewall;
pub mod identity;
pub mod ipam;
#[doc(hidden)]
pub mod milestones;
pub mod netlink;
pub mod netns_cookie;
pub mod network;
pub mod nftables;
pub mod plan;
pub mod proxy;
pub mod publish;
pub mod realtime;
pub mod reconcile;
pub mod regular_file;
pub mod reserve;
pub mod root_file;
pub mod root_path;
pub mod ruleset;
#[cfg(test)]
pub(crate) mod scratch;
pub mod seccomp;
pub mod signals;
pub mod spawn;
pub mod spec;
pub mod state;
pub mod supervisor;
pub mod values;
