//! The life of one container: validate, preflight, spawn, release,
//! supervise, tear down, and the exit code. Its network is a `plan`, made
//! from the lease and the reserved ports and applied by `plan::apply`;
//! `dry_run` prints the plan instead.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caps::Capability;
use tokio::time::Sleep;

use crate::cgroup::{self, Cgroup};
use crate::container_log;
use crate::error_chain::{Chain, eprint_line};
use crate::etc_files::{self, EtcFiles};
use crate::firewall::{self, Firewall, PendingNetwork, Publication};
use crate::ipam::Holder;
use crate::milestones::{pause_at, phase, timed, timed_async};
use crate::netlink::{self, PreparedNetns};
use crate::network::{self, Attachment};
use crate::nftables::AfterExit;
use crate::plan::{self, Snapshot, apply};
use crate::proxy::{self, Proxies};
use crate::realtime;
use crate::reconcile;
use crate::reserve::{self, Families, Reservations};
use crate::signals::{self, Signals};
use crate::spawn::{
    self, Confinement, Container, ExitStatus, NewNetns, Pidfd, SetUp, SpawnConfig, SpawnError,
    capability_names as names,
};
use crate::spec::{Network, NetworkMode, RunOptions, RunSpec, SpecError};
use crate::state::{self, ExecContext, Limits, Record, Registration, Store};
use crate::values::{Generation, Loopback6Cgroup, Owner, PortMapping, Process};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("missing capabilities {}: run as root", names(.0))]
    MissingCapabilities(Vec<Capability>),
    #[error(
        "the container would keep {}, which the supervisor itself does not have: give it to the supervisor, or leave it out (--cap-drop)",
        names(.0)
    )]
    CapabilitiesNotHeld(Vec<Capability>),
    #[error("setting up signal handling")]
    Signals(#[source] io::Error),
    #[error("starting the async runtime")]
    Runtime(#[source] io::Error),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Network(#[from] network::Error),
    #[error(transparent)]
    Firewall(#[from] firewall::Error),
    #[error(transparent)]
    Reserve(#[from] reserve::Error),
    /// Named with its bridge where the run knows it (see `connect`).
    #[error("{}", .bridge.as_deref().map_or("the bridge".to_string(), |b| format!("bridge {b}")))]
    AddressTaken {
        bridge: Option<String>,
        #[source]
        source: Box<apply::Error>,
    },
    #[error(transparent)]
    State(#[from] state::Error),
    #[error("reading /proc for the record")]
    Proc(#[source] io::Error),
    #[error("waiting for the container")]
    Wait(#[source] io::Error),
    #[error(transparent)]
    EtcFiles(#[from] etc_files::WriteError),
    #[error(transparent)]
    Filesystem(#[from] crate::filesystem::PrepareError),
    #[error(transparent)]
    Plan(#[from] plan::Conflict),
    #[error(transparent)]
    NeedsIpv6(#[from] plan::NeedsIpv6),
    #[error(transparent)]
    Proxy(#[from] proxy::Error),
    #[error("run -d: {0}")]
    Detach(&'static str, #[source] io::Error),
    #[error("--network container:{0}: no such container")]
    NoSuchContainer(String),
    #[error("--network container:{0}: the container is not running")]
    NotRunning(String),
    #[error(transparent)]
    Cgroup(#[from] cgroup::Error),
}

impl From<apply::Error> for Error {
    fn from(err: apply::Error) -> Error {
        match err {
            apply::Error::Firewall(err) => Error::Firewall(err),
            apply::Error::Reserve(err) => Error::Reserve(err),
            err @ apply::Error::AddressTaken { .. } => Error::AddressTaken {
                bridge: None,
                source: Box::new(err),
            },
        }
    }
}

impl Error {
    /// docker's conventions: 125 for the supervisor's own failures, 126/127
    /// when the command cannot be executed or found.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Spawn(e) => e.exit_code(),
            _ => 125,
        }
    }
}

/// Runs a container to its end; returns the exit code the supervisor should
/// exit with.
///
/// The container's network namespace is begun before the options are
/// checked: on a busy machine its thread waits for a CPU for one to four
/// milliseconds (a scheduler tick at HZ=250, behind another process's
/// time slice), and the network waits for it unless it has begun well
/// before clone3 (perf, `bench --pause 50`). A run refused meanwhile drops
/// the namespace unused: nothing outlives the process.
pub fn run(options: RunOptions) -> Result<u8, Error> {
    // Until the container's command runs (see `start_with`).
    realtime::enter();
    // Before the netns thread, which then inherits the mask (see `start`).
    let blocked = signals::block().map_err(Error::Signals)?;
    let asked = OwnNetns::asked(&options);
    let begun = realtime::cloning_real_time(|| asked.and_then(OwnNetns::begin));
    let spec = prepare(options)?;
    // What the checked options say wins, should the two ever differ.
    let wanted = OwnNetns::of(&spec.network);
    let netns = match begun {
        Some(begun) if asked == wanted => Some(begun),
        _ => realtime::cloning_real_time(|| wanted.and_then(OwnNetns::begin)),
    };
    start_with(spec, blocked, netns, || {}, || {})
}

/// What `run` checks before it creates anything: the options, the
/// privileges, the host ports.
pub fn prepare(options: RunOptions) -> Result<RunSpec, Error> {
    let spec = RunSpec::new(options)?;
    // Before the state directory's check, which refuses root's directory
    // to another user: one who forgot sudo is told so.
    preflight()?;
    state::check_dir(&spec.state_dir)?;
    let not_held = spawn::capabilities_not_held(&spec.capabilities);
    if !not_held.is_empty() {
        return Err(Error::CapabilitiesNotHeld(not_held));
    }
    check_ports(&spec)?;
    Ok(spec)
}

/// Runs a prepared container to its end; calls `ready` once its command
/// has started with its ports published (`run -d` returns then), and
/// `ended` once it has ended and everything it held is given back, before
/// its record goes; what `ended` returns is dropped with the record's
/// removal (see `lifecycle`).
pub fn start<H>(
    spec: RunSpec,
    ready: impl FnOnce(),
    ended: impl FnOnce() -> H,
) -> Result<u8, Error> {
    realtime::enter();
    // Before any thread but the log pump of `run -d` (which blocks every
    // signal) exists, so every thread inherits the mask.
    let blocked = signals::block().map_err(Error::Signals)?;
    let netns =
        realtime::cloning_real_time(|| OwnNetns::of(&spec.network).and_then(OwnNetns::begin));
    let result = start_with(spec, blocked, netns, ready, ended);
    // `run -d`'s process goes on (its log's last writes). Going back to
    // ordinary cannot fail.
    let _ = realtime::leave();
    result
}

/// What a container's own network namespace is readied for: lo, and on a
/// bridge the IPv6 defaults its eth0 is born with (`ipv6`: the bridge is
/// dual stack). None for a network that is another container's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnNetns {
    Bridge { ipv6: bool },
    LoopbackOnly,
}

impl OwnNetns {
    /// As the options ask, before they are checked: what `RunSpec::new`
    /// makes of them (a bridge is dual stack with `--ipv6`).
    fn asked(options: &RunOptions) -> Option<OwnNetns> {
        match options.network {
            NetworkMode::Bridge => Some(OwnNetns::Bridge { ipv6: options.ipv6 }),
            NetworkMode::None => Some(OwnNetns::LoopbackOnly),
            NetworkMode::Container(_) => None,
        }
    }

    fn of(network: &Network) -> Option<OwnNetns> {
        match network {
            Network::Bridge { bridge, .. } => Some(OwnNetns::Bridge {
                ipv6: bridge.subnet6.is_some(),
            }),
            Network::None => Some(OwnNetns::LoopbackOnly),
            Network::Container { .. } => None,
        }
    }

    /// Begins making the namespace on a thread of its own: it is there
    /// when it is entered, off the path until then (see spawn::NewNetns).
    /// The same thread then readies it (see netlink::PreparedNetns). None
    /// when that thread cannot start: then clone3 makes the namespace, the
    /// container brings lo up and the plumbing writes eth0's own settings.
    /// Signals must be blocked already, so the thread inherits the mask.
    fn begin(self) -> Option<(NewNetns, Prepared)> {
        match self {
            OwnNetns::Bridge { ipv6 } => {
                NewNetns::start(move || netlink::PreparedNetns::here(ipv6).map(Some)).ok()
            }
            OwnNetns::LoopbackOnly => {
                NewNetns::start(|| netlink::loopback_up_here().map(|()| None)).ok()
            }
        }
    }
}

/// `start`, with signals blocked and the network namespace begun.
///
/// This thread is real-time (see crate::realtime) from the start of the run
/// until the container's command runs, then ordinary again until the
/// command has ended, and real-time for the teardown and what is left of
/// `run` until its exit, which whoever ran it waits for: on a busy
/// machine the container, once cloned, and every other task took turns
/// with it on the path to the command's start, and an ordinary task
/// (a kernel thread's expedited grace period, another build) took the CPU
/// from its last steps to its exit (perf sched). Nothing it clones for the
/// container's command is real-time.
fn start_with<H>(
    spec: RunSpec,
    blocked: signals::Blocked,
    netns: Option<(NewNetns, Prepared)>,
    ready: impl FnOnce(),
    ended: impl FnOnce() -> H,
) -> Result<u8, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let result = runtime.block_on(async {
        let signals = blocked.into_async().map_err(Error::Signals)?;
        lifecycle(spec, netns, signals, ready, ended).await
    });
    log_peak_rss();
    result
}

/// `run --dry-run`: the network plan of `options` against what is taken
/// now, as text; nothing is created, written or started.
pub fn dry_run(options: RunOptions) -> Result<String, Error> {
    let mut spec = RunSpec::new(options)?;
    // Refused as the run would refuse it (see `prepare`), before a record
    // planted there is read as what is taken.
    state::check_dir(&spec.state_dir)?;
    // A host port someone holds, in the run's words (see `prepare`): its
    // sockets are bound and closed at once, none is kept.
    check_ports(&spec)?;
    // What the run would find taken or missing before it plans.
    Store::new(&spec.state_dir).check_name_free(&spec.name)?;
    drop(joined(&spec)?);
    // The families a run's reservations decide (see `families`).
    spec.publish = plan::per_family(&spec.publish, families(&spec) == Families::DualStack)?;
    let (bridge, ip, ip6) = match &spec.network {
        Network::Bridge { bridge, ip, ip6 } => (bridge, ip, ip6),
        Network::None => return Ok("# --network none: nothing to plan\n".to_string()),
        Network::Container { target } => {
            return Ok(format!(
                "# --network container:{target}: nothing to plan, the network is {target}'s\n"
            ));
        }
    };
    let snapshot = Snapshot::read(&spec.state_dir, &bridge.name);
    let request = plan::Request {
        owner: owner_of(&spec),
        bridge: bridge.name.clone(),
        subnet: bridge.subnet,
        address: *ip,
        subnet6: bridge.subnet6,
        address6: *ip6,
        mappings: spec.publish.clone(),
    };
    let plan = plan::plan(&request, &snapshot)?;
    let mut text: String = snapshot
        .unread
        .iter()
        .map(|what| format!("# not read, assumed free: {what}\n"))
        .collect();
    text.push_str(&plan.to_string());
    Ok(text)
}

/// The families a `-p` value without a host address is published on:
/// both on a dual-stack network (`--ipv6`), on the same host port; one
/// reservation, one element (and for IPv6 one `[::1]` proxy) each.
fn families(spec: &RunSpec) -> Families {
    match &spec.network {
        Network::Bridge { bridge, .. } if bridge.subnet6.is_some() => Families::DualStack,
        _ => Families::Ipv4,
    }
}

/// The peak resident set of this process's own memory (VmHWM), for
/// `supervisor bench`. Not getrusage: its ru_maxrss carries over the peak
/// of whatever process forked us.
fn log_peak_rss() {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    // One read: procfs makes the whole file (about 1.5 KiB) at the first,
    // where read_to_string adds a statx and five more reads to the end of
    // every verbose run, which is what `bench` times.
    let mut buffer = [0u8; 4096];
    let read = std::fs::File::open("/proc/self/status").and_then(|mut f| f.read(&mut buffer));
    let status = String::from_utf8_lossy(&buffer[..read.unwrap_or(0)]);
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    if let Some(kib) = kib {
        tracing::debug!("peak rss: {kib} KiB");
    }
}

/// What every container needs, whatever its network: namespaces and mounts
/// (SYS_ADMIN), the capability bounding set (SETPCAP), interfaces (NET_ADMIN).
const REQUIRED: [Capability; 3] = [
    Capability::CAP_SYS_ADMIN,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_ADMIN,
];

fn preflight() -> Result<(), Error> {
    let missing = spawn::missing_capabilities(&REQUIRED);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::MissingCapabilities(missing))
    }
}

/// Whose the container's elements and lease are.
fn owner_of(spec: &RunSpec) -> Owner {
    Owner {
        name: spec.name.clone(),
        id: spec.id.clone(),
    }
}

/// The running container whose network a `--network container:` one
/// shares, as docker's: its network namespace, its hostname and its /etc
/// files.
struct Joined {
    /// Whose network namespace and /etc files they are: the target's, or
    /// those of the container the target shares in turn.
    id: String,
    hostname: String,
    /// The target's PID 1: the child joins its network namespace through it.
    pidfd: Arc<Pidfd>,
}

/// The container `spec` joins, found running; None unless its network is
/// `container:`.
fn joined(spec: &RunSpec) -> Result<Option<Joined>, Error> {
    let Network::Container { target } = &spec.network else {
        return Ok(None);
    };
    let not_running = || Error::NotRunning(target.clone());
    let record = Store::new(&spec.state_dir)
        .find_any(target)?
        .ok_or_else(|| Error::NoSuchContainer(target.clone()))?
        .live()
        .map_err(|_| not_running())?;
    let process = record
        .container
        .filter(|_| !record.is_stale())
        .ok_or_else(not_running)?;
    let pidfd = Pidfd::of(&process)
        .map_err(Error::Proc)?
        .ok_or_else(not_running)?;
    let hostname = record
        .hostname
        .clone()
        .unwrap_or_else(|| record.name.clone());
    Ok(Some(Joined {
        id: record.joined.unwrap_or(record.id),
        hostname,
        pidfd: Arc::new(pidfd),
    }))
}

/// Claims the container's name with its record: the first thing a run
/// creates, so everything after it is explained by a live record.
async fn register(
    spec: &RunSpec,
    joined: Option<&Joined>,
    exec: ExecContext,
    cgroup: Option<&cgroup::Plan>,
) -> Result<Registration, Error> {
    let me = Process::current().map_err(Error::Proc)?;
    let command = spec.command.iter();
    let command = command.map(|a| a.to_string_lossy().into_owned()).collect();
    let mut record = Record::new(&spec.name, &spec.id, me, command);
    // Until `released_to_exec` (see `Record::starting`): set from the first
    // write, so `ps` says so from there, whatever later writes fail.
    record.starting = true;
    record.labels = spec.labels.clone();
    record.stop_timeout = Some(spec.stop_timeout.as_secs());
    record.hostname = Some(spec.hostname.clone());
    record.network = Some(match &spec.network {
        Network::Bridge { bridge, .. } => {
            record.bridge = Some(bridge.name.clone());
            "bridge".to_string()
        }
        Network::None => "none".to_string(),
        Network::Container { target } => format!("container:{target}"),
    });
    record.joined = joined.map(|j| j.id.clone());
    record.exec = Some(Box::new(exec));
    record.resources = cgroup.map(|plan| {
        Box::new(Limits {
            limits: spec.resources,
            cgroup: plan.paths().to_vec(),
        })
    });
    Ok(reconcile::claim(&spec.state_dir, record).await?)
}

/// What `exec` repeats for each command it runs in the container.
fn exec_context(spec: &RunSpec) -> ExecContext {
    use crate::confinement::Seccomp;
    let seccomp = match &spec.security.seccomp {
        Seccomp::Default => None,
        Seccomp::Unconfined => Some("seccomp=unconfined".to_string()),
        Seccomp::File(file, _) => Some(format!("seccomp={}", file.display())),
    };
    ExecContext {
        env: spec.container_env(false),
        workdir: Some(spec.workdir.display().to_string()),
        user: spec.user.as_ref().map(|u| format!("{}:{}", u.uid, u.gid)),
        capabilities: Some(spec.capabilities.iter().map(|c| c.to_string()).collect()),
        security_opt: seccomp.into_iter().collect(),
        seccomp_program: None,
    }
}

/// A container's bridge network: its lease and link, and the firewall that
/// publishes its ports. Dropping it gives the lease back.
struct BridgeNet {
    attachment: Attachment,
    firewall: Firewall,
    /// The network's elements, when the tables were current: they go in
    /// the container's publish batch (see `prepare_network`).
    network: PendingNetwork,
}

/// The lease, bridge and sysctls of a bridge network, and the base ruleset;
/// nothing for none.
async fn prepare_network(spec: &RunSpec) -> Result<Option<BridgeNet>, Error> {
    let Network::Bridge { bridge, ip, ip6 } = &spec.network else {
        return Ok(None);
    };
    // Every step of the network's part is an idempotent ensure: what a
    // snapshot would say is there only changes how a dry run prints it.
    let part = plan::network_part(
        &bridge.name,
        bridge.subnet,
        bridge.subnet6,
        &Snapshot::default(),
    );
    let owner = owner_of(spec);
    let holder = Holder::this_process(&owner.name, &owner.id).map_err(network::Error::Lease)?;
    let attachment =
        apply::lease(&part, bridge, *ip, *ip6, &spec.state_dir, &holder, false).await?;
    let t = Instant::now();
    let firewall = Firewall::open(&spec.state_dir)?;
    // After the bridge: a network's elements stay while its bridge exists.
    // When the tables are current, the network's elements go in the
    // container's publish batch, as a CNI ADD's do: a batch of their own
    // cost every start a commit, its lock and its acks before clone3
    // (the phase's median 118 us, of which the batch ~40).
    let subnet6 = part.subnet6.map(|s| (s.network(), s.prefix_len()));
    let network = firewall.ensure_base_for(&part.bridge, &part.subnet, subnet6)?;
    if attachment.made_bridge() {
        // Before our subnet goes in (with the publish batch): the kernel
        // refuses one that overlaps a stale subnet of this bridge.
        firewall.remove_other_subnets(&part.bridge, &part.subnet, subnet6)?;
    }
    let base = if network.is_empty() {
        "Loaded"
    } else {
        "Current"
    };
    phase(&format!("base ruleset ({base}) and network"), t);
    if network.is_empty() {
        tracing::info!("the supervisor's nftables tables and the network's elements are in");
    }
    Ok(Some(BridgeNet {
        attachment,
        firewall,
        network,
    }))
}

impl BridgeNet {
    /// The container's IPv6 address, with `--ipv6`.
    fn address6(&self) -> Option<std::net::Ipv6Addr> {
        self.attachment.ipv6().map(|(address6, _)| address6)
    }

    /// Warns of other tables whose forward chain drops by default: a
    /// warning only, so it is read once the container runs, off the path
    /// to its start.
    fn warn_of_forward_drops(&self, spec: &RunSpec) {
        let Network::Bridge { bridge, .. } = &spec.network else {
            return;
        };
        let tables = match self.firewall.foreign_forward_drops() {
            Ok(tables) => tables,
            Err(err) => {
                tracing::warn!(
                    "looking for forward chains with policy drop: {}",
                    Chain(&err)
                );
                return;
            }
        };
        for table in tables {
            tracing::warn!(
                "table {table} has a forward chain with policy drop: it drops the containers' \
                 traffic whatever the supervisor accepts; allow the bridge there, e.g. \
                 `iifname \"{name}\" accept` and `oifname \"{name}\" accept` in its forward chain \
                 (firewalld: add {name} to the trusted zone)",
                name = bridge.name
            );
        }
    }

    /// Plumbs the container and publishes its reserved ports (and its
    /// spoof-guard entry) in one batch, as planned from its lease and
    /// reservations.
    async fn connect(
        &mut self,
        spec: &RunSpec,
        container: &Container,
        reservations: &mut Reservations,
        prepared: Option<PreparedNetns>,
    ) -> Result<Publication, Error> {
        let ports = apply::ports(reservations)?;
        let subnet = self.attachment.subnet();
        let mut part = plan::container_part(
            &owner_of(spec),
            subnet,
            self.attachment.address(),
            self.attachment.ipv6(),
            ports,
            Some(Generation::random()),
        );
        let link = part.link(
            self.attachment.bridge_index(),
            self.attachment.bridge_mac(),
            subnet,
        );
        self.attachment.plumb(&link, container, prepared).await?;
        pause_at("linked");
        let t = Instant::now();
        let publication = apply::publish_with(
            &self.firewall,
            &spec.state_dir,
            &mut part.publication,
            reservations,
            &self.network,
        )
        .await
        .map_err(|err| match (err, &spec.network) {
            (source @ apply::Error::AddressTaken { .. }, Network::Bridge { bridge, .. }) => {
                Error::AddressTaken {
                    bridge: Some(bridge.name.clone()),
                    source: Box::new(source),
                }
            }
            (err, _) => Error::from(err),
        })?;
        phase("publish batch", t);
        for (port, picked) in publication.ports.iter().zip(reservations.picked()) {
            if picked {
                eprint_line(format_args!("supervisor: published {port}"));
            }
        }
        Ok(publication)
    }

    /// Deletes the veth pair when containers that joined this one's network
    /// still run: their processes keep the namespace, and with it the pair
    /// and the address, alive after ours is gone. They are left with lo,
    /// as docker leaves them. Read after the container's exit: one that
    /// joined before it saw a live namespace, so its record and marker
    /// are there (both are written before its clone3). Read from this
    /// container's markers alone (see `state::joins`), so it costs the same
    /// however many containers run.
    async fn unplug_if_shared(&self, spec: &RunSpec) {
        let t = Instant::now();
        let joiners = Store::new(&spec.state_dir).live_joiners_of(&spec.id);
        phase("joiners read", t);
        if joiners.map_or(true, |joiners| joiners.is_empty()) {
            return;
        }
        let t = Instant::now();
        if let Err(err) = self.attachment.unplug().await {
            eprint_line(format_args!(
                "supervisor: teardown: deleting the veth pair that containers sharing its network still hold: {}",
                Chain(&err)
            ));
        }
        phase("veth deleted (shared network)", t);
    }

    /// Takes the container's ports out in one batch and forgets their
    /// connections, then takes its generation out of the live ones (see
    /// `Firewall::unlive`), then gives the address back, and only then
    /// takes its anti-spoofing elements out (see `Firewall::unguard`).
    /// Goes on past each failure. Returns the firewall, for the caller to
    /// close once the host ports are given back (see `teardown`), with the
    /// veth pair's removal for its holder to do once we have exited (see
    /// `Attachment::removal`).
    fn teardown(
        self,
        publication: Option<Publication>,
        left: &mut Leftovers,
    ) -> (Firewall, Option<AfterExit>) {
        if let Some(publication) = &publication {
            let t = Instant::now();
            let unpublished = self.firewall.unpublish_ports(publication);
            left.check(|| "removing its published ports".into(), unpublished);
            phase("unpublish batch", t);
            let forgotten =
                apply::forget_udp(&self.firewall, publication, Some(publication.address));
            left.check(|| "forgetting its UDP connections".into(), forgotten);
            let t = Instant::now();
            let unlived = self.firewall.unlive(publication);
            left.check(|| "removing its live generation".into(), unlived);
            phase("unlive batch", t);
            pause_at("unlived");
        }
        let t = Instant::now();
        let address = self.attachment.address();
        let removal = self.attachment.removal().map(|data| AfterExit {
            run: netlink::remove_if_peer_lives,
            data,
        });
        let released = self.attachment.release();
        left.check(|| format!("giving back its address {address}"), released);
        phase("lease release", t);
        if let Some(publication) = &publication {
            let t = Instant::now();
            let unguarded = self.firewall.unguard(publication);
            left.check(|| "removing its anti-spoofing elements".into(), unguarded);
            phase("unguard batch", t);
        }
        (self.firewall, removal)
    }
}

/// What a run's teardown could not do, each step named with its cause.
/// Teardown goes on past every failure; `run` prints each once on stderr and
/// still exits with the command's code, as docker does: the command's
/// outcome is what its caller asked for, and `gc` gives back what is left.
#[derive(Debug, Default)]
struct Leftovers(Vec<Left>);

#[derive(Debug, thiserror::Error)]
#[error("{step}")]
struct Left {
    step: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl Leftovers {
    /// Notes `result`'s failure, naming the `step`.
    fn check<T, E>(&mut self, step: impl FnOnce() -> String, result: Result<T, E>)
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        if let Err(err) = result {
            self.0.push(Left {
                step: step(),
                source: Box::new(err),
            });
        }
    }

    /// One line per failure on stderr, whatever the log level.
    fn report(self) {
        for left in self.0 {
            eprint_line(format_args!("supervisor: teardown: {}", Chain(&left)));
        }
    }
}

/// The `[::1]` proxies of the ports reserved on every IPv6 address or on
/// `::1`, relaying to the container's IPv6 address; none without one.
async fn start_proxies(
    reservations: &Reservations,
    address6: Option<std::net::Ipv6Addr>,
) -> Result<Proxies, Error> {
    let Some(address6) = address6 else {
        return Ok(Proxies::default());
    };
    let t = Instant::now();
    let proxies = proxy::start_all(reservations, address6).await?;
    if !proxies.is_empty() {
        phase("[::1] proxies", t);
    }
    Ok(proxies)
}

/// How long the command runs before its `[::1]` connect hook is set up.
const HOOK_AFTER: Duration = Duration::from_millis(5);

/// The `[::1]` connect hook for the TCP ports the relay serves (see
/// `proxy::connect6`): set up once the command has run `HOOK_AFTER`, so
/// its load (the verifier's work) is on no start's path; the relay serves
/// meanwhile, and for good when the hook cannot be had: the relay is the
/// path that always works.
fn hook_loopback6(
    spec: &RunSpec,
    reservations: &Reservations,
    address6: Option<std::net::Ipv6Addr>,
) -> Option<proxy::Hook> {
    let t = Instant::now();
    match proxy::hook_all(reservations, address6?, &spec.loopback6_cgroup) {
        Ok(hook) => {
            if hook.is_some() {
                phase("[::1] connect hook", t);
            }
            hook
        }
        // A cgroup the user named, or a full one, is said: its `[::1]`
        // clients see the relay's peer address, not the container's. The
        // default's absence (no cgroup2) is the relay's ordinary case.
        Err(err) if err.is_full() || matches!(spec.loopback6_cgroup, Loopback6Cgroup::At(_)) => {
            tracing::warn!("{}; [::1] stays relayed", Chain(&err));
            None
        }
        Err(err) => {
            tracing::debug!("{}; [::1] stays relayed", Chain(&err));
            None
        }
    }
}

/// Holds the host port of every `--publish` mapping (see `reserve`); a
/// port held by another container's supervisor is named as that container.
fn reserve_ports(spec: &RunSpec) -> Result<Reservations, Error> {
    if spec.publish.is_empty() {
        return Ok(Reservations::default());
    }
    let t = Instant::now();
    let reservations = Reservations::take(&spec.publish, families(spec), &|pid| {
        container_of(spec, pid)
    })?;
    phase("port reservations", t);
    Ok(reservations)
}

/// Refuses a host port someone holds before anything is created.
fn check_ports(spec: &RunSpec) -> Result<(), Error> {
    let t = Instant::now();
    refuse_broadcast(&spec.publish)?;
    Reservations::check(&spec.publish, families(spec), &|pid| {
        container_of(spec, pid)
    })?;
    phase("port check", t);
    Ok(())
}

/// Refuses a mapping on an IPv4 address the kernel routes as a subnet's
/// directed broadcast: it binds (so the port's check passes), but no
/// connection to it is local to the host, so the port would never be
/// reached. Only the kernel's routes tell it (`reserve` refuses what the
/// address alone shows); one lookup for all, none when no mapping names an
/// address other than 127.0.0.1 (the CNI plugin asks with its other
/// addresses: see cni::routed).
fn refuse_broadcast(mappings: &[PortMapping]) -> Result<(), Error> {
    let named: Vec<(&PortMapping, IpAddr)> = mappings
        .iter()
        .filter_map(|m| Some((m, m.host_ip?.specific()?)))
        // 127.0.0.1 is the host's for certain; 127.255.255.255 is lo's
        // broadcast address.
        .filter(|(_, ip)| ip.is_ipv4() && *ip != IpAddr::V4(Ipv4Addr::LOCALHOST))
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let addresses: Vec<IpAddr> = named.iter().map(|&(_, ip)| ip).collect();
    let kinds = netlink::address_kinds(&addresses).map_err(network::Error::from)?;
    match named
        .iter()
        .zip(kinds)
        .find(|(_, kind)| *kind == netlink::AddressKind::Broadcast)
    {
        Some((&(mapping, addr), _)) => Err(reserve::Error::NotLocal {
            mapping: *mapping,
            addr,
        }
        .into()),
        None => Ok(()),
    }
}

/// The container whose live supervisor is `pid`, for messages.
fn container_of(spec: &RunSpec, pid: u32) -> Option<String> {
    Store::new(&spec.state_dir).container_of(pid)
}

/// Completes the record once the container is plumbed and published. A
/// failure is only a warning: everything the container holds is found by
/// its id, which the record already has.
fn record_container(
    registration: &mut Registration,
    container: &Container,
    publication: Option<&Publication>,
    address6: Option<std::net::Ipv6Addr>,
) {
    let process = u32::try_from(container.pid())
        .map_err(io::Error::other)
        .and_then(Process::of);
    let recorded = process.map_err(Error::Proc).and_then(|process| {
        Ok(registration.update(|record| {
            record.container = Some(process);
            if let Some(publication) = publication {
                record.address = Some(publication.address);
                record.address6 = address6;
                record.veth = Some(publication.veth.clone());
                record.ports = publication.ports.iter().map(|&p| p.into()).collect();
                record.generation = publication.generation.map(Generation::get);
            }
        })?)
    });
    if let Err(err) = recorded {
        tracing::warn!("completing the record: {}", Chain(&err));
    }
}

/// The record says the command was released: `exec` may join it now.
fn released_to_exec(registration: &mut Registration) {
    if !registration.record().starting {
        return;
    }
    if let Err(err) = registration.update(|record| record.starting = false) {
        tracing::warn!("completing the record: {}", Chain(&err));
    }
}

/// What the thread making a container's network namespace did in it.
type Prepared = SetUp<Result<Option<PreparedNetns>, netlink::Error>>;

async fn lifecycle<H>(
    mut spec: RunSpec,
    netns: Option<(NewNetns, Prepared)>,
    mut signals: Signals,
    ready: impl FnOnce(),
    ended: impl FnOnce() -> H,
) -> Result<u8, Error> {
    let started = Instant::now();
    let (netns, prepared) = netns.unzip();
    let terminal = spawn::terminal_is_ours();
    let joined = joined(&spec)?;
    if let Some(joined) = &joined {
        spec.hostname = joined.hostname.clone();
    }
    // Their paths are known now; they are written once the address is. A
    // container sharing another's network shares its files too, as docker
    // does: it neither writes nor removes them.
    let files = EtcFiles::new(&spec.state_dir, joined.as_ref().map_or(&spec.id, |j| &j.id));
    if spec.filesystem.root == (crate::filesystem::Root::Host { writable: true }) {
        tracing::warn!(
            "--rw-host: the container can write the host's filesystem and reach the supervisor's state"
        );
    }
    let tty = terminal.then(spawn::terminal_path).flatten();
    let mounts = spec.filesystem.plan(
        spec.security.system_paths,
        &spec.workdir,
        &spec.state_dir,
        files.binds(),
        tty.as_deref(),
    )?;
    let seccomp = timed("seccomp program", || {
        spec.security
            .filter_cached(&spec.capabilities, Some(&spec.state_dir.join("seccomp")))
    })
    .map_err(SpecError::from)?;
    let (seccomp, seccomp_program) = match seccomp {
        Some(compiled) => (Some(compiled.filter), compiled.cached),
        None => (None, None),
    };
    let mut config = SpawnConfig {
        hostname: spec.hostname.clone(),
        workdir: spec.workdir.clone(),
        env: spec.container_env(terminal),
        command: spec.command.clone(),
        init: spec.init,
        take_terminal: terminal,
        capabilities: spec.capabilities.clone(),
        user: spec.user.as_ref().map(|u| spawn::Ids {
            uid: u.uid,
            gid: u.gid,
            groups: u.groups.clone(),
        }),
        confinement: Confinement { mounts, seccomp },
        join_network: joined.as_ref().map(|j| j.pidfd.clone()),
        cgroup: None,
        cgroup_join: Vec::new(),
    };
    let exec = ExecContext {
        seccomp_program,
        ..exec_context(&spec)
    };
    let cgroup = timed("cgroup plan", || plan_cgroup(&spec))?;
    let registration = register(&spec, joined.as_ref(), exec, cgroup.as_ref());
    let mut registration = timed_async("record", registration).await?;
    pause_at("registered");
    // Declared after the registration, so an early return removes it first.
    let cgroup = timed("cgroup", || cgroup.map(cgroup::Plan::create).transpose())?;
    config.cgroup = cgroup.as_ref().and_then(Cgroup::clone_into);
    config.cgroup_join = cgroup.as_ref().map_or(Vec::new(), Cgroup::join_fds);
    // Empty for now, so the container can bind them as soon as it is
    // cloned; they are filled in once the address is known.
    let own_files = joined.is_none();
    let forget_files = || {
        if own_files {
            let _ = files.remove();
        }
    };
    if own_files {
        if let Err(err) = timed("etc files created", || files.create()) {
            forget_files();
            return Err(err.into());
        }
    }
    // The bridge, lease, sysctls and base ruleset are ensured while the
    // network namespace is made on its own thread (since `start`), and the
    // container is cloned once both are done; then, while its thread
    // readies the namespace (lo up, eth0's defaults) and ends, this thread
    // only waits: a fork while another thread of ours runs makes each page
    // either side first writes after it a copy-on-write fault with an
    // interrupt to flush the other CPU's TLB (~20 us each on this VM: 0.4-0.5
    // ms of this thread per container when the fork came before the
    // network was ensured, perf). The container sets itself up (mounts,
    // hostname, capabilities, seccomp) on the other CPU meanwhile, its
    // namespace sent with the byte that begins it, and its network is
    // plumbed here once the thread is gone.
    let mut netns = netns;
    let cloned = timed_async("network prepared, clone3", async {
        let network = prepare_network(&spec).await?;
        // Once the address is known, while the namespace's thread is still
        // at work as often as not (the wait for it was 40 us at the median,
        // as long as this write): after the clone, they were on the way to
        // the plumbing.
        if joined.is_none() {
            write_files(&spec, &files, network.as_ref())?;
        }
        if let Some(netns) = &mut netns {
            netns.made().await;
        }
        let clone = || match netns {
            Some(netns) => Container::spawn_into(&config, netns),
            None => Container::spawn(&config),
        };
        // Real-time from its birth, as the netns thread (see
        // realtime::cloning_real_time); ordinary before its filter. Not
        // into a cgroup of its own: one without real-time bandwidth
        // (cgroup v1's default with RT_GROUP_SCHED) refuses a real-time
        // task (EINVAL).
        let in_cgroup = config.cgroup.is_some() || !config.cgroup_join.is_empty();
        let mut container = timed("clone3", || {
            if in_cgroup {
                clone()
            } else {
                realtime::cloning_real_time(clone)
            }
        })?;
        match container.begin_setup().await {
            Ok(()) => Ok((network, container)),
            Err(err) => {
                container.abort().await;
                Err(Error::from(err))
            }
        }
    })
    .await;
    // The lease, if taken, goes back as `network` drops.
    let (mut network, mut container) = match cloned {
        Ok(cloned) => cloned,
        Err(err) => {
            forget_files();
            return Err(err);
        }
    };
    // lo up (it must be before the container runs) and eth0's defaults
    // (before it is made), and the thread gone.
    let prepared = match prepared {
        Some(prepared) => match prepared_netns(prepared).await {
            Ok(prepared) => prepared,
            Err(err) => {
                container.abort().await;
                forget_files();
                return Err(err);
            }
        },
        None => None,
    };
    tracing::debug!(id = %spec.id, name = %spec.name, pid = container.pid(), "container created");
    pause_at("leased");
    // After clone3, so the container never has these sockets.
    let mut reservations = match reserve_ports(&spec) {
        Ok(reservations) => reservations,
        Err(err) => {
            container.abort().await;
            forget_files();
            return Err(err);
        }
    };
    let address6 = network.as_ref().and_then(BridgeNet::address6);
    let publication = match &mut network {
        Some(net) => match net
            .connect(&spec, &container, &mut reservations, prepared)
            .await
        {
            Ok(publication) => Some(publication),
            Err(err) => {
                // Its namespace, and the veth in it, go with it.
                container.abort().await;
                forget_files();
                return Err(err);
            }
        },
        None => None,
    };
    // `[::1]` reaches the container's IPv6 address through the supervisor
    // (the kernel cannot DNAT from ::1), served on the reservations' own
    // sockets from before its command starts.
    let proxies = match start_proxies(&reservations, address6).await {
        Ok(proxies) => proxies,
        Err(err) => {
            container.abort().await;
            if joined.is_none() {
                let _ = files.remove();
            }
            if let (Some(net), Some(publication)) = (network, publication) {
                let mut left = Leftovers::default();
                let (firewall, removal) = net.teardown(Some(publication), &mut left);
                drop(reservations);
                firewall.close_with(Vec::new(), removal);
                left.report();
            }
            return Err(err);
        }
    };
    // Descriptors whose last close is slow, left to the holder of the
    // netfilter socket (see `teardown`): the last close of a mount
    // namespace, or of a procfs instance (see netlink::procfs), unmounts
    // its tree and waits for an RCU grace period, which would otherwise
    // delay the container's exit, and with it ours. The namespace is taken
    // before the release: a command that exits at once (`run -- true`)
    // would take it with it before we could, and its init's exit would
    // then do those unmounts before we learn of its end (0.15-0.3 ms,
    // perf).
    let mut slow_closes = Vec::new();
    if network.is_some() {
        slow_closes.extend(container.pidfd().mount_namespace().ok());
    }
    pause_at("published");
    record_container(
        &mut registration,
        &container,
        publication.as_ref(),
        address6,
    );
    pause_at("recorded");

    let released = timed_async("release to exec", container.release()).await;
    // The command runs, or will not: the rest is no start's path.
    let _ = realtime::leave();
    let mut hook = None;
    let outcome = match released {
        Ok(()) => {
            phase("startup", started);
            // Off the startup path (the container runs meanwhile), but
            // before `ready`: what lets `exec` in, which waits a moment
            // for it (see control::exec), and makes `ps` say it runs, as
            // it should once `run -d` has returned.
            released_to_exec(&mut registration);
            // Before `ready`, so `run -d` still prints it where the user
            // sees it.
            if let Some(net) = &network {
                net.warn_of_forward_drops(&spec);
            }
            ready();
            let forgot = registration.forget_earlier_exited().unwrap_or_else(|err| {
                tracing::warn!("{}", Chain(&err));
                false
            });
            // A detached run replaced the name's log as it started (see
            // `detach`); in the foreground the earlier run's log goes with
            // its exited record, or `logs` would show what `ps -a` does not.
            if forgot && !spec.detached {
                let log = container_log::Paths::new(&spec.state_dir, &spec.name);
                if let Err(err) = log.remove_unless_written(&spec.state_dir) {
                    tracing::warn!("removing the log of an earlier {}: {err}", spec.name);
                }
            }
            if let (Some(net), Some(publication)) = (&network, &publication) {
                if let Err(err) = apply::forget_udp(&net.firewall, publication, None) {
                    tracing::warn!("{}", Chain(&err));
                }
            }
            // Kept to the end, then left to the holder (see above).
            if network.is_some() {
                slow_closes.extend(netlink::procfs::to_close());
            }
            pause_at("running");
            let supervised = supervise(&container, &mut signals, spec.stop_timeout, spec.init);
            tokio::pin!(supervised);
            // The hook only once the command has run `HOOK_AFTER`: one that
            // ends sooner (`run -- true`) never pays its set-up and removal
            // (0.4-0.7 ms end to end, which the exit waits for), and the
            // relay serves `[::1]` meanwhile, as it would without a hook.
            let status = tokio::select! {
                biased;
                status = &mut supervised => status,
                () = tokio::time::sleep(HOOK_AFTER), if address6.is_some() => {
                    hook = hook_loopback6(&spec, &reservations, address6);
                    supervised.await
                }
            };
            status.map_err(Error::Wait)
        }
        Err(err) => {
            // The child has exited with 125/126/127: reap it.
            let _ = container.pidfd().wait().await;
            Err(err.into())
        }
    };
    // The rest is the path to our exit, which whoever ran us waits for:
    // short, bounded work, real-time as the path to the start was.
    realtime::enter();
    if terminal {
        spawn::reclaim_terminal();
    }
    pause_at("exited");
    // Its program, map and link go with their descriptors, before the
    // ports are unpublished: a connect from now on takes the relay, which
    // ends next.
    if let Some(hook) = hook {
        timed("[::1] connect hook detached", || drop(hook));
    }
    // Its sockets are the reservations' too: the ports stay held until
    // teardown gives them back.
    proxies.shutdown().await;
    if let Some(net) = &network {
        net.unplug_if_shared(&spec).await;
    }
    let files = joined.is_none().then_some(&files);
    let oom_kills = cgroup.as_ref().and_then(Cgroup::oom_kills).unwrap_or(0);
    // A detached container's end is shown by `ps -a` until `rm` or `gc`;
    // one that never ran leaves nothing (its caller heard why).
    if let (true, Ok(status)) = (spec.detached, &outcome) {
        registration.exited_with(status.code());
    }
    timed("teardown", || {
        teardown(
            network,
            publication,
            slow_closes,
            files,
            reservations,
            cgroup,
        )
    })
    .report();
    let status = match outcome {
        Ok(status) => status,
        Err(err) => {
            remove_record(registration, ());
            return Err(err);
        }
    };
    tracing::debug!(?status, "container exited");
    if oom_kills > 0 {
        tracing::warn!("{}", out_of_memory(&spec, status, oom_kills));
    }
    // Before the record goes: a detached container's exited record, which
    // replaces it, says its log is whole (`logs` then shows all its
    // output), so `run -d` writes the last of its log here; its writer,
    // whose lock says that someone still writes it (`rm` and `gc` leave
    // such a log, `logs -f` follows it), goes with the record (see
    // `Registration::remove_releasing`). What is said after goes nowhere.
    let held = ended();
    remove_record(registration, held);
    Ok(status.code())
}

/// The last step of a teardown: until it is gone, the record explains
/// what is left. `held` goes with it.
fn remove_record<H>(registration: Registration, held: H) {
    if let Err(err) = registration.remove_releasing(held) {
        eprint_line(format_args!(
            "supervisor: teardown: removing its record: {}",
            Chain(&err)
        ));
    }
}

/// Fills in the container's /etc files (see `EtcFiles`) with its address.
fn write_files(spec: &RunSpec, files: &EtcFiles, network: Option<&BridgeNet>) -> Result<(), Error> {
    let address = network.map(|net| net.attachment.address());
    let address6 = network.and_then(BridgeNet::address6);
    let written = timed("etc files", || {
        files.write(&spec.hostname, &spec.name, address, address6, &spec.names)
    })?;
    if let Some(warning) = written {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// What the network namespace's thread readied in it (see `start`).
async fn prepared_netns(prepared: Prepared) -> Result<Option<PreparedNetns>, Error> {
    match prepared.done().await {
        Some(prepared) => Ok(prepared.map_err(network::Error::from)?),
        None => Err(SpawnError::Netns(io::Error::other(
            "the netns thread ended before it had brought lo up",
        ))
        .into()),
    }
}

/// Where the container's cgroup goes, when it has limits. The state
/// directory is made first: its identity names the cgroup (see `cgroup`).
fn plan_cgroup(spec: &RunSpec) -> Result<Option<cgroup::Plan>, Error> {
    if spec.resources.is_empty() {
        return Ok(None);
    }
    std::fs::create_dir_all(&spec.state_dir)
        .map_err(|e| state::Error::File(state::FileError::at(&spec.state_dir)(e)))?;
    let hierarchy = cgroup::Hierarchy::detect();
    Ok(Some(hierarchy.plan(
        &spec.state_dir,
        &spec.id,
        &spec.resources,
    )?))
}

/// The exit line of a container the OOM killer reached: docker's inspect
/// says OOMKilled, this says it where the container's end is logged.
fn out_of_memory(spec: &RunSpec, status: ExitStatus, kills: u64) -> String {
    let limit = spec
        .resources
        .memory
        .map_or("its limit".to_string(), |bytes| {
            format!("--memory {}", crate::values::format_bytes(bytes))
        });
    if status.code() == 128 + libc::SIGKILL as u8 {
        format!(
            "container {} was killed by the OOM killer (exit {}): it reached {limit}",
            spec.name,
            status.code()
        )
    } else {
        format!(
            "the OOM killer killed {kills} process(es) of container {} at {limit}; it exited {}",
            spec.name,
            status.code()
        )
    }
}

/// Gives back everything the run holds but its record, in order, going on
/// past each failure; returns the failures.
fn teardown(
    network: Option<BridgeNet>,
    publication: Option<Publication>,
    slow_closes: Vec<OwnedFd>,
    files: Option<&EtcFiles>,
    reservations: Reservations,
    cgroup: Option<Cgroup>,
) -> Leftovers {
    let mut left = Leftovers::default();
    // Its processes are gone: the container's PID 1 has been reaped, and
    // every other process of its pid namespace went before it.
    if let Some(cgroup) = cgroup {
        let paths = cgroup.paths().to_vec();
        let removed = cgroup.remove();
        left.check(|| format!("removing its cgroup {paths:?}"), removed);
    }
    // The veth pair goes with the container's namespace, which the network
    // holds until its elements are gone, or after our exit (see
    // `Attachment::removal`) when something else still holds it.
    let firewall = network.map(|net| net.teardown(publication, &mut left));
    if let Some(files) = files {
        let removed = files.remove();
        left.check(|| format!("removing {}", files.dir().display()), removed);
    }
    // The host ports go back once nothing forwards them any more.
    drop(reservations);
    // After the ports: its holder (see `Firewall::close`) gets a copy of
    // every descriptor we still have, and may run after our exit, when the
    // ports must be free already.
    if let Some((firewall, removal)) = firewall {
        firewall.close_with(slow_closes, removal);
    }
    pause_at("released");
    left
}

/// Waits for the container to end, forwarding signals. SIGINT and SIGTERM
/// start the stop timeout, after which the container is killed: its
/// command may handle or ignore them (and without the init, as PID 1, it
/// ignores any it has no handler for). A second one kills at once.
async fn supervise(
    container: &Container,
    signals: &mut Signals,
    stop_timeout: Duration,
    init: bool,
) -> io::Result<ExitStatus> {
    let pidfd = container.pidfd();
    let exit = pidfd.wait();
    tokio::pin!(exit);
    let mut kill_at: Option<Pin<Box<Sleep>>> = None;
    let mut stopped_by = libc::SIGTERM;
    loop {
        tokio::select! {
            status = &mut exit => return status,
            signal = signals.recv() => {
                let signal = signal?;
                let stop = signal == libc::SIGINT || signal == libc::SIGTERM;
                if stop && kill_at.is_some() {
                    tracing::debug!(signal, "second stop signal: killing the container");
                    kill(container);
                    continue;
                }
                tracing::debug!(signal, "forwarding");
                if let Err(err) = pidfd.send_signal(signal) {
                    tracing::debug!(signal, %err, "forwarding failed: the container is exiting");
                }
                if stop {
                    stopped_by = signal;
                    kill_at = Some(Box::pin(tokio::time::sleep(stop_timeout)));
                }
            }
            () = async {
                match kill_at.as_mut() {
                    Some(deadline) => deadline.await,
                    None => std::future::pending().await,
                }
            } => {
                tracing::warn!("{}", grace_expired(stopped_by, stop_timeout, init));
                kill(container);
                kill_at = None;
            }
        }
    }
}

/// Why a container is killed after its grace period, and what to change.
fn grace_expired(signal: libc::c_int, stop_timeout: Duration, init: bool) -> String {
    let name = if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    let why = if init {
        format!("its command handles or ignores {name} without exiting")
    } else {
        format!(
            "with --init=false its command is PID 1, which ignores {name} \
             unless it has a handler"
        )
    };
    let fix = if init {
        format!("make it exit on {name}")
    } else {
        "run it without --init=false".to_string()
    };
    format!(
        "the container did not exit within --stop-timeout ({} s) of {name}: killing it \
         (SIGKILL); {why}: {fix}, or give it more time with --stop-timeout SECS",
        stop_timeout.as_secs()
    )
}

fn kill(container: &Container) {
    if let Err(err) = container.pidfd().send_signal(libc::SIGKILL) {
        tracing::debug!(%err, "SIGKILL failed: the container is exiting");
    }
}
