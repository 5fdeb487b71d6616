//! `supervisor inspect`: a container's record and what the kernel holds for
//! it right now, as JSON; an exited container's exited record (see
//! `state::Exited`). Each has a `state`: its status, and for the exited its
//! exit code and when it finished.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;

use serde::Serialize;

use caps::Capability;

use super::{Error, block_on};
use crate::cgroup;
use crate::firewall::{Firewall, Owned};
use crate::netlink::{self, Netlink};
use crate::state::{Exited, Found, Record, Store};
use crate::values::Process;

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Inspection<'a> {
    Recorded {
        #[serde(flatten)]
        record: &'a Record,
        state: State,
        live: Live,
    },
    Exited {
        #[serde(flatten)]
        exited: &'a Exited,
        state: State,
    },
}

/// docker's `State`, the part of it there is.
#[derive(Debug, Serialize)]
struct State {
    /// `running`, `exited`, or `dead` (its supervisor crashed: `gc`
    /// removes it).
    status: &'static str,
    exit_code: Option<u8>,
    /// Seconds since the Unix epoch.
    finished_at: Option<u64>,
}

/// The kernel's view, read now.
#[derive(Debug, Serialize)]
struct Live {
    supervisor_running: bool,
    container_running: bool,
    /// The host end of the veth pair; null when it is not there.
    link: Option<Link>,
    /// The IPv4 and IPv6 addresses inside the container's network namespace.
    addresses: Vec<Address>,
    /// Its firewall elements, as nft prints them after the set's name.
    elements: Vec<String>,
    /// How many of its processes the OOM killer has killed (its memory
    /// cgroup's count); null without --memory.
    oom_kills: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(super) struct Link {
    pub name: String,
    pub index: u32,
    pub up: bool,
    pub bridge: Option<String>,
}

#[derive(Debug, Serialize)]
struct Address {
    interface: String,
    address: std::net::IpAddr,
    prefix_len: u8,
}

/// Prints the record of each of `targets` (names, ids or id prefixes) with
/// its live state: one object for one target, an array of them for
/// several. Unknown targets are failures together, after the known ones
/// are printed.
pub fn inspect(state_dir: &Path, targets: &[String], out: &mut dyn Write) -> Result<(), Error> {
    super::require(
        "inspect",
        &[
            Capability::CAP_SYS_ADMIN,
            Capability::CAP_SYS_PTRACE,
            Capability::CAP_NET_ADMIN,
        ],
        "to look into the container's namespaces and firewall",
    )?;
    let store = Store::new(state_dir);
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for target in targets {
        match store.find_any(target) {
            Ok(Some(named)) => found.push(named),
            Ok(None) => failures.push(Error::Unknown(target.to_string())),
            Err(err) => failures.push(err.into()),
        }
    }
    // In the targets' order, as docker prints them.
    let mut inspections = Vec::new();
    for found in &found {
        match found {
            Found::Live(record) => match block_on(live(state_dir, record)) {
                Ok(live) => inspections.push(Inspection::Recorded {
                    record,
                    state: State {
                        status: match (record.is_stale(), record.is_starting()) {
                            (true, _) => "dead",
                            (false, true) => "starting",
                            (false, false) => "running",
                        },
                        exit_code: None,
                        finished_at: None,
                    },
                    live,
                }),
                Err(err) => failures.push(err),
            },
            Found::Exited(exited) => inspections.push(Inspection::Exited {
                exited,
                state: State {
                    status: "exited",
                    exit_code: Some(exited.exit_code),
                    finished_at: Some(exited.finished_at),
                },
            }),
        }
    }
    let text = match (targets.len(), inspections.as_slice()) {
        (1, [one]) => serde_json::to_string_pretty(one),
        (1, []) => Ok(String::new()),
        _ => serde_json::to_string_pretty(&inspections),
    };
    let mut text = text.map_err(|e| Error::Output(e.into()))?;
    if !text.is_empty() {
        text.push('\n');
    }
    out.write_all(text.as_bytes()).map_err(Error::Output)?;
    super::all_or_failures(failures)
}

async fn live(state_dir: &Path, record: &Record) -> Result<Live, Error> {
    let nl = Netlink::connect()?;
    let link = link_of(&nl, record).await?;
    let container = record.container.filter(Process::is_alive);
    let addresses = match (container, record.labels.get(crate::state::cni_label::NETNS)) {
        (Some(process), _) => addresses_of(process).await?,
        // A CNI attachment: the engine's namespace, while it is there.
        (None, Some(netns)) => match File::open(netns) {
            Ok(netns) => addresses_in(&netns).await?,
            Err(_) => Vec::new(),
        },
        (None, None) => Vec::new(),
    };
    let owned = Firewall::open(state_dir)?.owned_elements()?;
    let elements = elements_of(&owned, &record.id)
        .map(|e| e.to_string())
        .collect();
    Ok(Live {
        supervisor_running: record.supervisor.is_alive(),
        container_running: container.is_some(),
        link,
        addresses,
        elements,
        oom_kills: (record.resources.as_ref()).and_then(|limits| cgroup::oom_kills(&limits.cgroup)),
    })
}

/// The host end of `record`'s veth pair as the kernel has it now; None
/// when it is not there (or the record names none).
pub(super) async fn link_of(nl: &Netlink, record: &Record) -> Result<Option<Link>, Error> {
    let Some(veth) = &record.veth else {
        return Ok(None);
    };
    Ok(netlink::link_state(nl, veth).await?.map(|l| Link {
        name: l.name,
        index: l.index,
        up: l.up,
        bridge: l.bridge,
    }))
}

/// The elements among `owned` whose comment names container `id`.
pub(super) fn elements_of<'a>(owned: &'a [Owned], id: &'a str) -> impl Iterator<Item = &'a Owned> {
    owned
        .iter()
        .filter(move |e| e.owner.as_ref().is_some_and(|o| o.id == id))
}

/// The addresses in `container`'s network namespace; none when it has
/// ended meanwhile.
async fn addresses_of(container: Process) -> Result<Vec<Address>, Error> {
    let netns = match File::open(format!("/proc/{}/ns/net", container.pid)) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::Netns(err)),
    };
    // Alive after the open, so alive during it: the namespace is its own,
    // not that of a process that reused its pid.
    if !container.is_alive() {
        return Ok(Vec::new());
    }
    addresses_in(&netns).await
}

/// The addresses in the network namespace `netns`.
async fn addresses_in(netns: &File) -> Result<Vec<Address>, Error> {
    let addresses = netlink::addresses_in(netns.as_fd()).await?;
    Ok(addresses
        .into_iter()
        .map(|a| Address {
            interface: a.interface,
            address: a.address,
            prefix_len: a.prefix_len,
        })
        .collect())
}
