//! One CNI attachment (a container id and an interface name) as `run`'s
//! own network: the same plan, lease, bridge, veth, elements and record,
//! made by the same `plan::apply` steps; only the namespace is the
//! engine's (`CNI_NETNS`) and the interface inside is named by it
//! (`CNI_IFNAME`).
//!
//! An attachment outlives the plugin process: its record and lease are
//! held by `Process::UNTIL_RELEASED`, never stale, so `gc`, `run` and
//! `reconcile` leave them to the engine's DEL or GC. Its record is named
//! `CONTAINERID:IFNAME` (`ps` shows it so; a colon is in no container id
//! and no interface name) and its id is a hash of both, which names its
//! host veth (`sv-` + id) and owns its elements.
//!
//! ADD claims the record first, so a second ADD for the same container and
//! interface is refused before anything is made, and every later step
//! that fails undoes the ones before (elements, link, lease, record): a
//! failed ADD leaves nothing. DEL goes on past what is already gone (the
//! namespace, the link, the elements) and succeeds for an unknown one.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;
use std::path::Path;

use super::config::Config;
use super::forget::{Background, Leftovers};
use super::protocol::{CniError, Invocation, code};
use super::result::{Interface, Outcome};
use crate::conntrack;
use crate::error_chain::Chain;
use crate::firewall::{self, Firewall, Publication};
use crate::ipam::{self, Holder, LeaseDir};
use crate::milestones::{timed, timed_async};
use crate::netlink::{self, Bridge, Netlink};
use crate::network;
use crate::plan::{self, Snapshot, apply};
use crate::reserve::{self, Families, Reservations};
use crate::state::{self, Record, Store};
use crate::values::{Generation, Owner, Port, PortMapping, Process};

pub use crate::state::cni_label::{
    CHAINED as LABEL_CHAINED, CONTAINER as LABEL_CONTAINER, IFNAME as LABEL_IFNAME,
    MODE as LABEL_MODE, NETNS as LABEL_NETNS, NETWORK as LABEL_NETWORK,
    NO_MASQUERADE as LABEL_NO_MASQUERADE, ROUTED as MODE_ROUTED,
};

/// Whose an attachment's record, lease and elements are.
pub fn owner(container_id: &str, ifname: &str) -> Owner {
    Owner {
        name: format!("{container_id}:{ifname}"),
        id: attachment_id(container_id, ifname),
    }
}

/// 12 hex digits of a hash of the container id and the interface name
/// (FNV-1a, 64 bits: it tells attachments apart, it guards against no
/// adversary), as `run`'s ids are 12 hex digits.
fn attachment_id(container_id: &str, ifname: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in container_id
        .as_bytes()
        .iter()
        .chain(b"\0")
        .chain(ifname.as_bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", hash >> 16)
}

/// A step's failure as the engine sees it: our code 110 with the cause,
/// or the spec's 11 (try again later) when the kernel said it was busy.
pub fn system(what: &str, err: &(dyn std::error::Error + 'static)) -> CniError {
    let code = if is_transient(err) {
        code::TRY_AGAIN
    } else {
        code::SYSTEM
    };
    CniError::new(code, format!("{what}: {}", Chain(err)))
}

/// Whether some cause of `err` is EAGAIN, EBUSY or EINTR: a moment later
/// the same request may succeed.
fn is_transient(err: &(dyn std::error::Error + 'static)) -> bool {
    has_errno(err, &[libc::EAGAIN, libc::EBUSY, libc::EINTR])
}

/// Whether some cause of `err` is one of `errnos`.
fn has_errno(err: &(dyn std::error::Error + 'static), errnos: &[i32]) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        let errno = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .or_else(|| err.downcast_ref::<nix::errno::Errno>().map(|e| *e as i32));
        if errno.is_some_and(|errno| errnos.contains(&errno)) {
            return true;
        }
        cause = err.source();
    }
    false
}

/// Whether the kernel refused the veth itself as existing: its peer's
/// name is taken in the container's namespace.
fn peer_name_taken(err: &network::Error) -> bool {
    matches!(
        err,
        network::Error::Netlink(netlink::Error::Request { action: "creating veth", source, .. })
            if source.raw_os_error() == Some(libc::EEXIST)
    )
}

fn from_firewall(err: firewall::Error) -> CniError {
    match err {
        firewall::Error::PortTaken(taken) => CniError::new(code::PORT_TAKEN, taken.to_string()),
        err => system("firewall", &err),
    }
}

fn from_apply(err: apply::Error) -> CniError {
    match err {
        apply::Error::Firewall(err) => from_firewall(err),
        err => system("publishing", &err),
    }
}

fn from_network(err: network::Error) -> CniError {
    match err {
        network::Error::Lease(err @ ipam::Error::Exhausted { .. }) => {
            CniError::new(code::NO_ADDRESS, err.to_string())
        }
        network::Error::Lease(err @ ipam::Error::ModeTaken { .. }) => {
            CniError::new(code::CONFIG, format!("mode: {err}"))
        }
        network::Error::Netlink(err @ netlink::Error::NotABridge { .. }) => {
            CniError::new(code::CONFIG, format!("bridge: {err}"))
        }
        err => system("network", &err),
    }
}

/// Refuses a host port of `config` that something on this host holds (a
/// bound socket: a `run` container's reservation, a host service), as
/// `run` does, before anything is made: code 100 naming the holder. What
/// only has an element (another attachment) the kernel refuses later.
pub fn check_ports(config: &Config) -> Result<(), CniError> {
    let mappings: Vec<PortMapping> = config
        .ports
        .iter()
        .map(|p| PortMapping {
            host_ip: Some(p.host_ip),
            host_port: Some(p.host_port),
            // CNI's portMappings have one hostPort each: no range.
            host_range: None,
            container_port: p.container_port,
            protocol: p.protocol,
        })
        .collect();
    let store = Store::new(&config.state_dir);
    Reservations::check(&mappings, Families::Ipv4, &|pid| store.container_of(pid)).map_err(|err| {
        match err {
            reserve::Error::InUse { .. } => CniError::new(code::PORT_TAKEN, err.to_string()),
            reserve::Error::NotLocal { .. } => {
                CniError::new(code::CONFIG, format!("runtimeConfig.portMappings: {err}"))
            }
            err => system("checking the host ports", &err),
        }
    })
}

/// Claims the record of the attachment: refused (code 101) when it exists.
pub fn claim(
    invocation: &Invocation,
    config: &Config,
    chained: bool,
    bridge: Option<&str>,
) -> Result<state::Registration, CniError> {
    let owner = owner(&invocation.container_id, &invocation.ifname);
    let command = vec!["cni".to_string(), config.name.clone()];
    let mut record = Record::new(&owner.name, &owner.id, Process::UNTIL_RELEASED, command);
    let mut labels = BTreeMap::from([
        (LABEL_CONTAINER.to_string(), invocation.container_id.clone()),
        (LABEL_IFNAME.to_string(), invocation.ifname.clone()),
        (LABEL_NETWORK.to_string(), config.name.clone()),
    ]);
    if let Some(netns) = &invocation.netns {
        labels.insert(LABEL_NETNS.to_string(), netns.clone());
    }
    if chained {
        labels.insert(LABEL_CHAINED.to_string(), "true".to_string());
    } else if config.routed {
        labels.insert(LABEL_MODE.to_string(), MODE_ROUTED.to_string());
        if !config.no_masquerade.is_empty() {
            let ranges: Vec<String> = config
                .no_masquerade
                .iter()
                .map(|(network, len)| format!("{network}/{len}"))
                .collect();
            labels.insert(LABEL_NO_MASQUERADE.to_string(), ranges.join(","));
        }
    }
    record.labels = labels;
    record.bridge = bridge.map(str::to_string);
    match Store::new(&config.state_dir).claim(record) {
        Ok((registration, _)) => Ok(registration),
        Err(state::Error::NameTaken { .. }) => Err(CniError::new(
            code::ALREADY_ATTACHED,
            format!(
                "container {} is attached with {} already (a second ADD needs a DEL first)",
                invocation.container_id, invocation.ifname
            ),
        )),
        Err(err) => Err(system("claiming the record", &err)),
    }
}

/// Opens the engine's namespace, refusing (code 4) what is not a network
/// namespace or is this process's own or PID 1's: plumbing "into" the host's
/// namespace would give the host the container's address and route. Opened
/// non-blocking so a FIFO cannot hang the engine.
fn open_netns(invocation: &Invocation) -> Result<OwnedFd, CniError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = invocation.netns.as_deref().unwrap_or_default();
    let bad = |why: String| CniError::new(code::ENV, format!("CNI_NETNS {path:?} {why}"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|err| bad(format!("cannot be opened: {err}")))?;
    if netlink::namespace_type(std::os::fd::AsFd::as_fd(&file)) != Some(libc::CLONE_NEWNET) {
        return Err(bad("is not a network namespace".to_string()));
    }
    let same = |a: &std::fs::Metadata, b: &std::fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        (a.dev(), a.ino()) == (b.dev(), b.ino())
    };
    let theirs = file
        .metadata()
        .map_err(|err| bad(format!("cannot be read: {err}")))?;
    let ours = std::fs::metadata("/proc/self/ns/net")
        .map_err(|err| bad(format!("cannot be compared with ours: {err}")))?;
    if same(&theirs, &ours) {
        return Err(bad(
            "is the plugin's own network namespace, not a container's".to_string(),
        ));
    }
    // A plugin started in a namespace of its own (`ip netns exec`, a
    // sidecar's) has the host's in PID 1: no container's either. Unreadable
    // (another pid namespace's PID 1, hidepid), it is no container's
    // namespace to compare with.
    if let Ok(init) = std::fs::metadata("/proc/1/ns/net")
        && same(&theirs, &init)
    {
        return Err(bad(
            "is the network namespace of PID 1, the host's, not a container's".to_string(),
        ));
    }
    Ok(OwnedFd::from(file))
}

/// For a DEL or CHECK: puts back the engine namespace's IPv6 defaults a
/// killed ADD left lent there (see netlink::lent), so a namespace with no
/// ADD to come is repaired too. A namespace that cannot be opened (gone,
/// not given, not a container's) had none lent by us; a failure is only
/// told: DEL and CHECK answer for the attachment, not for that.
pub fn repair_lent(invocation: &Invocation) {
    let dir = Path::new(netlink::LENT_DIR);
    let repaired = timed("lent repair", || {
        netlink::repair_lent(dir, || open_netns(invocation).ok())
    });
    match repaired {
        Ok(true) => tracing::info!(
            netns = invocation.netns.as_deref().unwrap_or_default(),
            "put back the IPv6 defaults a killed ADD had lent"
        ),
        Ok(false) => {}
        Err(err) => tracing::warn!(
            "putting back the IPv6 defaults a killed ADD had lent: {}",
            crate::error_chain::Chain(&err)
        ),
    }
}

/// ADD as the main plugin: the record, the lease with the bridge, sysctls
/// and tables, the veth into `CNI_NETNS` as `CNI_IFNAME`, the elements; the
/// result names what was made.
pub async fn add(invocation: &Invocation, config: &Config) -> Result<Outcome, CniError> {
    let netns = open_netns(invocation)?;
    timed("port check", || check_ports(config))?;
    timed("host addresses' routes", || {
        super::routed::check(config, &[])
    })?;
    let owner = owner(&invocation.container_id, &invocation.ifname);
    let mut registration = timed("record", || {
        claim(invocation, config, false, Some(&config.bridge))
    })?;
    // From here every early return drops what was taken: the registration
    // removes the record, the attachment gives the lease back.
    let bridge = Bridge {
        name: config.bridge.clone(),
        subnet: config.subnet,
        subnet6: config.subnet6,
    };
    let network = plan::network_part(
        &bridge.name,
        bridge.subnet,
        bridge.subnet6,
        &Snapshot::default(),
    );
    let holder = Holder {
        name: owner.name.clone(),
        id: owner.id.clone(),
        process: Process::UNTIL_RELEASED,
    };
    let mut attachment = timed_async(
        "lease, bridge, sysctls",
        apply::lease(
            &network,
            &bridge,
            None,
            None,
            &config.state_dir,
            &holder,
            config.routed,
        ),
    )
    .await
    .map_err(from_network)?;
    let (firewall, pending) = timed("base ruleset", || {
        let firewall = Firewall::open(&config.state_dir)?;
        let subnet6 = network.subnet6.map(|s| (s.network(), s.prefix_len()));
        // The network's elements, when the tables hold them already or
        // not, go with the container's (see `Firewall::publish_with`).
        let pending = if config.routed {
            firewall.ensure_base_for_routed(&network.bridge, &network.subnet)?
        } else {
            firewall.ensure_base_for(&network.bridge, &network.subnet, subnet6)?
        };
        if attachment.made_bridge() {
            firewall.remove_other_subnets(&network.bridge, &network.subnet, subnet6)?;
        }
        // The network's, as the bridge is (tagged with it, gone with it):
        // an ADD failing after this leaves them for the network's next ADD,
        // whose configuration names them too.
        // A routed network's are its attachments' (see
        // `Firewall::routed_no_masquerade`): none of its packets is seen
        // on its bridge.
        if !config.routed {
            firewall.ensure_no_masquerade(
                &network.bridge,
                &config.no_masquerade,
                &config.no_masquerade6,
            )?;
        }
        Ok((firewall, pending))
    })
    .map_err(from_firewall)?;
    let mut part = plan::container_part(
        &owner,
        bridge.subnet,
        attachment.address(),
        attachment.ipv6(),
        config.ports.clone(),
        Some(Generation::random()),
    );
    part.ifname = invocation.ifname.clone();
    if config.routed {
        // Its own address alone is on-link: everything goes via the host.
        part.prefix_len = 32;
        part.publication.routed = true;
    }
    let link = part.link(
        attachment.bridge_index(),
        attachment.bridge_mac(),
        bridge.subnet,
    );
    let nl = attachment.netlink().clone();
    let undo_link = |err: CniError| async {
        // The namespace outlives us: the pair would stay with it.
        if let Err(undo) = netlink::remove_link(&nl, &link.host_ifname).await {
            tracing::warn!("undoing a failed ADD: {}", Chain(&undo));
        }
        err
    };
    if firewall::interface_exists(&link.host_ifname) {
        // Read only here, not on every ADD (reading every record makes ADD
        // grow with the attachments): the id is a 48-bit hash, so two
        // attachments (or a `run` container) can share it, and with it the
        // host veth's name; then the link is theirs, not a leftover.
        if let Some(other) = id_holder(&config.state_dir, &owner)? {
            return Err(CniError::new(
                code::SYSTEM,
                format!(
                    "{} has the id {} already, which names this attachment's host link; \
                     use another container id or interface name",
                    other.name, owner.id
                ),
            ));
        }
        // Its last DEL's, still being deleted in the background (or a
        // crashed ADD's): no record has its id, so the link is nobody's.
        if let Err(err) = netlink::remove_link(&nl, &link.host_ifname).await {
            return Err(system("removing a leftover link", &err));
        }
    }
    if let Err(err) = timed_async("plumb", attachment.plumb_netns(&link, netns)).await {
        // The host end was free (a leftover was removed above): the name
        // taken is the one inside. Only the veth's creation says so: a
        // namespace with another attachment's default route refuses ours
        // with EEXIST too, which its own error names.
        let err = if peer_name_taken(&err) {
            CniError::new(
                code::SYSTEM,
                format!(
                    "CNI_NETNS {:?} has an interface {} already",
                    invocation.netns.as_deref().unwrap_or_default(),
                    invocation.ifname
                ),
            )
        } else {
            from_network(err)
        };
        return Err(undo_link(err).await);
    }
    let mut no_reservations = Reservations::default();
    let published = timed_async(
        "publish batch",
        apply::publish_with(
            &firewall,
            &config.state_dir,
            &mut part.publication,
            &mut no_reservations,
            &pending,
        ),
    );
    let publication = match published.await {
        Ok(publication) => publication,
        Err(err) => return Err(undo_link(from_apply(err)).await),
    };
    if config.routed {
        if let Err(err) =
            firewall.routed_no_masquerade(&link.host_ifname, &config.no_masquerade, true)
        {
            if let Err(undo) = firewall.unpublish(&publication) {
                tracing::warn!("undoing a failed ADD: {}", Chain(&undo));
            }
            return Err(undo_link(from_firewall(err)).await);
        }
    }
    let host = if config.routed {
        // Every routed host end's, set as it was made.
        Ok(Some(netlink::HOST_MAC.to_vec()))
    } else {
        timed("host veth", || netlink::hardware_address(&link.host_ifname))
    };
    let recorded = registration.update(|record| {
        record.address = Some(publication.address);
        record.address6 = publication.address6;
        record.veth = Some(publication.veth.clone());
        record.ports = publication.ports.iter().map(|&p| p.into()).collect();
        record.generation = publication.generation.map(Generation::get);
    });
    let host_mac = match (host, recorded) {
        (Ok(Some(mac)), Ok(())) => mac,
        (host, recorded) => {
            let err = match (host, recorded) {
                (_, Err(err)) => system("writing the record", &err),
                (Err(err), _) => system("reading the host veth", &err),
                _ => CniError::new(
                    code::SYSTEM,
                    format!("link {} went away during ADD", link.host_ifname),
                ),
            };
            if let Err(undo) = firewall.unpublish(&publication) {
                tracing::warn!("undoing a failed ADD: {}", Chain(&undo));
            }
            if config.routed {
                let ranges = &config.no_masquerade;
                if let Err(undo) = firewall.routed_no_masquerade(&link.host_ifname, ranges, false) {
                    tracing::warn!("undoing a failed ADD: {}", Chain(&undo));
                }
            }
            return Err(undo_link(err).await);
        }
    };
    // The procfs instance the plumbing's sysctls went through (its last
    // close unmounts, see netlink::procfs) goes to the socket's holder,
    // which closes it once we have exited, as `run` does: else `main`
    // forked a child after the answer only to close it, and the engine,
    // which waits for our exit, waited for that fork and its page tables.
    firewall.close_with(netlink::procfs::to_close(), None);
    attachment.keep();
    registration.keep();
    Ok(Outcome {
        interfaces: vec![
            Interface {
                name: link.host_ifname.clone(),
                mac: host_mac,
                sandbox: None,
            },
            Interface {
                name: part.ifname.clone(),
                mac: part.mac.to_vec(),
                sandbox: invocation.netns.clone(),
            },
        ],
        address: part.address,
        prefix_len: part.prefix_len,
        gateway: part.gateway,
        interface: 1,
        ipv6: part
            .ipv6
            .map(|(address, subnet6)| (address, subnet6.prefix_len(), subnet6.gateway())),
    })
}

/// The record of another container or attachment with `owner`'s id,
/// found by the id's markers (see `state::markers`), not by reading every
/// record.
fn id_holder(state_dir: &Path, owner: &Owner) -> Result<Option<Record>, CniError> {
    let records = Store::new(state_dir)
        .with_id(&owner.id)
        .map_err(|err| system("reading the records", &err))?;
    Ok(records.into_iter().find(|r| r.name != owner.name))
}

/// The attachment's record on network `network`, if there is one: its
/// own file, read alone (see `Store::get`), whatever other records there
/// are. The container's attachment with this interface on another network
/// is not this network's to delete or check: an engine whose ADD to a
/// second network was refused (the interface taken) cleans up with that
/// network's DEL, which took the first network's attachment away.
pub fn find(state_dir: &Path, network: &str, container_id: &str, ifname: &str) -> Option<Record> {
    find_any(state_dir, container_id, ifname)
        .filter(|record| record.labels.get(LABEL_NETWORK).map(String::as_str) == Some(network))
}

/// The network of the container's attachment `ifname` when it is recorded
/// on one other than `network` (see `find`): that network's DEL leaves it,
/// and an engine's log should say why the attachment outlived it.
pub fn other_network(
    state_dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Option<String> {
    find_any(state_dir, container_id, ifname)
        .and_then(|record| record.labels.get(LABEL_NETWORK).cloned())
        .filter(|recorded| recorded != network)
}

/// The attachment's record on whatever network.
fn find_any(state_dir: &Path, container_id: &str, ifname: &str) -> Option<Record> {
    let owner = owner(container_id, ifname);
    Store::new(state_dir)
        .get(&owner.name)
        .filter(|record| record.id == owner.id)
}

/// The unmasqueraded ranges a routed attachment's ADD added, as its
/// record says (none without the label: routed mode and the label came
/// together).
fn recorded_no_masquerade(record: &Record) -> Vec<(Ipv4Addr, u8)> {
    let Some(ranges) = record.labels.get(LABEL_NO_MASQUERADE) else {
        return Vec::new();
    };
    ranges
        .split(',')
        .filter_map(|range| {
            let (network, len) = range.split_once('/')?;
            Some((network.parse().ok()?, len.parse().ok()?))
        })
        .collect()
}

/// What a record says the attachment published.
fn publication_of(record: &Record) -> Option<Publication> {
    Some(Publication {
        owner: Owner {
            name: record.name.clone(),
            id: record.id.clone(),
        },
        address: record.address?,
        address6: record.address6,
        veth: record.veth.clone().unwrap_or_default(),
        ports: record.ports.iter().map(|&p| Port::from(p)).collect(),
        generation: record.generation.and_then(Generation::new),
        routed: record.is_routed(),
    })
}

/// DEL of the attachment with `record`, either mode: its elements and its
/// record now; its host veth (with its peer, when the namespace is still
/// there), the connections of its address (TCP too: an engine expects
/// nothing of it left) and then its lease in the returned work, for after
/// the answer (see `forget`). Goes on past each failure; the record stays when one failed,
/// so a DEL again finishes the job.
/// A routed attachment's unmasqueraded ranges go too, as its record names
/// them (see `Firewall::routed_no_masquerade`).
pub fn remove(state_dir: &Path, record: &Record) -> (Background, Result<(), CniError>) {
    let mut later = Background::default();
    let mut failed: Vec<CniError> = Vec::new();
    let mut socket = None;
    let mut ports = Vec::new();
    if let Some(publication) = publication_of(record) {
        match Firewall::open(state_dir) {
            Ok(firewall) => {
                if let Err(err) = timed("unpublish batch", || firewall.unpublish(&publication)) {
                    failed.push(system("removing its elements", &err));
                }
                if publication.routed && !publication.veth.is_empty() {
                    let ranges = recorded_no_masquerade(record);
                    let unmasqueraded =
                        firewall.routed_no_masquerade(&publication.veth, &ranges, false);
                    if let Err(err) = unmasqueraded {
                        failed.push(system("removing its unmasqueraded ranges", &err));
                    }
                }
                ports = publication
                    .ports
                    .iter()
                    .map(|p| (p.protocol, p.host_port))
                    .collect();
                match firewall.netfilter_socket() {
                    // Held by the work after the answer, the socket's last
                    // close (which waits for the kernel) is not this one.
                    Ok(fd) => socket = Some(fd),
                    Err(err) => failed.push(system("forgetting its connections", &err)),
                }
                drop(firewall);
            }
            Err(err) => failed.push(system("the firewall", &err)),
        }
    }
    // Gone with its namespace, or deleted after the answer. The name is free
    // again by the next ADD (which deletes a leftover first), and
    // `supervisor gc` removes one no record explains.
    let veth = record
        .veth
        .as_deref()
        .filter(|v| firewall::interface_exists(v))
        .map(str::to_string);
    let chained = record.labels.contains_key(LABEL_CHAINED);
    if chained {
        later.links.extend(veth);
        // The address is the other plugin's, given back by its DEL right
        // after ours: the connections are forgotten before we answer.
        if let (Some(fd), Some(addr)) = (socket.as_ref(), record.address) {
            let addresses: Vec<IpAddr> = std::iter::once(addr.into())
                .chain(record.address6.map(IpAddr::from))
                .collect();
            let forgotten = fd
                .try_clone()
                .map_err(conntrack::Error::Socket)
                .and_then(|fd| conntrack::forget_with(fd, &ports, Some(&addresses)));
            if let Err(err) = forgotten {
                failed.push(system("forgetting its connections", &err));
            }
        }
    } else if let (Some(bridge), Some(addr)) = (&record.bridge, record.address) {
        // The veth goes before the address, after the answer: see `forget`.
        match LeaseDir::new(state_dir, bridge) {
            Err(err) => {
                later.links.extend(veth);
                failed.push(system(&format!("giving back {addr}"), &err));
            }
            Ok(leases) => later.leftovers.push(Leftovers {
                link: veth,
                socket: socket.as_ref().and_then(|fd| fd.try_clone().ok()),
                address: addr,
                address6: record.address6,
                leases,
                id: record.id.clone(),
                bridge: bridge.clone(),
            }),
        }
    } else if let Some(bridge) = &record.bridge {
        // Recorded before its address (an ADD killed on its way): its veth,
        // if it was made, is not recorded but named by its id. Rare: it goes
        // now, before what its id holds.
        let link = network::host_ifname(&record.id);
        let released = if firewall::interface_exists(&link) {
            netlink::remove_link_now(&link).map_err(|err| {
                system(
                    &format!("deleting link {link}, which keeps its lease held"),
                    &err,
                )
            })
        } else {
            Ok(())
        }
        .and_then(|()| {
            LeaseDir::new(state_dir, bridge)
                .and_then(|dir| dir.release_all_held_by(&record.id))
                .map_err(|err| system("giving back its lease", &err))
        });
        if let Err(err) = released {
            failed.push(err);
        }
    }
    later.sockets.extend(socket);
    if let Some(first) = failed.into_iter().next() {
        return (later, Err(first));
    }
    let store = Store::new(state_dir);
    let removed = store
        .lock()
        .and_then(|_lock| store.remove(record))
        .map_err(|err| system("removing the record", &err));
    (later, removed.map(drop))
}

/// CHECK of a main-plugin attachment: the host veth on its bridge, the
/// interface inside with its address, the elements. The first thing
/// missing is the error, named.
pub async fn check(
    invocation: &Invocation,
    config: &Config,
    record: &Record,
) -> Result<(), CniError> {
    let broken = |what: String| CniError::new(code::BROKEN, what);
    let nl = Netlink::connect().map_err(|err| system("netlink", &err))?;
    let routed = record.is_routed();
    if let Some(veth) = &record.veth {
        match netlink::link_state(&nl, veth).await {
            Ok(Some(state)) if routed && state.bridge.is_none() => {
                check_route(veth, state.index, record.address)?;
            }
            Ok(Some(state)) if routed => {
                return Err(broken(format!(
                    "link {veth} is on bridge {}, where a routed attachment's is on none",
                    state.bridge.as_deref().unwrap_or_default()
                )));
            }
            Ok(Some(state)) if state.bridge.as_deref() == Some(config.bridge.as_str()) => {}
            Ok(Some(state)) => {
                return Err(broken(format!(
                    "link {veth} is not on bridge {} (it is on {})",
                    config.bridge,
                    state.bridge.as_deref().unwrap_or("none")
                )));
            }
            Ok(None) => {
                return Err(broken(format!(
                    "link {veth} (the host end of {}) is gone",
                    invocation.ifname
                )));
            }
            Err(err) => return Err(system("reading the host veth", &err)),
        }
        let netns = open_netns(invocation)?;
        let addresses = netlink::addresses_in(std::os::fd::AsFd::as_fd(&netns))
            .await
            .map_err(|err| system("reading the container's addresses", &err))?;
        let address = record.address.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let wanted = std::iter::once(IpAddr::V4(address)).chain(record.address6.map(IpAddr::V6));
        for address in wanted {
            if !addresses
                .iter()
                .any(|a| a.interface == invocation.ifname && a.address == address)
            {
                return Err(broken(format!(
                    "interface {} in {} does not have address {address}",
                    invocation.ifname,
                    invocation.netns.as_deref().unwrap_or_default()
                )));
            }
        }
    }
    check_elements(config, record)
}

/// A routed attachment's host route: its address routed out of its host
/// link `veth` (index `index`), else 104 (broken) naming what is gone.
fn check_route(veth: &str, index: u32, address: Option<Ipv4Addr>) -> Result<(), CniError> {
    let Some(address) = address else {
        return Ok(());
    };
    match netlink::route_interface(address) {
        Ok(Some(oif)) if oif == index => Ok(()),
        Ok(_) => Err(CniError::new(
            code::BROKEN,
            format!(
                "route {address}/32 via link {veth} (the host's route to the container) is gone"
            ),
        )),
        Err(err) => Err(system("reading the host's route", &err)),
    }
}

/// Every element the record says it published is in the kernel, looked
/// up by key (see `Firewall::first_missing`).
pub fn check_elements(config: &Config, record: &Record) -> Result<(), CniError> {
    let Some(publication) = publication_of(record) else {
        return Ok(());
    };
    let firewall = Firewall::open(&config.state_dir).map_err(from_firewall)?;
    let elements = publication.elements();
    let missing = firewall.first_missing(&elements).map_err(from_firewall)?;
    firewall.close();
    match missing {
        None => Ok(()),
        Some(element) => Err(CniError::new(
            code::BROKEN,
            format!(
                "element {} of {} is missing from {}",
                element.label,
                record.name,
                element.target.name()
            ),
        )),
    }
}

/// The attachments of network `name` under `state_dir`.
pub fn of_network(state_dir: &Path, name: &str) -> Result<Vec<Record>, CniError> {
    let records = Store::new(state_dir)
        .records()
        .map_err(|err| system("reading the records", &err))?;
    Ok(records
        .into_iter()
        .filter(|r| r.supervisor.is_none())
        .filter(|r| r.labels.get(LABEL_NETWORK).map(String::as_str) == Some(name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_kernel_is_try_again_later_and_anything_else_ours() {
        let busy = netlink::Error::Socket(std::io::Error::from_raw_os_error(libc::EBUSY));
        assert_eq!(system("netlink", &busy).code, code::TRY_AGAIN);
        let gone = netlink::Error::Socket(std::io::Error::from_raw_os_error(libc::ENOENT));
        let err = system("netlink", &gone);
        assert_eq!(err.code, code::SYSTEM);
        assert!(
            err.msg.starts_with("netlink: opening a netlink socket"),
            "{}",
            err.msg
        );
    }

    #[test]
    fn an_attachment_is_named_by_container_and_interface_and_its_veth_fits() {
        let a = owner("c1", "eth0");
        let b = owner("c1", "eth1");
        assert_eq!(a.name, "c1:eth0");
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 12);
        assert_eq!(a, owner("c1", "eth0"));
        assert!(netlink::check_ifname(&network::host_ifname(&a.id)).is_ok());
        assert_eq!(Owner::from_comment(&a.comment()), Some(a));
    }
}
