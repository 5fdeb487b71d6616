//! `supervisor check`: what the records say against what the lease
//! directories, the links and the firewall hold, read back and compared,
//! with nothing changed. One line per finding, naming the object: a live
//! container's missing lease, link or element; a record, lease, link,
//! element or join marker that no live container explains (what `gc`
//! would remove).
//!
//! A container between its record and its first publish has no address
//! or veth recorded yet: only its stale parts are judged then.

use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use caps::Capability;

use super::inspect::{Link, elements_of, link_of};
use super::{Error, block_on};
use crate::container_log;
use crate::firewall::{Firewall, Owned, Publication};
use crate::ipam::LeaseDir;
use crate::netlink::{self, Netlink};
use crate::state::{self, Entry, Record, StaleMarker, Store, file};
use crate::values::{Generation, Owner, Port};

/// A record as read, with whether its supervisor lives.
#[derive(Debug)]
struct Seen {
    record: Record,
    alive: bool,
    /// Its veth as the kernel has it.
    link: Option<Link>,
    /// Its recorded cgroup directories that exist.
    cgroups: Vec<PathBuf>,
}

/// A lease as read, with whether its holder's supervisor lives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeenLease {
    bridge: String,
    addr: Ipv4Addr,
    /// (name, id) of the holder; None when the lease is unreadable.
    holder: Option<(String, String)>,
    alive: bool,
}

/// Everything `check` compares.
#[derive(Debug, Default)]
struct Facts {
    records: Vec<Seen>,
    /// Record files this version cannot read, or temporaries: with why.
    broken: Vec<(PathBuf, String)>,
    leases: Vec<SeenLease>,
    /// IPv6 addresses whose lease link no record holds: (bridge, address).
    stale6: Vec<(String, std::net::Ipv6Addr)>,
    /// Container veths (`sv-…`) on each known bridge: (bridge, link).
    ports: Vec<(String, String)>,
    elements: Vec<Owned>,
    /// Markers no record explains, as `gc` judges them.
    markers: Vec<StaleMarker>,
    /// Live records whose id has no marker: (name, id).
    unmarked: Vec<(String, String)>,
    /// Logs of names with no record, live or exited, and no writer.
    logs: Vec<PathBuf>,
    /// The ids this state directory knows (see `reconcile::known_ids`):
    /// an element of an owner outside them is another state directory's.
    known: BTreeSet<String>,
}

/// Prints every drift found; Ok(true) when there is none.
pub fn check(state_dir: &Path, out: &mut dyn io::Write) -> Result<bool, Error> {
    super::require(
        "check",
        &[Capability::CAP_NET_ADMIN],
        "to read links and firewall elements",
    )?;
    let facts = block_on(read(state_dir))?;
    let findings = findings(&facts);
    for finding in &findings {
        writeln!(out, "{finding}").map_err(Error::Output)?;
    }
    Ok(findings.is_empty())
}

async fn read(state_dir: &Path) -> Result<Facts, Error> {
    let nl = Netlink::connect()?;
    let mut facts = Facts::default();
    let mut bridges = BTreeSet::new();
    let store = Store::new(state_dir);
    for entry in store.entries()? {
        match entry {
            Entry::Record(record) => {
                bridges.extend(record.bridge.clone());
                let link = link_of(&nl, &record).await?;
                let recorded = record.resources.as_ref().map(|l| l.cgroup.clone());
                let cgroups = recorded.unwrap_or_default().into_iter();
                facts.records.push(Seen {
                    alive: !record.is_stale(),
                    record: *record,
                    link,
                    cgroups: cgroups.filter(|dir| dir.is_dir()).collect(),
                });
            }
            Entry::Corrupt { path, problem } => facts.broken.push((path, problem)),
            Entry::Temporary { path } => facts.broken.push((path, "unfinished".into())),
        }
    }
    let live: Vec<&Record> = facts
        .records
        .iter()
        .filter(|s| s.alive)
        .map(|s| &s.record)
        .collect();
    facts.markers = store.stale_joins(&live)?;
    let records: Vec<&Record> = facts.records.iter().map(|s| &s.record).collect();
    facts.markers.extend(store.stale_ids(&records)?);
    facts.unmarked = store
        .unmarked(&live)
        .iter()
        .map(|r| (r.name.clone(), r.id.clone()))
        .collect();
    facts.logs = unexplained_logs(state_dir, &store, &records)?;
    let leases = state_dir.join("leases");
    for dir in file::names(&leases).map_err(state::Error::from)? {
        if dir.starts_with('.') || !leases.join(&dir).is_dir() {
            continue;
        }
        let lease_dir = LeaseDir::new(state_dir, &dir)?;
        for (addr, holder) in lease_dir.leases()? {
            facts.leases.push(SeenLease {
                bridge: dir.clone(),
                addr,
                alive: holder.as_ref().is_some_and(|h| h.process.is_alive()),
                holder: holder.map(|h| (h.name, h.id)),
            });
        }
        for addr6 in lease_dir.stale_links6()? {
            facts.stale6.push((dir.clone(), addr6));
        }
        bridges.insert(dir);
    }
    let live: BTreeSet<String> = facts
        .records
        .iter()
        .filter(|s| s.alive)
        .filter_map(|s| s.record.veth.clone())
        .collect();
    let explained = |name: &str| !name.starts_with("sv-") || live.contains(name);
    for bridge in bridges {
        for name in netlink::container_links(&nl, &bridge, explained).await? {
            if name.starts_with("sv-") {
                facts.ports.push((bridge.clone(), name));
            }
        }
    }
    facts.known = crate::reconcile::known_ids(state_dir, &store.entries()?);
    let firewall = Firewall::open(state_dir)?;
    facts.elements = firewall.owned_elements()?;
    firewall.close();
    Ok(facts)
}

/// The logs `gc` would remove that no record, live or exited, explains
/// (an exited container's log is its own until `rm` or `gc`); not one a
/// `run -d` writes while it starts, before it claims its name.
fn unexplained_logs(
    state_dir: &Path,
    store: &Store,
    records: &[&Record],
) -> Result<Vec<PathBuf>, Error> {
    let mut named: BTreeSet<String> = records.iter().map(|r| r.name.clone()).collect();
    named.extend(store.exited().all()?.into_iter().map(|e| e.name));
    Ok(container_log::names(state_dir)
        .into_iter()
        .filter(|name| !named.contains(name))
        .map(|name| container_log::Paths::new(state_dir, &name))
        .filter(|paths| container_log::writer_state(paths) == container_log::Follow::Ended)
        .map(|paths| paths.current)
        .collect())
}

/// Each disagreement between the records and what is held, as a line.
fn findings(facts: &Facts) -> Vec<String> {
    let mut found = Vec::new();
    let live: Vec<&Seen> = facts.records.iter().filter(|s| s.alive).collect();
    let is_live = |id: &str| live.iter().any(|s| s.record.id == id);
    for (path, problem) in &facts.broken {
        found.push(format!("record {}: {problem}", path.display()));
    }
    for seen in facts.records.iter().filter(|s| !s.alive) {
        let r = &seen.record;
        found.push(format!(
            "record {} ({}): its supervisor (pid {}) is gone",
            r.name, r.id, r.supervisor.pid
        ));
        for dir in &seen.cgroups {
            found.push(format!("cgroup {}: its container is gone", dir.display()));
        }
    }
    found.extend(facts.markers.iter().map(|stale| stale.to_string()));
    for (name, id) in &facts.unmarked {
        found.push(format!("record {name} ({id}): its id has no marker"));
    }
    for log in &facts.logs {
        found.push(format!("log {}: no record explains it", log.display()));
    }
    for seen in &live {
        found.extend(missing(seen, facts));
    }
    for (bridge, addr6) in &facts.stale6 {
        found.push(format!(
            "lease {addr6} (bridge {bridge}): no record holds this IPv6 address"
        ));
    }
    for lease in &facts.leases {
        let place = format!("lease {} (bridge {})", lease.addr, lease.bridge);
        match &lease.holder {
            None => found.push(format!("{place}: unreadable")),
            Some((name, id)) if !lease.alive => {
                found.push(format!("{place}: its holder {name} ({id}) is gone"))
            }
            Some((name, id)) if !is_live(id) => {
                found.push(format!("{place}: its holder {name} ({id}) has no record"))
            }
            Some(_) => {}
        }
    }
    let live_links: BTreeSet<&str> = live
        .iter()
        .filter_map(|s| s.record.veth.as_deref())
        .collect();
    for (bridge, name) in &facts.ports {
        if !live_links.contains(name.as_str()) {
            found.push(format!(
                "link {name} (bridge {bridge}): no live container has it"
            ));
        }
    }
    for element in &facts.elements {
        if let Some(owner) = &element.owner
            && !is_live(&owner.id)
            && facts.known.contains(&owner.id)
        {
            found.push(format!(
                "element {element}: its owner {owner} is no live container"
            ));
        }
    }
    found
}

/// What a live, plumbed container should hold and does not.
fn missing(seen: &Seen, facts: &Facts) -> Vec<String> {
    let r = &seen.record;
    let mut found = Vec::new();
    // Recorded before it is made: judged once the container is.
    let made = r.container.is_some();
    for dir in r.resources.iter().flat_map(|l| &l.cgroup) {
        if made && !seen.cgroups.contains(dir) {
            let (name, id) = (&r.name, &r.id);
            found.push(format!(
                "cgroup {} of {name} ({id}): missing",
                dir.display()
            ));
        }
    }
    let (Some(bridge), Some(address), Some(veth)) = (&r.bridge, r.address, &r.veth) else {
        return found;
    };
    let who = format!("{} ({})", r.name, r.id);
    let lease = facts
        .leases
        .iter()
        .find(|l| l.bridge == *bridge && l.addr == address);
    match lease.and_then(|l| l.holder.as_ref()) {
        Some((_, id)) if *id == r.id => {}
        Some((name, id)) => found.push(format!(
            "lease {address} (bridge {bridge}) of {who}: held by {name} ({id})"
        )),
        None if lease.is_some() => {}
        None => found.push(format!(
            "lease {address} (bridge {bridge}) of {who}: missing"
        )),
    }
    let routed = r.is_routed();
    match &seen.link {
        None => found.push(format!("link {veth} of {who}: missing")),
        Some(link) if routed => {
            if let Some(other) = &link.bridge {
                found.push(format!("link {veth} of {who}: on bridge {other}, routed"));
            }
        }
        Some(link) if link.bridge.as_deref() != Some(bridge.as_str()) => {
            found.push(format!("link {veth} of {who}: not on bridge {bridge}"))
        }
        Some(_) => {}
    }
    let publication = Publication {
        owner: Owner {
            name: r.name.clone(),
            id: r.id.clone(),
        },
        address,
        address6: r.address6,
        veth: veth.clone(),
        ports: r.ports.iter().map(|&p| Port::from(p)).collect(),
        generation: r.generation.and_then(Generation::new),
        routed,
    };
    let held: Vec<&Owned> = elements_of(&facts.elements, &r.id).collect();
    for element in publication.elements() {
        if !held
            .iter()
            .any(|h| h.target == element.target && h.key == element.key)
        {
            let planned = Owned::from(element);
            found.push(format!("element {planned} of {who}: missing"));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Target;
    use crate::values::Process;

    fn web(alive: bool) -> Seen {
        let process = Process {
            pid: 4242,
            start_time: 1,
        };
        let mut record = Record::new("web", "0123456789ab", process, vec!["true".into()]);
        record.bridge = Some("sv0".into());
        record.address = Some(Ipv4Addr::new(172, 16, 0, 2));
        record.veth = Some("sv-0123456789ab".into());
        Seen {
            record,
            alive,
            link: Some(Link {
                name: "sv-0123456789ab".into(),
                index: 7,
                up: true,
                bridge: Some("sv0".into()),
            }),
            cgroups: Vec::new(),
        }
    }

    /// What a live `web` holds when nothing drifted.
    fn consistent() -> Facts {
        consistent_with(None, Vec::new())
    }

    /// `consistent`, with an IPv6 address and published ports.
    fn consistent_with(address6: Option<std::net::Ipv6Addr>, ports: Vec<Port>) -> Facts {
        let mut seen = web(true);
        seen.record.address6 = address6;
        seen.record.ports = ports.iter().map(|&p| p.into()).collect();
        let owner = Owner {
            name: "web".into(),
            id: "0123456789ab".into(),
        };
        let publication = Publication {
            owner: owner.clone(),
            address: Ipv4Addr::new(172, 16, 0, 2),
            address6,
            veth: "sv-0123456789ab".into(),
            ports,
            generation: None,
            routed: false,
        };
        Facts {
            records: vec![seen],
            leases: vec![SeenLease {
                bridge: "sv0".into(),
                addr: Ipv4Addr::new(172, 16, 0, 2),
                holder: Some(("web".into(), "0123456789ab".into())),
                alive: true,
            }],
            ports: vec![("sv0".into(), "sv-0123456789ab".into())],
            elements: publication
                .elements()
                .into_iter()
                .map(|e| Owned {
                    target: e.target,
                    key: e.key,
                    owner: Some(owner.clone()),
                })
                .collect(),
            known: BTreeSet::from(["0123456789ab".to_string()]),
            ..Facts::default()
        }
    }

    #[test]
    fn a_container_holding_what_its_record_says_is_no_drift() {
        assert_eq!(findings(&consistent()), Vec::<String>::new());
    }

    #[test]
    fn a_missing_element_link_and_lease_are_each_named() {
        let mut facts = consistent();
        facts.elements.remove(1);
        facts.records[0].link = None;
        facts.ports.clear();
        facts.leases.clear();
        assert_eq!(
            findings(&facts),
            [
                "lease 172.16.0.2 (bridge sv0) of web (0123456789ab): missing",
                "link sv-0123456789ab of web (0123456789ab): missing",
                "element mac_guard \"sv-0123456789ab\" . 02:42:ac:10:00:02 of web (0123456789ab): missing",
            ]
        );
    }

    #[test]
    fn a_recorded_generation_without_its_elements_is_named() {
        let mut facts = consistent();
        facts.records[0].record.generation = Some(0x8f3a_0c11);
        assert_eq!(
            findings(&facts),
            [
                "element generations 172.16.0.2 of web (0123456789ab): missing",
                "element live 172.16.0.2 . 0x8f3a0c11 of web (0123456789ab): missing",
            ]
        );
    }

    #[test]
    fn a_dual_stack_containers_missing_ipv6_elements_are_named() {
        use crate::values::{HostIp, Protocol};
        let port = |host_ip| Port {
            host_ip,
            host_port: 8080,
            container_port: 8000,
            protocol: Protocol::Tcp,
        };
        let ports = vec![port(HostIp::AnyV4), port(HostIp::AnyV6)];
        let mut facts = consistent_with(Some("fd53:7570:6572::2".parse().unwrap()), ports);
        assert_eq!(findings(&facts), Vec::<String>::new());
        let ipv6 = |o: &Owned| matches!(o.target, Target::Ports6(_) | Target::SpoofGuard6);
        let before = facts.elements.len();
        facts.elements.retain(|o| !ipv6(o));
        assert_eq!(before - facts.elements.len(), 3, "its port and two guards");
        let found = findings(&facts);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found.iter().any(|f| f.starts_with("element tcp_ports 8080")
                && f.ends_with("of web (0123456789ab): missing")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("spoof_guard6") && f.contains("fd53:7570:6572::2")),
            "{found:?}"
        );
    }

    #[test]
    fn what_a_dead_supervisor_left_is_named_as_gc_would_remove_it() {
        let mut facts = consistent();
        facts.records[0].alive = false;
        facts.leases[0].alive = false;
        let found = findings(&facts);
        assert_eq!(
            found[0],
            "record web (0123456789ab): its supervisor (pid 4242) is gone"
        );
        assert_eq!(
            found[1],
            "lease 172.16.0.2 (bridge sv0): its holder web (0123456789ab) is gone"
        );
        assert_eq!(
            found[2],
            "link sv-0123456789ab (bridge sv0): no live container has it"
        );
        assert!(found[3].starts_with("element spoof_guard"), "{found:?}");
        assert!(found[3].ends_with("its owner web (0123456789ab) is no live container"));
        assert_eq!(found.len(), 5);
        // Elements of an owner this state directory knows nothing of are
        // another state directory's: not named, as gc leaves them.
        facts.known.clear();
        let found = findings(&facts);
        assert!(!found.iter().any(|f| f.starts_with("element")), "{found:?}");
    }

    #[test]
    fn a_live_containers_missing_cgroup_and_a_dead_ones_left_cgroup_are_named() {
        let dir = PathBuf::from("/sys/fs/cgroup/memory/supervisor-0/0123456789ab");
        let mut facts = consistent();
        let seen = &mut facts.records[0];
        seen.record.container = Some(Process {
            pid: 4243,
            start_time: 2,
        });
        seen.record.resources = Some(Box::new(state::Limits {
            cgroup: vec![dir.clone()],
            ..state::Limits::default()
        }));
        assert_eq!(
            findings(&facts),
            [
                "cgroup /sys/fs/cgroup/memory/supervisor-0/0123456789ab of web (0123456789ab): missing"
            ]
        );
        facts.records[0].cgroups = vec![dir];
        assert_eq!(findings(&facts), Vec::<String>::new());
        facts.records[0].alive = false;
        let found = findings(&facts);
        assert_eq!(
            found[1],
            "cgroup /sys/fs/cgroup/memory/supervisor-0/0123456789ab: its container is gone"
        );
    }
}
