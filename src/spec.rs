//! What the user asked for, validated before anything is created: a bad
//! value is an error naming it, and nothing in the kernel has changed yet.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::confinement::{self, Security};
use crate::env_file::{self, EnvFileError};
use crate::etc_files::{self, NameOptions};
use crate::filesystem::{self, Filesystem, FilesystemOptions};
use crate::identity::{self, User};
use crate::netlink::Bridge;
use crate::publish::{self, PublishError};
use crate::root_file;
use crate::values::quoted;
use crate::values::{
    Address6Error, AddressError, HostIp, Loopback6Cgroup, PortMapping, Protocol, ResourceError,
    Resources, Subnet, Subnet6, Subnet6Error, SubnetError, new_id, parse_cpus, parse_memory,
    parse_pids_limit,
};

/// docker's default PATH for containers.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Longest name: it doubles as the default hostname, which the kernel caps at 64.
const MAX_NAME: usize = 64;

/// The length of the ids `new_id` makes.
const ID_LEN: usize = 12;

/// The kernel's limit for a hostname (__NEW_UTS_LEN), tighter than
/// RFC 1123's 253.
const MAX_HOSTNAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Only loopback.
    None,
    /// A veth pair to the host bridge.
    Bridge,
    /// Another running container's network namespace, by name or id.
    Container(String),
}

/// `run`'s options as the user gave them.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub name: Option<String>,
    pub hostname: Option<String>,
    /// `K=V`, or `K` to pass the supervisor's own value.
    pub env: Vec<String>,
    /// `--env-file` files, docker's format, read before `env`, which wins.
    pub env_file: Vec<PathBuf>,
    /// `--label` values: `K=V`, or `K` for an empty value.
    pub labels: Vec<String>,
    /// `--label-file` files, read before `labels`, which win.
    pub label_file: Vec<PathBuf>,
    pub workdir: Option<PathBuf>,
    pub network: NetworkMode,
    /// The bridge and its subnet, checked in every mode; the pinned address
    /// is refused but with `NetworkMode::Bridge`.
    pub bridge: String,
    pub subnet: String,
    pub ip: Option<String>,
    /// `--ipv6`: dual stack, with `subnet6` and the pinned `ip6`.
    pub ipv6: bool,
    pub subnet6: String,
    pub ip6: Option<String>,
    /// `--loopback6-cgroup`: whose `[::1]` connects the hook rewrites.
    pub loopback6_cgroup: Loopback6Cgroup,
    /// `--publish` values, docker's syntax.
    pub publish: Vec<String>,
    /// Where leases and records live.
    pub state_dir: PathBuf,
    pub stop_timeout: Duration,
    pub init: bool,
    /// `--security-opt` values, docker's.
    pub security_opt: Vec<String>,
    /// `--add-host`, `--dns`, `--dns-search`, `--dns-option`, docker's.
    pub add_host: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_option: Vec<String>,
    /// --rootfs, --rw-host, -v, --tmpfs, --read-only.
    pub filesystem: FilesystemOptions,
    /// `--user`, docker's syntax.
    pub user: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--memory`, `--cpus`, `--pids-limit`, docker's syntax.
    pub memory: Option<String>,
    pub cpus: Option<String>,
    pub pids_limit: Option<String>,
    pub command: Vec<OsString>,
}

/// The container's network, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// Only loopback.
    None,
    /// A veth pair to `bridge`, with the address `ip` or the next free
    /// one; with IPv6 on the bridge (`bridge.subnet6`), the IPv6 address
    /// `ip6` or the one derived from the IPv4 address.
    Bridge {
        bridge: Bridge,
        ip: Option<Ipv4Addr>,
        ip6: Option<Ipv6Addr>,
    },
    /// The network namespace of the running container `target` (a name or
    /// id), joined as docker's `container:NAME`: its interfaces, address,
    /// published ports, hostname and /etc files; nothing of its own.
    Container { target: String },
}

/// `run`'s options, checked.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub id: String,
    pub name: String,
    pub hostname: String,
    /// User entries, in order; see `container_env` for the whole environment.
    pub env: Vec<(String, String)>,
    /// Kept in the record for `inspect` and `ps --filter label=`.
    pub labels: BTreeMap<String, String>,
    pub workdir: PathBuf,
    pub network: Network,
    /// Published ports, one per host port (ranges expanded).
    pub publish: Vec<PortMapping>,
    /// Whose connects to `[::1]:PORT` go straight to the container.
    pub loopback6_cgroup: Loopback6Cgroup,
    pub state_dir: PathBuf,
    pub stop_timeout: Duration,
    pub init: bool,
    pub security: Security,
    /// What goes into its /etc/hosts and /etc/resolv.conf.
    pub names: NameOptions,
    pub filesystem: Filesystem,
    /// None: root, as the supervisor's own groups.
    pub user: Option<User>,
    pub capabilities: Vec<caps::Capability>,
    /// Its limits; none: no cgroup of its own.
    pub resources: Resources,
    pub command: Vec<OsString>,
    /// `run -d`: its end leaves an exited record (see `state::Exited`).
    pub detached: bool,
}

/// The longest `KEY=VALUE` exec(3) passes (the kernel's MAX_ARG_STRLEN,
/// 32 pages, its NUL included): a longer one fails the exec with E2BIG,
/// which names the command, once the network is made.
const MAX_ENV_ENTRY: usize = 32 * 4096 - 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("invalid --loopback6-cgroup {}: not a cgroup2 directory", .0.display())]
    Loopback6Cgroup(PathBuf),
    #[error(
        "invalid container name {}: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 64 characters",
        quoted(.0)
    )]
    Name(String),
    #[error(
        "invalid container name {}: 12 hex digits, the form of a container id: stop, kill and inspect of that id would find this container instead",
        quoted(.0)
    )]
    NameLikeId(String),
    #[error(
        "invalid hostname {}: labels of letters, digits and '-' (not first or last), 1 to 63 characters each, joined by '.', at most 64 characters in all",
        quoted(.0)
    )]
    Hostname(String),
    #[error(
        "invalid --env {}: expected KEY=VALUE or KEY, with a non-empty KEY without '=' or NUL",
        quoted(.0)
    )]
    Env(String),
    #[error(transparent)]
    EnvFile(#[from] EnvFileError),
    #[error("invalid --label {}: expected KEY=VALUE or KEY, with a non-empty KEY", quoted(.0))]
    Label(String),
    #[error("invalid --label {}: {CONTROL}", quoted(.0))]
    LabelControl(String),
    #[error("invalid --label-file {}: the label {} {CONTROL}", path.display(), quoted(.key))]
    LabelFileControl { path: PathBuf, key: String },
    #[error("invalid --workdir {}: must be an absolute path", quoted(.0))]
    WorkdirRelative(PathBuf),
    #[error("invalid --workdir {}: not an existing directory", quoted(.0))]
    WorkdirMissing(PathBuf),
    #[error(transparent)]
    UserFile(#[from] root_file::UserFilesError),
    #[error(
        "invalid environment variable {key}: {bytes} bytes as KEY=VALUE, more than the kernel passes to a command ({MAX_ENV_ENTRY})"
    )]
    EnvTooLong { key: String, bytes: usize },
    #[error("no command given")]
    NoCommand,
    #[error("invalid command \"\": the program name is empty")]
    EmptyProgram,
    #[error("invalid --bridge {}: {reason}", quoted(.name))]
    Bridge { name: String, reason: &'static str },
    #[error(transparent)]
    Subnet(#[from] SubnetError),
    #[error("invalid --ip: {0}")]
    Ip(AddressError),
    #[error("--ip needs --network bridge")]
    IpWithoutBridge,
    #[error(transparent)]
    Subnet6(#[from] Subnet6Error),
    #[error("invalid --ip6: {0}")]
    Ip6(Address6Error),
    #[error("--ip6 needs --ipv6 (or SUPERVISOR_IPV6=1)")]
    Ip6WithoutIpv6,
    #[error(
        "invalid --subnet6 {subnet6}: fewer host addresses than --subnet {subnet}, whose host numbers give the containers' IPv6 addresses; use a prefix of /{longest} or shorter"
    )]
    Subnet6TooSmall {
        subnet6: Subnet6,
        subnet: Subnet,
        longest: u8,
    },
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(
        "--publish {first:?} and --publish {second:?} both publish host port {port}/{protocol}{on}: one run publishes each host port once",
        on = match .host_ip { Some(ip) => format!(" on {ip}"), None => String::new() }
    )]
    PublishTwice {
        first: String,
        second: String,
        /// The one address they clash on, when not every address.
        host_ip: Option<IpAddr>,
        port: u16,
        protocol: Protocol,
    },
    #[error("--publish needs --network bridge")]
    PublishWithoutBridge,
    #[error(
        "conflicting options: {option} and --network container:{target}: the container shares {target}'s {what}"
    )]
    SharedNetwork {
        option: &'static str,
        target: String,
        what: &'static str,
    },
    #[error(transparent)]
    Security(#[from] confinement::Error),
    #[error(transparent)]
    Names(#[from] etc_files::OptionError),
    #[error(transparent)]
    Filesystem(#[from] filesystem::Error),
    #[error(transparent)]
    Identity(#[from] identity::Error),
    #[error(transparent)]
    Resources(#[from] ResourceError),
}

impl RunSpec {
    pub fn new(options: RunOptions) -> Result<RunSpec, SpecError> {
        if let NetworkMode::Container(target) = &options.network {
            shares_network(&options, target)?;
        }
        let id = new_id();
        // Checked here, reported in its turn below.
        let network = network(&options);
        let resources = resources(&options)?;
        let name = match options.name {
            Some(name) => valid_name(name)?,
            None => id.clone(),
        };
        // The default, the name, is checked by the name's own rules: only
        // what the user typed as a hostname must be one.
        let hostname = match options.hostname {
            Some(hostname) => valid_hostname(hostname)?,
            None => name.clone(),
        };
        let mut env = Vec::new();
        for path in &options.env_file {
            env.extend(env_file::read("--env-file", path, |key| {
                std::env::var(key).ok()
            })?);
        }
        for entry in &options.env {
            env.extend(parse_env(entry)?);
        }
        if let Some((key, value)) = env
            .iter()
            .find(|(key, value)| key.len() + 1 + value.len() > MAX_ENV_ENTRY)
        {
            return Err(SpecError::EnvTooLong {
                key: key.clone(),
                bytes: key.len() + 1 + value.len(),
            });
        }
        let mut labels = BTreeMap::new();
        for path in &options.label_file {
            for (key, value) in env_file::read("--label-file", path, |_| Some(String::new()))? {
                if has_control(&key) || has_control(&value) {
                    let path = path.clone();
                    return Err(SpecError::LabelFileControl { path, key });
                }
                labels.insert(key, value);
            }
        }
        labels.extend(parse_labels(&options.labels)?);
        let filesystem = Filesystem::parse(&options.filesystem)?;
        // In the container's root: checked there only when it is the
        // host's; in a rootfs of the user's a missing one is made, as
        // docker does.
        let workdir = match options.workdir {
            None => PathBuf::from("/"),
            Some(dir) if !dir.is_absolute() => return Err(SpecError::WorkdirRelative(dir)),
            Some(dir) if filesystem.is_host() && !dir.is_dir() => {
                return Err(SpecError::WorkdirMissing(dir));
            }
            Some(dir) => dir,
        };
        let user = options
            .user
            .as_deref()
            .map(|spec| {
                let (passwd, group) = root_file::user_files(filesystem.root_dir(), spec)?;
                Ok::<_, SpecError>(identity::resolve_user(spec, &passwd, &group)?)
            })
            .transpose()?;
        let capabilities = identity::capabilities(&options.cap_add, &options.cap_drop)?;
        match options.command.first() {
            None => return Err(SpecError::NoCommand),
            // exec(3) of "" fails only in the child, after the network is made.
            Some(program) if program.is_empty() => return Err(SpecError::EmptyProgram),
            Some(_) => {}
        }
        let network = network?;
        // IPv6 host addresses need the network's IPv6 (`--ipv6`).
        let publish = parse_publish(&options.publish, options.ipv6)?;
        if !publish.is_empty() && network == Network::None {
            return Err(SpecError::PublishWithoutBridge);
        }
        let security = confinement::parse(&options.security_opt)?;
        let names = NameOptions::parse(
            &options.add_host,
            &options.dns,
            &options.dns_search,
            &options.dns_option,
        )?;
        Ok(RunSpec {
            id,
            name,
            hostname,
            env,
            labels,
            workdir,
            network,
            publish,
            loopback6_cgroup: loopback6_cgroup(options.loopback6_cgroup)?,
            state_dir: options.state_dir,
            stop_timeout: options.stop_timeout,
            init: options.init,
            security,
            names,
            filesystem,
            user,
            capabilities,
            resources,
            command: options.command,
            detached: false,
        })
    }

    /// The container's whole environment, like docker's without an image:
    /// PATH, HOSTNAME, HOME, TERM on a terminal, then the user's entries,
    /// which override.
    pub fn container_env(&self, terminal: bool) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_string(), DEFAULT_PATH.to_string()),
            ("HOSTNAME".to_string(), self.hostname.clone()),
            (
                "HOME".to_string(),
                self.user.as_ref().map_or("/root", |u| &u.home).to_string(),
            ),
        ];
        if terminal {
            let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".to_string());
            env.push(("TERM".to_string(), term));
        }
        for (key, value) in &self.env {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        env
    }
}

/// Refuses what a container sharing `target`'s network cannot have of its
/// own, as docker does: ports, an address, a hostname and names are
/// `target`'s.
fn shares_network(options: &RunOptions, target: &str) -> Result<(), SpecError> {
    let conflicts: [(bool, &str, &str); 7] = [
        (
            !options.publish.is_empty(),
            "--publish",
            "ports: publish them when running it",
        ),
        (options.ip.is_some(), "--ip", "address"),
        (options.ip6.is_some(), "--ip6", "address"),
        (options.hostname.is_some(), "--hostname", "hostname"),
        (!options.add_host.is_empty(), "--add-host", "/etc/hosts"),
        (!options.dns.is_empty(), "--dns", "/etc/resolv.conf"),
        (
            !options.dns_search.is_empty() || !options.dns_option.is_empty(),
            if options.dns_search.is_empty() {
                "--dns-option"
            } else {
                "--dns-search"
            },
            "/etc/resolv.conf",
        ),
    ];
    match conflicts.into_iter().find(|(given, _, _)| *given) {
        Some((_, option, what)) => Err(SpecError::SharedNetwork {
            option,
            target: target.to_string(),
            what,
        }),
        None => Ok(()),
    }
}

fn resources(options: &RunOptions) -> Result<Resources, ResourceError> {
    // Only for --cpus: finding out reads three files (cgroup quota, period).
    let available = || std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    Ok(Resources {
        memory: options.memory.as_deref().map(parse_memory).transpose()?,
        nano_cpus: (options.cpus.as_deref())
            .map(|text| parse_cpus(text, available()))
            .transpose()?,
        pids_limit: match options.pids_limit.as_deref() {
            Some(text) => parse_pids_limit(text)?,
            None => None,
        },
    })
}

fn network(options: &RunOptions) -> Result<Network, SpecError> {
    // Checked whatever the mode: a typo in a global option is refused at
    // once, not carried until the first bridge run.
    let bridge = bridge(options)?;
    let ip = options.ip.as_deref();
    if options.ip6.is_some() && !options.ipv6 {
        return Err(SpecError::Ip6WithoutIpv6);
    }
    match options.network.clone() {
        NetworkMode::None if ip.is_some() || options.ip6.is_some() => {
            return Err(SpecError::IpWithoutBridge);
        }
        NetworkMode::None => return Ok(Network::None),
        NetworkMode::Container(target) => return Ok(Network::Container { target }),
        NetworkMode::Bridge => {}
    }
    let ip = ip
        .map(|text| bridge.subnet.parse_container_address(text))
        .transpose()
        .map_err(SpecError::Ip)?;
    let ip6 = match (bridge.subnet6, options.ip6.as_deref()) {
        (Some(subnet6), Some(text)) => Some(
            subnet6
                .parse_container_address(text)
                .map_err(SpecError::Ip6)?,
        ),
        _ => None,
    };
    Ok(Network::Bridge { bridge, ip, ip6 })
}

/// `--bridge`, `--subnet` and `--subnet6`; without `--ipv6`, `--subnet6`
/// need only be a valid prefix.
fn bridge(options: &RunOptions) -> Result<Bridge, SpecError> {
    let name = &options.bridge;
    if let Some(reason) = crate::network::new_bridge_name_problem(name) {
        return Err(SpecError::Bridge {
            name: name.to_string(),
            reason,
        });
    }
    let subnet: Subnet = options.subnet.parse()?;
    let subnet6 = match options.ipv6 {
        true => Some(subnet6(&options.subnet6, subnet)?),
        false => {
            options.subnet6.parse::<Subnet6>()?;
            None
        }
    };
    Ok(Bridge {
        name: name.to_string(),
        subnet,
        subnet6,
    })
}

/// The `--subnet6` value, which must hold every host number of `subnet`:
/// a container's IPv6 address is derived from its IPv4 one.
fn subnet6(text: &str, subnet: Subnet) -> Result<Subnet6, SpecError> {
    let subnet6: Subnet6 = text.parse()?;
    let v4_host_bits = 32 - u32::from(subnet.prefix_len());
    if subnet6.host_bits() < v4_host_bits {
        return Err(SpecError::Subnet6TooSmall {
            subnet6,
            subnet,
            longest: (128 - v4_host_bits) as u8,
        });
    }
    Ok(subnet6)
}

fn valid_name(name: String) -> Result<String, SpecError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !(first_ok && rest_ok && name.len() <= MAX_NAME) {
        return Err(SpecError::Name(name));
    }
    // A name is looked up before an id: one shaped like an id could hide
    // that container from whoever stops it by the id `ps` showed them.
    if name.len() == ID_LEN && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(SpecError::NameLikeId(name));
    }
    Ok(name)
}

/// The `--publish` values, expanded; a host port given twice in one run
/// (on the same address, or on one address and on all of them) is refused
/// here, naming both values, rather than by the kernel as if another
/// container held it.
fn parse_publish(specs: &[String], ipv6: bool) -> Result<Vec<PortMapping>, SpecError> {
    // Per protocol and host port: each address it was given on, and by
    // which value.
    type Given<'a> = Vec<(Option<HostIp>, &'a str)>;
    let mut seen: HashMap<(Protocol, u16), Given> = HashMap::new();
    let mut all = Vec::new();
    for spec in specs {
        for mapping in publish::parse_for(spec, ipv6)? {
            if let Some(port) = mapping.host_port {
                let holders = seen.entry((mapping.protocol, port)).or_default();
                // No address: every address of every family.
                let clash = holders.iter().find(|(ip, _)| match (ip, mapping.host_ip) {
                    (Some(a), Some(b)) => a.overlaps(b),
                    _ => true,
                });
                if let Some((ip, first)) = clash {
                    return Err(SpecError::PublishTwice {
                        first: first.to_string(),
                        second: spec.clone(),
                        host_ip: ip
                            .and_then(HostIp::specific)
                            .or(mapping.host_ip.and_then(HostIp::specific)),
                        port,
                        protocol: mapping.protocol,
                    });
                }
                holders.push((mapping.host_ip, spec));
            }
            all.push(mapping);
        }
    }
    Ok(all)
}

/// `K=V`, or `K` alone for an empty value, as docker's `--label`; a key
/// given twice keeps its last value.
fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, SpecError> {
    let mut map = BTreeMap::new();
    for label in labels {
        let (key, value) = label.split_once('=').unwrap_or((label, ""));
        if key.is_empty() || label.contains('\0') {
            return Err(SpecError::Label(label.clone()));
        }
        if has_control(label) {
            return Err(SpecError::LabelControl(label.clone()));
        }
        map.insert(key.to_string(), value.to_string());
    }
    Ok(map)
}

/// Why a label may hold no control character but a tab: `ps --format`
/// prints labels as they are, so an ESC would start an escape sequence on
/// the terminal of whoever lists the containers, and a newline forge a
/// line of the listing.
const CONTROL: &str = "contains a control character (ps would print it to a terminal)";

fn has_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\t')
}

/// RFC 1123 host names, within the kernel's 64 bytes for a hostname.
fn valid_hostname(hostname: String) -> Result<String, SpecError> {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if hostname.len() <= MAX_HOSTNAME && hostname.split('.').all(label_ok) {
        Ok(hostname)
    } else {
        Err(SpecError::Hostname(hostname))
    }
}

/// `K=V` as given; `K` alone takes the supervisor's value, and is dropped
/// when unset (as docker does). `exec -e` takes the same.
pub(crate) fn parse_env(entry: &str) -> Result<Option<(String, String)>, SpecError> {
    let bad = || SpecError::Env(entry.to_string());
    if entry.contains('\0') {
        return Err(bad());
    }
    match entry.split_once('=') {
        Some(("", _)) => Err(bad()),
        Some((key, value)) => Ok(Some((key.to_string(), value.to_string()))),
        None if entry.is_empty() => Err(bad()),
        None => Ok(std::env::var(entry).ok().map(|v| (entry.to_string(), v))),
    }
}

/// A cgroup named for the `[::1]` hook must be a cgroup2 directory:
/// attached elsewhere the hook fails after the start, where a mistyped
/// path went unsaid (and a FIFO hung the supervisor on its open). Checked
/// for `run` only: the option is global, and a stale value in the
/// environment must not stop `ps`, `stop` or `gc`.
fn loopback6_cgroup(cgroup: Loopback6Cgroup) -> Result<Loopback6Cgroup, SpecError> {
    if let Loopback6Cgroup::At(path) = &cgroup {
        if !crate::cgroup::is_cgroup2_dir(path) {
            return Err(SpecError::Loopback6Cgroup(path.clone()));
        }
    }
    Ok(cgroup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(command: &[&str]) -> RunOptions {
        RunOptions {
            name: None,
            hostname: None,
            env: vec![],
            env_file: vec![],
            labels: vec![],
            label_file: vec![],
            workdir: None,
            network: NetworkMode::None,
            bridge: "sv0".into(),
            subnet: "172.16.0.0/24".into(),
            ip: None,
            ipv6: false,
            subnet6: crate::values::DEFAULT_SUBNET6.into(),
            ip6: None,
            loopback6_cgroup: Loopback6Cgroup::None,
            publish: vec![],
            state_dir: "/run/supervisor".into(),
            stop_timeout: Duration::from_secs(10),
            init: false,
            security_opt: vec![],
            add_host: vec![],
            dns: vec![],
            dns_search: vec![],
            dns_option: vec![],
            filesystem: FilesystemOptions::default(),
            user: None,
            cap_add: vec![],
            cap_drop: vec![],
            memory: None,
            cpus: None,
            pids_limit: None,
            command: command.iter().map(OsString::from).collect(),
        }
    }

    #[test]
    fn name_defaults_to_a_twelve_hex_digit_id_and_hostname_to_the_name() {
        let spec = RunSpec::new(options(&["true"])).unwrap();
        assert_eq!(spec.id.len(), 12);
        assert!(spec.id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(spec.name, spec.id);
        assert_eq!(spec.hostname, spec.name);
    }

    #[test]
    fn ids_differ() {
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn names_follow_dockers_alphabet() {
        for good in ["web", "web-1", "a.b_c", "9lives"] {
            assert!(valid_name(good.into()).is_ok(), "{good}");
        }
        for bad in ["", "-web", "we b", "web/1", "é", &"x".repeat(65)] {
            assert_eq!(valid_name(bad.into()), Err(SpecError::Name(bad.into())));
        }
    }

    #[test]
    fn a_name_shaped_like_a_container_id_is_refused() {
        let id = new_id();
        assert_eq!(valid_name(id.clone()), Err(SpecError::NameLikeId(id)));
        for good in [
            "36289cbc5b0",
            "36289cbc5b04a",
            "36289CBC5B04",
            "36289cbc5b0g",
        ] {
            assert!(valid_name(good.into()).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_bad_name_is_named_in_the_error() {
        let mut o = options(&["true"]);
        o.name = Some("bad name".into());
        let err = RunSpec::new(o).unwrap_err().to_string();
        assert!(err.contains("\"bad name\""), "{err}");
    }

    #[test]
    fn env_entries_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse_env("A=b=c").unwrap(),
            Some(("A".into(), "b=c".into()))
        );
        assert_eq!(parse_env("A=").unwrap(), Some(("A".into(), "".into())));
        assert_eq!(parse_env("=x"), Err(SpecError::Env("=x".into())));
        assert_eq!(parse_env(""), Err(SpecError::Env("".into())));
        assert_eq!(parse_env("SUPERVISOR_SURELY_UNSET_VAR").unwrap(), None);
    }

    #[test]
    fn user_env_overrides_defaults_and_terminal_adds_term() {
        let mut o = options(&["true"]);
        o.env = vec!["PATH=/x".into(), "FOO=1".into()];
        let spec = RunSpec::new(o).unwrap();
        let env = spec.container_env(false);
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(env.contains(&("PATH".into(), "/x".into())));
        assert!(env.contains(&("FOO".into(), "1".into())));
        assert!(!env.iter().any(|(k, _)| k == "TERM"));
        assert!(spec.container_env(true).iter().any(|(k, _)| k == "TERM"));
    }

    #[test]
    fn env_files_are_read_in_order_and_dash_e_wins() {
        let dir = crate::scratch::Scratch::new("spec-envfile");
        let (first, second) = (dir.join("first.env"), dir.join("second.env"));
        std::fs::write(&first, "A=file\nB=first\n").unwrap();
        std::fs::write(&second, "B=second\nC=file\n").unwrap();
        let mut o = options(&["true"]);
        o.env_file = vec![first.clone(), second];
        o.env = vec!["A=flag".into()];
        let env = RunSpec::new(o.clone()).unwrap().container_env(false);
        let value = |key: &str| env.iter().rfind(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(value("A").as_deref(), Some("flag"));
        assert_eq!(value("B").as_deref(), Some("second"));
        assert_eq!(value("C").as_deref(), Some("file"));
        std::fs::write(&first, "A=1\n\n bad key=2\n").unwrap();
        let err = RunSpec::new(o).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "--env-file {}:3: the variable name contains whitespace",
                first.display()
            )
        );
    }

    #[test]
    fn labels_take_key_value_or_a_bare_key_from_flags_or_files_and_refuse_an_empty_key() {
        let mut o = options(&["true"]);
        o.labels = vec!["tier=web".into(), "canary".into(), "a=b=c".into()];
        let labels = RunSpec::new(o.clone()).unwrap().labels;
        let expected: BTreeMap<String, String> = [("a", "b=c"), ("canary", ""), ("tier", "web")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(labels, expected);
        let scratch = crate::scratch::Scratch::new("spec-labels");
        let file = scratch.join("labels");
        std::fs::write(&file, "# labels\ntier=db\nowner=ops\nbare\n").unwrap();
        o.label_file = vec![file.clone()];
        let labels = RunSpec::new(o.clone()).unwrap().labels;
        assert_eq!(labels["tier"], "web", "--label wins over the file");
        assert_eq!(
            (labels["owner"].as_str(), labels["bare"].as_str()),
            ("ops", "")
        );
        std::fs::write(&file, "ok=1\n=x\n").unwrap();
        assert_eq!(
            RunSpec::new(o.clone()).unwrap_err().to_string(),
            format!(
                "--label-file {}:2: no variable name before '='",
                file.display()
            )
        );
        o.label_file = vec![];
        o.labels = vec!["=x".into()];
        assert_eq!(RunSpec::new(o).unwrap_err(), SpecError::Label("=x".into()));
    }

    #[test]
    fn a_label_with_a_control_character_is_refused_a_tab_is_not() {
        let mut o = options(&["true"]);
        for label in ["k\u{1b}[31m=1", "k=line\nforged", "k=\u{9b}2J", "k=\r"] {
            o.labels = vec![label.into()];
            assert_eq!(
                RunSpec::new(o.clone()).unwrap_err(),
                SpecError::LabelControl(label.into())
            );
        }
        o.labels = vec!["k=a\tb".into()];
        assert_eq!(RunSpec::new(o.clone()).unwrap().labels["k"], "a\tb");
        let scratch = crate::scratch::Scratch::new("spec-label-control");
        let file = scratch.join("labels");
        std::fs::write(&file, "ok=1\nk=\u{1b}]0;title\u{7}\n").unwrap();
        o.labels = vec![];
        o.label_file = vec![file.clone()];
        assert_eq!(
            RunSpec::new(o).unwrap_err().to_string(),
            format!(
                "invalid --label-file {}: the label \"k\" contains a control character (ps would print it to a terminal)",
                file.display()
            )
        );
    }

    #[test]
    fn workdir_must_be_an_absolute_existing_directory() {
        let mut o = options(&["true"]);
        o.workdir = Some("tmp".into());
        assert_eq!(
            RunSpec::new(o.clone()).unwrap_err(),
            SpecError::WorkdirRelative("tmp".into())
        );
        o.workdir = Some("/surely/not/here".into());
        assert_eq!(
            RunSpec::new(o.clone()).unwrap_err(),
            SpecError::WorkdirMissing("/surely/not/here".into())
        );
        o.workdir = Some("/tmp".into());
        assert_eq!(RunSpec::new(o).unwrap().workdir, PathBuf::from("/tmp"));
    }

    #[test]
    fn bridge_network_checks_bridge_subnet_and_ip() {
        let mut o = options(&["true"]);
        o.network = NetworkMode::Bridge;
        o.ip = Some("172.16.0.30".into());
        let spec = RunSpec::new(o.clone()).unwrap();
        let Network::Bridge { bridge, ip, ip6 } = spec.network else {
            panic!("not a bridge network");
        };
        assert_eq!((bridge.subnet6, ip6), (None, None));
        assert_eq!(
            (bridge.name.as_str(), bridge.subnet.to_string()),
            ("sv0", "172.16.0.0/24".into())
        );
        assert_eq!(ip, Some(Ipv4Addr::new(172, 16, 0, 30)));
        let error = |o: &RunOptions| RunSpec::new(o.clone()).unwrap_err().to_string();
        o.ip = Some("172.16.1.30".into());
        assert_eq!(
            error(&o),
            "invalid --ip: address 172.16.1.30 is outside the subnet 172.16.0.0/24"
        );
        o.ip = Some("172.16.0.255".into());
        assert_eq!(
            error(&o),
            "invalid --ip: address 172.16.0.255 is the broadcast address of 172.16.0.0/24, not a container address"
        );
        o.ip = Some("nope".into());
        assert_eq!(
            error(&o),
            "invalid --ip: \"nope\" is not an IPv4 address (like 172.16.0.30)"
        );
        o.ip = None;
        o.subnet = "172.16.0.0/33".into();
        assert!(
            error(&o).starts_with("invalid subnet \"172.16.0.0/33\""),
            "{}",
            error(&o)
        );
        o.subnet = "172.16.0.0/24".into();
        o.bridge = "a-much-too-long-bridge".into();
        assert_eq!(
            error(&o),
            "invalid --bridge \"a-much-too-long-bridge\": longer than 15 bytes"
        );
    }

    #[test]
    fn ipv6_checks_subnet6_and_ip6_naming_the_value() {
        let mut o = options(&["true"]);
        o.network = NetworkMode::Bridge;
        o.ipv6 = true;
        o.ip6 = Some("fd53:7570:6572::30".into());
        let spec = RunSpec::new(o.clone()).unwrap();
        let Network::Bridge { bridge, ip6, .. } = spec.network else {
            panic!("not a bridge network");
        };
        assert_eq!(
            bridge.subnet6.map(|s| s.to_string()).as_deref(),
            Some("fd53:7570:6572::/64")
        );
        assert_eq!(ip6, Some("fd53:7570:6572::30".parse().unwrap()));
        let error = |o: &RunOptions| RunSpec::new(o.clone()).unwrap_err().to_string();
        for (ip6, message) in [
            (
                "fd53:7570:6573::30",
                "invalid --ip6: address fd53:7570:6573::30 is outside the subnet fd53:7570:6572::/64",
            ),
            (
                "fd53:7570:6572::1",
                "invalid --ip6: address fd53:7570:6572::1 is the gateway address of fd53:7570:6572::/64, not a container address",
            ),
            (
                "172.16.0.30",
                "invalid --ip6: \"172.16.0.30\" is not an IPv6 address (like fd53:7570:6572::30)",
            ),
        ] {
            o.ip6 = Some(ip6.into());
            assert_eq!(error(&o), message);
        }
        o.ip6 = None;
        o.subnet6 = "fe80::/64".into();
        assert!(
            error(&o).starts_with("invalid --subnet6 \"fe80::/64\": inside fe80::/10"),
            "{}",
            error(&o)
        );
        o.subnet = "10.0.0.0/16".into();
        o.subnet6 = "fd00::/120".into();
        assert_eq!(
            error(&o),
            "invalid --subnet6 fd00::/120: fewer host addresses than --subnet 10.0.0.0/16, whose host numbers give the containers' IPv6 addresses; use a prefix of /112 or shorter"
        );
        o.subnet6 = "fd00::/112".into();
        assert!(RunSpec::new(o.clone()).is_ok());
        o.ipv6 = false;
        o.subnet6 = "fd00::/120".into();
        assert!(RunSpec::new(o.clone()).is_ok(), "fits without --ipv6");
        o.subnet6 = "not a prefix".into();
        assert!(
            error(&o).starts_with("invalid --subnet6 \"not a prefix\""),
            "checked without --ipv6 too: {}",
            error(&o)
        );
        o.subnet6 = "fd00::/112".into();
        o.ip6 = Some("fd00::5".into());
        assert_eq!(RunSpec::new(o).unwrap_err(), SpecError::Ip6WithoutIpv6);
    }

    #[test]
    fn every_network_mode_refuses_bad_bridge_options_naming_option_and_value() {
        let modes = [
            NetworkMode::None,
            NetworkMode::Container("web".into()),
            NetworkMode::Bridge,
        ];
        let bad: [(&str, &str, &str); 8] = [
            ("subnet", "1.2.3.4/99", "invalid subnet \"1.2.3.4/99\""),
            ("subnet", "nonsense", "invalid subnet \"nonsense\""),
            (
                "bridge",
                "a-much-too-long-bridge",
                "invalid --bridge \"a-much-too-long-bridge\"",
            ),
            ("bridge", "a/b", "invalid --bridge \"a/b\""),
            ("bridge", "a b", "invalid --bridge \"a b\""),
            ("bridge", "..", "invalid --bridge \"..\""),
            ("bridge", "", "invalid --bridge \"\""),
            ("subnet6", "fd00::/129", "invalid --subnet6 \"fd00::/129\""),
        ];
        for mode in modes {
            for (option, value, message) in bad {
                let mut o = options(&["true"]);
                o.network = mode.clone();
                match option {
                    "subnet" => o.subnet = value.into(),
                    "bridge" => o.bridge = value.into(),
                    _ => o.subnet6 = value.into(),
                }
                let error = RunSpec::new(o).unwrap_err().to_string();
                assert!(error.starts_with(message), "{mode:?}: {error}");
                assert!(!error.contains('\n'), "{mode:?}: one line: {error}");
            }
        }
    }

    #[test]
    fn no_network_refuses_ip() {
        let mut o = options(&["true"]);
        assert_eq!(RunSpec::new(o.clone()).unwrap().network, Network::None);
        o.ip = Some("172.16.0.30".into());
        assert_eq!(RunSpec::new(o).unwrap_err(), SpecError::IpWithoutBridge);
    }

    #[test]
    fn publish_specs_expand_and_need_the_bridge() {
        let mut o = options(&["true"]);
        o.network = NetworkMode::Bridge;
        o.publish = vec!["8080:80".into(), "9000-9001:9000-9001/udp".into()];
        let spec = RunSpec::new(o.clone()).unwrap();
        assert_eq!(spec.publish.len(), 3);
        o.network = NetworkMode::None;
        assert_eq!(
            RunSpec::new(o).unwrap_err(),
            SpecError::PublishWithoutBridge
        );
    }

    #[test]
    fn a_host_port_given_twice_in_one_run_is_refused_naming_both_values() {
        let mut o = options(&["true"]);
        o.network = NetworkMode::Bridge;
        let error = |publish: &[&str]| {
            let mut o = o.clone();
            o.publish = publish.iter().map(|s| s.to_string()).collect();
            RunSpec::new(o).err().map(|e| e.to_string())
        };
        assert_eq!(
            error(&["9000:80", "9000:81"]).as_deref(),
            Some(
                "--publish \"9000:80\" and --publish \"9000:81\" both publish host port 9000/tcp: one run publishes each host port once"
            )
        );
        assert_eq!(
            error(&["127.0.0.1:9000:80", "8990-9010:80-100"]).as_deref(),
            Some(
                "--publish \"127.0.0.1:9000:80\" and --publish \"8990-9010:80-100\" both publish host port 9000/tcp on 127.0.0.1: one run publishes each host port once"
            )
        );
        assert!(error(&["9000:80", "127.0.0.1:9000:81"]).is_some());
        // Another protocol, another address, or a port picked for us: no clash.
        assert_eq!(error(&["9000:80", "9000:80/udp"]), None);
        assert_eq!(error(&["127.0.0.1:9000:80", "127.0.0.2:9000:80"]), None);
        assert_eq!(error(&["80", "80"]), None);
    }

    #[test]
    fn a_host_port_clashes_within_one_family_only() {
        let clash = |publish: &[&str]| {
            let specs: Vec<String> = publish.iter().map(|s| s.to_string()).collect();
            parse_publish(&specs, true).err().map(|e| e.to_string())
        };
        assert_eq!(
            clash(&["[::1]:9000:80", "9000:81"]).as_deref(),
            Some(
                "--publish \"[::1]:9000:80\" and --publish \"9000:81\" both publish host port 9000/tcp on ::1: one run publishes each host port once"
            )
        );
        assert!(clash(&["[::]:9000:80", "[::1]:9000:80"]).is_some());
        assert_eq!(clash(&["0.0.0.0:9000:80", "[::]:9000:81"]), None);
        assert_eq!(clash(&["127.0.0.1:9000:80", "[::1]:9000:81"]), None);
        assert!(
            parse_publish(&["[::]:9000:80".to_string()], false)
                .unwrap_err()
                .to_string()
                .contains("needs --ipv6")
        );
    }

    #[test]
    fn hostnames_follow_rfc_1123_within_the_kernels_64_bytes() {
        for good in ["box", "web-1", "a.example.com", "9lives", &"a".repeat(63)] {
            assert!(valid_hostname(good.into()).is_ok(), "{good}");
        }
        let long = format!("{}.{}", "a".repeat(40), "b".repeat(30));
        for bad in [
            "",
            "a b",
            "-web",
            "web-",
            "a..b",
            ".a",
            "a_b",
            "é",
            "a/b",
            &"a".repeat(64),
            &long,
        ] {
            assert_eq!(
                valid_hostname(bad.into()),
                Err(SpecError::Hostname(bad.into())),
                "{bad}"
            );
        }
        let mut o = options(&["true"]);
        o.hostname = Some("a b".into());
        assert!(
            RunSpec::new(o)
                .unwrap_err()
                .to_string()
                .starts_with("invalid hostname \"a b\": labels of letters"),
        );
    }

    #[test]
    fn sharing_another_containers_network_refuses_what_would_be_its_own() {
        let mut o = options(&["true"]);
        o.network = NetworkMode::Container("web".into());
        assert_eq!(
            RunSpec::new(o.clone()).unwrap().network,
            Network::Container {
                target: "web".into()
            }
        );
        let refused = |f: &dyn Fn(&mut RunOptions)| {
            let mut o = o.clone();
            f(&mut o);
            match RunSpec::new(o).unwrap_err() {
                SpecError::SharedNetwork { option, .. } => option,
                other => panic!("{other}"),
            }
        };
        assert_eq!(refused(&|o| o.publish = vec!["80".into()]), "--publish");
        assert_eq!(refused(&|o| o.ip = Some("172.16.0.9".into())), "--ip");
        assert_eq!(refused(&|o| o.hostname = Some("box".into())), "--hostname");
        assert_eq!(
            refused(&|o| o.add_host = vec!["a:192.0.2.1".into()]),
            "--add-host"
        );
        assert_eq!(refused(&|o| o.dns = vec!["192.0.2.53".into()]), "--dns");
        assert_eq!(
            refused(&|o| o.dns_search = vec!["x".into()]),
            "--dns-search"
        );
        assert_eq!(
            refused(&|o| o.dns_option = vec!["ndots:1".into()]),
            "--dns-option"
        );
    }

    #[test]
    fn a_bad_publish_spec_is_named() {
        let mut o = options(&["true"]);
        o.network = NetworkMode::Bridge;
        o.publish = vec!["8080:80".into(), "0:80".into()];
        let err = RunSpec::new(o).unwrap_err().to_string();
        assert!(err.starts_with("invalid --publish \"0:80\""), "{err}");
    }
}
