//! The values every layer shares: subnets and addresses, ports and their
//! protocols, who owns what (containers and processes), random ids, the
//! resources a container may use, and how an error quotes a value.
//!
//! The bottom layer: imports nothing of this crate, so any module may use
//! it without pulling in another's machinery.

mod loopback6;
mod owner;
mod port;
mod process;
mod quoted;
mod random;
mod resources;
mod subnet;
mod subnet6;

pub use loopback6::Loopback6Cgroup;
pub use owner::Owner;
pub use port::{Bracketed, HostIp, Port, PortMapping, PortTaken, Protocol};
pub use process::Process;
pub use quoted::{Quoted, quoted, shortened};
pub use random::{Generation, new_id, random_u64};
pub use resources::{
    CPU_PERIOD_US, MIN_MEMORY, ResourceError, Resources, format_bytes, format_cpus, parse_bytes,
    parse_cpus, parse_memory, parse_pids_limit,
};
pub use subnet::{AddressError, Subnet, SubnetError};
pub use subnet6::{Address6Error, DEFAULT_SUBNET6, Subnet6, Subnet6Error};
