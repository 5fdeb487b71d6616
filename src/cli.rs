//! The command line, in clap's terms. Nothing outside `main.rs` sees these
//! types: `main` turns them into the library's own option structs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use supervisor::values::Loopback6Cgroup;

#[derive(Debug, Parser)]
#[command(
    name = "supervisor",
    version,
    about = "Run a command in its own namespaces and own its network: bridge, veth, NAT and published ports",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command line `args` (the program's name first).
    ///
    /// Building clap's whole command (every subcommand's arguments, the
    /// global ones copied into each) and parsing with it (the global values
    /// copied between levels, each level's defaults) is most of what a
    /// start does before its first line of work, and `run` starts every
    /// container. So when only global options come before a `run`, the
    /// words are parsed first by one flat command: the global arguments and
    /// run's, no subcommand; with the whole command only when that fails (a
    /// mistake, --help, --version) or cannot answer alone, so that every
    /// message comes from the whole command. A flat parse that succeeds is
    /// the one the whole command makes: the words before `run` are global
    /// options, which the whole command parses as these same arguments at
    /// its top level, and the rest is what its `run` parses; the one case
    /// where the two levels differ (a global given on both sides of `run`,
    /// where the whole command keeps run's, not their sum or both) is left
    /// to it.
    pub fn parse_args(args: Vec<OsString>) -> Result<Cli, clap::Error> {
        if let Some(cli) = Self::parse_run(&args) {
            return Ok(cli);
        }
        Cli::try_parse_from(args)
    }

    /// `args` parsed by the flat command of the global and run's arguments,
    /// when only global options come before `run` and it parses them.
    fn parse_run(args: &[OsString]) -> Option<Cli> {
        // Other subcommands (`exec` starts a process too) build nothing here.
        if !args.iter().skip(1).any(|a| a == "run") {
            return None;
        }
        // Not global: that only copies them into subcommands, which this
        // command has none of, and costs the copying of their values.
        let globals =
            Global::augment_args(clap::Command::new("supervisor")).mut_args(|a| a.global(false));
        let (at, given) = globals_before_run(&globals, args)?;
        let rest = &args[at + 1..];
        if rest
            .iter()
            .any(|word| given.iter().any(|name| names_option(word, name)))
        {
            return None;
        }
        let command = RunArgs::augment_args(globals);
        let words = args[..at].iter().chain(rest);
        let mut matches = command.try_get_matches_from(words).ok()?;
        let global = Global::from_arg_matches_mut(&mut matches).ok()?;
        let run = RunArgs::from_arg_matches_mut(&mut matches).ok()?;
        Some(Cli {
            global,
            command: Command::Run(Box::new(run)),
        })
    }
}

/// Where `run` is in `args` (the program's name first) when every word
/// before it is one of `globals`' long options or the value that follows
/// one, and the long names given there; None otherwise. Which of them
/// takes a value is the arguments' own say, as is what a value may be:
/// the parse checks that.
fn globals_before_run<'a>(
    globals: &'a clap::Command,
    args: &[OsString],
) -> Option<(usize, Vec<&'a str>)> {
    // A short option could hide among others (`-xv`): none is looked for.
    if globals
        .get_arguments()
        .any(|a| a.get_short().is_some() || a.get_all_short_aliases().is_some())
    {
        return None;
    }
    let mut given = Vec::new();
    let mut at = 1;
    while at < args.len() {
        let word = args[at].to_str()?;
        if word == "run" {
            return Some((at, given));
        }
        let option = word.strip_prefix("--")?;
        let (name, joined) = match option.split_once('=') {
            Some((name, _)) => (name, true),
            None => (option, false),
        };
        let arg = globals.get_arguments().find(|a| {
            a.get_long() == Some(name) || a.get_all_aliases().unwrap_or_default().contains(&name)
        })?;
        given.extend(arg.get_long());
        given.extend(arg.get_all_aliases().unwrap_or_default());
        if arg.get_action().takes_values() && !joined {
            at += 1;
        }
        at += 1;
    }
    None
}

/// Whether `word` is the long option `name`, alone or with `=VALUE`.
fn names_option(word: &OsString, name: &str) -> bool {
    word.as_encoded_bytes()
        .strip_prefix(b"--")
        .and_then(|rest| rest.strip_prefix(name.as_bytes()))
        .is_some_and(|after| after.is_empty() || after[0] == b'=')
}

// The options every subcommand takes, before or after its name. (No doc
// comment: clap would take it for the program's about.) Under a heading of
// their own: clap interleaves a global with a subcommand's own options in
// `--help` otherwise (ps: --json, --verbose, --filter, --log-level…).
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// More logs on stderr: each lifecycle phase with its duration; twice,
    /// everything (as --log-level debug / trace).
    #[arg(long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// What to log on stderr (default warn); RUST_LOG, when set, wins.
    #[arg(long, global = true, value_enum, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,

    /// Where leases and container records live (an absolute path).
    #[arg(
        long,
        global = true,
        env = "SUPERVISOR_STATE_DIR",
        default_value = "/run/supervisor",
        value_parser = parse_state_dir
    )]
    pub state_dir: PathBuf,

    /// The host bridge containers attach to.
    #[arg(long, global = true, env = "SUPERVISOR_BRIDGE", default_value = "sv0")]
    pub bridge: String,

    /// The containers' IPv4 subnet; the gateway is its first address.
    #[arg(
        long,
        global = true,
        env = "SUPERVISOR_SUBNET",
        default_value = "172.16.0.0/24"
    )]
    pub subnet: String,

    /// Dual stack: the bridge network gets an IPv6 subnet too (--subnet6),
    /// each container an IPv6 address, and -p publishes on both families.
    #[arg(
        long,
        global = true,
        env = "SUPERVISOR_IPV6",
        action = ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub ipv6: bool,

    /// With --ipv6, the containers' IPv6 subnet (/64 to /120); the gateway
    /// is its first address (::1 of the prefix).
    #[arg(
        long,
        global = true,
        env = "SUPERVISOR_SUBNET6",
        default_value = supervisor::values::DEFAULT_SUBNET6,
        value_name = "CIDR"
    )]
    pub subnet6: String,

    /// Which processes reach a container's `[::1]:PORT` (TCP) straight,
    /// through a connect hook in the kernel, rather than through the
    /// supervisor's relay: those of this cgroup2 directory and below it, or
    /// none (the relay for all). Default: the cgroup2 root, every process.
    #[arg(
        long,
        global = true,
        env = "SUPERVISOR_LOOPBACK6_CGROUP",
        value_name = "PATH",
        value_parser = parse_loopback6_cgroup
    )]
    pub loopback6_cgroup: Option<Loopback6Cgroup>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new container and supervise it until it exits.
    Run(Box<RunArgs>),
    /// List the running containers (-a: the exited and dead ones too).
    Ps(PsArgs),
    /// Stop containers: SIGTERM, then SIGKILL after --time; returns once each
    /// one's supervisor has cleaned up.
    Stop(StopArgs),
    /// Remove exited containers: their exited records and logs (-f stops a
    /// running one first).
    Rm(RmArgs),
    /// Print a container's record and its live kernel state as JSON (an
    /// array for several containers).
    Inspect(InspectArgs),
    /// Send a signal (default SIGKILL) to containers' PID 1; returns
    /// without waiting for them to exit.
    Kill(KillArgs),
    /// Print a detached container's log (kept after it exits, until `rm` or
    /// `gc`).
    Logs(LogsArgs),
    /// Run a command inside a running container, confined as the container
    /// is, and exit with its code.
    Exec(ExecArgs),
    /// Remove what crashed supervisors left behind (records, leases, links,
    /// firewall elements) and exited containers' records and logs, and print
    /// each thing removed.
    Gc,
    /// Compare the records with the leases, links and firewall elements
    /// held, change nothing, and print one line per drift found (exit 1 when
    /// there is any).
    Check,
    /// Check or load nft-syntax ruleset files with the supervisor's own loader.
    #[command(subcommand)]
    Ruleset(RulesetCommand),
    /// Act as a CNI plugin: the command in CNI_COMMAND, the network
    /// configuration on stdin, the result on stdout (also whenever
    /// CNI_COMMAND is set, whatever other arguments). Takes no options: the
    /// state directory is the configuration's stateDir, else
    /// $SUPERVISOR_STATE_DIR.
    Cni,
    /// Measure container startup in a throwaway namespace, optionally against
    /// the naive approach (ip, iptables/nft commands), and print a table.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Container name (default: a short random id).
    #[arg(long)]
    pub name: Option<String>,

    /// Hostname inside the container (default: the name).
    #[arg(long)]
    pub hostname: Option<String>,

    /// Set an environment variable: K=V, or K alone to pass the host's value.
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,

    /// Read environment variables from FILE, docker's format: KEY=VALUE or
    /// KEY lines, # comments; repeatable; -e wins.
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Set a label on the container: K=V; repeatable; shown by inspect,
    /// matched by ps --filter label=K[=V].
    #[arg(short, long, value_name = "K=V")]
    pub label: Vec<String>,

    /// Read labels from FILE, --env-file's format; repeatable; --label wins.
    #[arg(long, value_name = "FILE")]
    pub label_file: Vec<PathBuf>,

    /// Working directory of the command [default: /].
    #[arg(short, long)]
    pub workdir: Option<PathBuf>,

    /// Network mode: bridge, none, or container:NAME to share a running
    /// container's network (its interfaces, address, ports and /etc files).
    #[arg(long, default_value = "bridge", value_parser = parse_network, value_name = "MODE")]
    pub network: NetworkArg,

    /// The container's address on the bridge (default: the next free one, round robin).
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<String>,

    /// With --ipv6, the container's IPv6 address (default: the subnet6
    /// prefix and the host number of its IPv4 address).
    #[arg(long, value_name = "ADDR")]
    pub ip6: Option<String>,

    /// Publish a port, as docker does: [HOSTIP:][HOSTPORT:]CTRPORT[/tcp|/udp],
    /// ranges like 8000-8010:9000-9010; repeatable.
    #[arg(
        short,
        long = "publish",
        value_name = "SPEC",
        allow_hyphen_values = true
    )]
    pub publish: Vec<String>,

    /// Seconds between SIGTERM/SIGINT and SIGKILL; `stop` without -t waits
    /// as long.
    #[arg(
        long,
        default_value_t = 10,
        value_name = "SECS",
        allow_negative_numbers = true,
        value_parser = seconds
    )]
    pub stop_timeout: u64,

    /// Print the network plan (ip, sysctl and nft commands) and change
    /// nothing: no bridge, lease, element, record or container.
    #[arg(long)]
    pub dry_run: bool,

    /// Run in the background: print the container's name once it has
    /// started with its ports published, and exit 0; its output goes to
    /// its log (`supervisor logs NAME`).
    #[arg(short, long)]
    pub detach: bool,

    /// docker's -i, for its command lines: the command always reads the
    /// caller's stdin (not with -d, whose command reads /dev/null).
    #[arg(short, long, conflicts_with = "detach")]
    pub interactive: bool,

    /// docker's -t, for its command lines: the command gets the terminal
    /// whenever stdin is one (not with -d, which has none).
    #[arg(short, long, conflicts_with = "detach")]
    pub tty: bool,

    /// docker's --rm, for its command lines: a run without -d leaves
    /// nothing when it ends (not with -d, whose exited record and log stay
    /// until `rm` or `gc`).
    #[arg(long, conflicts_with = "detach")]
    pub rm: bool,

    /// With -d: the size at which the log moves to NAME.log.1 (one kept):
    /// bytes, or with a k, m or g suffix; at least 4k.
    #[arg(long, value_name = "SIZE", default_value = supervisor::container_log::DEFAULT_MAX_SIZE,
          value_parser = supervisor::container_log::parse_size, requires = "detach",
          allow_negative_numbers = true)]
    pub log_max_size: u64,

    /// PID 1 is a minimal init that forwards signals to the command and
    /// reaps zombies (the default); --init=false makes the command PID 1.
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = ArgAction::Set
    )]
    pub init: bool,

    /// docker's: seccomp=unconfined, seccomp=FILE (docker's JSON profile),
    /// systempaths=unconfined (no read-only or masked /proc, the host's /sys).
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,

    /// An extra line in the container's /etc/hosts: NAME:IP; repeatable.
    #[arg(long, value_name = "NAME:IP")]
    pub add_host: Vec<String>,

    /// A nameserver for the container's /etc/resolv.conf (replaces the host's); repeatable.
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,

    /// A search domain for the container's /etc/resolv.conf ("." for none); repeatable.
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search: Vec<String>,

    /// A resolv.conf option, like ndots:2; repeatable.
    #[arg(long, value_name = "OPT")]
    pub dns_option: Vec<String>,

    /// The container's root: DIR, entered with pivot_root, with a fresh
    /// /proc, a minimal /dev and a read-only /sys (default: the host's tree,
    /// read-only).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// Without --rootfs, let the container write the host's filesystem and
    /// see its /tmp, /var/tmp and /run (the supervisor's state among them).
    #[arg(long)]
    pub rw_host: bool,

    /// Bind a host path into the container: HOST:CTR[:ro|rw]; repeatable.
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:ro|rw]")]
    pub volume: Vec<String>,

    /// A writable tmpfs in the container: CTR[:size=…,mode=…]; repeatable.
    #[arg(long, value_name = "CTR[:OPTS]")]
    pub tmpfs: Vec<String>,

    /// The container's root read-only (volumes and tmpfs mounts keep theirs).
    #[arg(long)]
    pub read_only: bool,

    /// Run the command as UID[:GID] or NAME[:GROUP], names from the
    /// container's own /etc/passwd and /etc/group.
    #[arg(short, long, value_name = "USER[:GROUP]", allow_hyphen_values = true)]
    pub user: Option<String>,

    /// Add a capability to docker's default set (NET_ADMIN, ALL…); repeatable.
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,

    /// Drop a capability from docker's default set (ALL for every one); repeatable.
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,

    /// A memory limit: bytes with an optional b, k, m or g suffix, from 6m
    /// to 4294967295g; as much swap again where swap is accounted, as docker.
    #[arg(short, long, value_name = "BYTES", allow_negative_numbers = true)]
    pub memory: Option<String>,

    /// A CPU limit: how many CPUs' worth of time per 100 ms, e.g. 0.5.
    #[arg(long, value_name = "CPUS", allow_negative_numbers = true)]
    pub cpus: Option<String>,

    /// How many processes and threads the container may have (0 or -1:
    /// no limit).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,

    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Containers to run per configuration.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub containers: usize,

    /// Containers running at the same time.
    #[arg(long, default_value_t = 1, value_name = "C")]
    pub concurrency: usize,

    /// Wait this long after each container before starting the next, so the
    /// kernel has removed the last one's namespace: each is then measured
    /// alone (0: back to back, which measures throughput). With --cni:
    /// after each ADD/DEL pair. With --restart-same-port: how long each
    /// service runs before its restart, so each restart is measured alone.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub pause: u64,

    /// Each container publishes one port (-p HOSTPORT:8000). With the
    /// global --ipv6: dual stack too, alternated with IPv4 container by
    /// container, and their ratio (its [::1] hook on a cgroup2 directory of
    /// the bench's own, never the root).
    #[arg(long)]
    pub publish: bool,

    /// Also measure the naive approach (ip link/addr/route and iptables or
    /// nft commands per container) in the same run.
    #[arg(long)]
    pub baseline: bool,

    /// Time CNI ADD and DEL of this binary as a plugin against the
    /// reference bridge + host-local + portmap chain, one published port
    /// each; --containers is the number of ADD/DEL pairs per configuration.
    #[arg(long, conflicts_with_all = ["concurrency", "publish", "baseline", "json", "csv", "plot"])]
    pub cni: bool,

    /// With --cni: leave the reference chain out. Ours alone, with
    /// --scale 1000 in a minute rather than the reference's many (and
    /// without its thousand ports in the same namespace, whose IPv6 routes
    /// and links every link change of ours walks too).
    #[arg(long, requires = "cni")]
    pub no_reference: bool,

    /// With --cni: the mode of our network, "bridge" (the default: every
    /// container a port of one bridge) or "routed" (a routed veth each,
    /// no bridge port; see the README's Kubernetes conflist).
    #[arg(long, requires = "cni", value_name = "MODE", value_parser = ["bridge", "routed"], default_value = "bridge")]
    pub cni_mode: String,

    /// Time this supervisor binary instead of this one, as `run` or with
    /// --cni as the plugin (e.g. an earlier build, timed by the same bench:
    /// to compare, run the bench with and without it in turn).
    #[arg(long, visible_alias = "plugin", value_name = "FILE")]
    pub binary: Option<PathBuf>,

    /// Measure with this many ports already published, one configuration
    /// per value, e.g. 0,100,1000,10000 (implies --publish). With --cni:
    /// containers already attached (default 0,100).
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    pub scale: Vec<usize>,

    /// Also restart one published service --containers times on the same
    /// port and address, and measure from each new run's start until a
    /// client polling the port every millisecond is answered.
    #[arg(long)]
    pub restart_same_port: bool,

    /// Also time starting the supervisor process (`supervisor --version`,
    /// and `run --dry-run --network none`) against /bin/true, --containers
    /// times each, interleaved.
    #[arg(long)]
    pub process_start: bool,

    /// Write every sample as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write every sample as CSV (one measurement per row).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Draw each configuration's latency distribution as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// A JSON array, stable for scripts.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// Only the containers matching: name=SUBSTRING, label=KEY or
    /// label=KEY=VALUE; repeatable (names ORed, labels ANDed, as docker).
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,

    /// Only the ids, one a line.
    #[arg(short, long)]
    pub quiet: bool,

    /// The exited containers too, and the dead (their supervisor crashed:
    /// `gc` removes them).
    #[arg(short, long)]
    pub all: bool,

    /// table, json (one object a line) or a template such as
    /// 'table {{.Name}}\t{{.Ports}}' (fields: Name ID Pid ContainerPid
    /// Address Address6 Network Ports Status ExitCode Uptime Command Labels Memory Cpus
    /// PidsLimit,
    /// and .Label "KEY").
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds between SIGTERM and SIGKILL [default: each container's
    /// --stop-timeout, 10 unless run with another].
    #[arg(short, long, value_name = "SECS", allow_negative_numbers = true, value_parser = seconds)]
    pub time: Option<u64>,

    /// Every running container.
    #[arg(short, long, conflicts_with = "containers")]
    pub all: bool,

    /// Containers by name, id or id prefix.
    #[arg(required_unless_present = "all", value_name = "NAME|ID")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Stop a running container first (SIGKILL), then remove it.
    #[arg(short, long)]
    pub force: bool,

    /// Containers by name, id or id prefix.
    #[arg(required = true, value_name = "NAME|ID")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Containers by name, id or id prefix.
    #[arg(required = true, value_name = "NAME|ID")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The signal: a name with or without SIG (TERM, SIGUSR1) or a number.
    #[arg(
        short,
        long,
        default_value = "KILL",
        value_name = "SIGNAL",
        allow_negative_numbers = true,
        value_parser = supervisor::control::parse_signal
    )]
    pub signal: i32,

    /// Containers by name, id or id prefix.
    #[arg(required = true, value_name = "NAME|ID")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing its output until the container ends.
    #[arg(short, long)]
    pub follow: bool,

    /// Only the last N lines.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub tail: Option<usize>,

    /// Start each line with the time it was written (RFC 3339, UTC).
    #[arg(short, long)]
    pub timestamps: bool,

    /// A container by name, id or id prefix.
    #[arg(value_name = "NAME|ID")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep stdin open (otherwise the command reads /dev/null).
    #[arg(short, long)]
    pub interactive: bool,

    /// The command gets the terminal, in its own foreground process group.
    #[arg(short, long)]
    pub tty: bool,

    /// Set an environment variable: K=V, or K alone to pass the caller's value.
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,

    /// Working directory of the command (default: the container's).
    #[arg(short, long)]
    pub workdir: Option<PathBuf>,

    /// Run as UID[:GID] or NAME[:GROUP] from the container's /etc/passwd
    /// (default: the container's user).
    #[arg(short, long, value_name = "USER[:GROUP]", allow_hyphen_values = true)]
    pub user: Option<String>,

    /// A container by name, id or id prefix.
    #[arg(value_name = "NAME|ID")]
    pub container: String,

    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    /// The supervisor's own info (others' stay at warn).
    Info,
    /// The supervisor's own lifecycle phases with their durations.
    Debug,
    /// Everything, every crate's.
    Trace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkArg {
    /// Only a loopback interface.
    None,
    /// A veth pair to the host bridge, with an address, NAT and published ports.
    Bridge,
    /// The network namespace of another running container (docker's
    /// `container:NAME`, for sidecars).
    Container(String),
}

/// A relative state directory is another one in each working directory:
/// `ps`, `stop` or `gc` run from elsewhere would not see the containers,
/// nor a `run` there their leases.
/// One that is, or is under, a file is refused too ([`supervisor::state::parse_dir`]).
fn parse_state_dir(value: &str) -> Result<PathBuf, String> {
    if !Path::new(value).is_absolute() {
        return Err("must be an absolute path (a relative one names another directory wherever the supervisor runs)".to_string());
    }
    supervisor::state::parse_dir(value)
}

/// The most seconds `--stop-timeout` and `stop -t` take (136 years): more
/// can only be a slip.
const MAX_SECONDS: u64 = u32::MAX as u64;

/// Whole seconds from 0 to [`MAX_SECONDS`], refused naming what is expected
/// (the number's own parse said "invalid digit found in string" of `-1`).
fn seconds(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(secs) if secs <= MAX_SECONDS => Ok(secs),
        _ => Err(format!("expected whole seconds from 0 to {MAX_SECONDS}")),
    }
}

fn parse_loopback6_cgroup(value: &str) -> Result<Loopback6Cgroup, String> {
    value.parse()
}

fn parse_network(value: &str) -> Result<NetworkArg, String> {
    match value {
        "none" => Ok(NetworkArg::None),
        "bridge" => Ok(NetworkArg::Bridge),
        _ => match value.strip_prefix("container:") {
            Some(name) if !name.is_empty() => Ok(NetworkArg::Container(name.to_string())),
            _ => Err("expected bridge, none or container:NAME".to_string()),
        },
    }
}

#[derive(Debug, Subcommand)]
pub enum RulesetCommand {
    /// Parse, check and compile; change nothing in the kernel. Exit 0 when all files are valid.
    Check(RulesetArgs),
    /// Load the files as one atomic transaction.
    Load(RulesetArgs),
}

#[derive(Debug, Args)]
pub struct RulesetArgs {
    /// Define a variable as `define NAME = VALUE` would.
    #[arg(short = 'D', long = "define", value_name = "NAME=VALUE")]
    pub defines: Vec<String>,

    /// Ruleset files in nft syntax.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("supervisor")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_args(argv(args))
    }

    /// What the whole command makes of `args`: the parse, or the error's
    /// kind and message.
    fn whole(args: &[&str]) -> String {
        match Cli::try_parse_from(argv(args)) {
            Ok(cli) => format!("{cli:?}"),
            Err(err) => format!("{:?}: {err}", err.kind()),
        }
    }

    /// Command lines `run` starts with, as users and the bench write them.
    const FLAT: &[&[&str]] = &[
        &["run", "--", "true"],
        &["run", "true"],
        &[
            "--bridge", "br9", "run", "-p", "8080:80", "--name", "web", "--", "nc", "-l",
        ],
        &[
            "--verbose",
            "--state-dir",
            "/run/st",
            "--bridge",
            "br9",
            "--subnet",
            "10.9.0.0/24",
            "run",
            "-p",
            "8080:8000",
            "--",
            "/bin/true",
        ],
        &[
            "--ipv6",
            "run",
            "--subnet6",
            "fd00:9::/64",
            "-e",
            "A=1",
            "sh",
            "-c",
            "run",
        ],
        &["run", "--verbose", "--init=false", "run"],
        &["--verbose", "--verbose", "run", "true"],
        &["run", "--verbose", "--verbose", "true"],
        &["--bridge=run", "run", "true"],
        &["--bridge", "run", "run", "true"],
        &[
            "--log-level",
            "debug",
            "--subnet6=fd00:1::/64",
            "run",
            "true",
        ],
        &[
            "--state-dir",
            "/tmp/run",
            "run",
            "--log-level",
            "debug",
            "true",
        ],
        &[
            "run",
            "-d",
            "--log-max-size",
            "2m",
            "-v",
            "/a:/b:ro",
            "true",
        ],
        &[
            "run",
            "--pids-limit",
            "-1",
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "true",
        ],
        &[
            "run",
            "--network",
            "container:web",
            "--",
            "sh",
            "--bridge",
            "x",
        ],
        &["run", "--", "--verbose"],
    ];

    /// Command lines the flat parse leaves to the whole command: mistakes,
    /// help, version, other subcommands, `run` as a value, a global on
    /// both sides of `run`.
    const WHOLE: &[&[&str]] = &[
        &[],
        &["run"],
        &["run", "--help"],
        &["run", "-h"],
        &["run", "--version"],
        &["--version", "run"],
        &["help", "run"],
        &["--bridge", "run", "ps"],
        &["--log-level", "run", "run", "true"],
        &["run", "--no-such-option", "true"],
        &["-v", "run", "true"],
        &["-p", "80", "run", "true"],
        &["--name", "x", "run", "true"],
        &["--", "run", "true"],
        &["foo", "run", "true"],
        &["--verbose=2", "run", "true"],
        &["--verbose", "run", "--verbose", "true"],
        &["--bridge", "a", "run", "--bridge", "b", "true"],
        &["--bridge", "a", "run", "--bridge=b", "true"],
        &["--ipv6", "run", "--ipv6", "true"],
        &["--log-level", "info", "run", "--log-level=debug", "true"],
        &["--bridge", "a", "run", "--", "prog", "--bridge"],
        &["--bridge", "run"],
        &["--state-dir"],
        &["ps", "run"],
        &["stop", "run"],
        &["run", "--init=maybe", "true"],
        &["run", "--network", "host", "true"],
        &["run", "--stop-timeout", "-1", "true"],
    ];

    #[test]
    fn the_flat_run_parse_reads_a_command_line_as_the_whole_command_does() {
        for args in FLAT {
            let flat = Cli::parse_run(&argv(args)).expect("parsed flat");
            assert_eq!(format!("{flat:?}"), whole(args), "{args:?}");
        }
        for args in FLAT.iter().chain(WHOLE) {
            let parsed = match parse(args) {
                Ok(cli) => format!("{cli:?}"),
                Err(err) => format!("{:?}: {err}", err.kind()),
            };
            assert_eq!(parsed, whole(args), "{args:?}");
        }
    }

    #[test]
    fn what_the_flat_run_parse_cannot_answer_is_left_to_the_whole_command() {
        for args in WHOLE {
            assert!(Cli::parse_run(&argv(args)).is_none(), "{args:?}");
        }
        let cli = parse(&["--bridge", "run", "ps"]).expect("valid");
        assert_eq!(cli.global.bridge, "run");
        assert!(matches!(cli.command, Command::Ps(_)));
        let err = parse(&["run", "--help"]).expect_err("help");
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(err.to_string().contains("--publish"));
    }

    #[test]
    fn a_global_given_on_both_sides_of_run_is_runs_own() {
        let cli = parse(&["--verbose", "run", "--verbose", "true"]).expect("valid");
        assert_eq!(cli.global.verbose, 1);
        let cli = parse(&["--bridge", "a", "run", "--bridge", "b", "true"]).expect("valid");
        assert_eq!(cli.global.bridge, "b");
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(args).expect("valid").command {
            Command::Run(run) => *run,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn run_defaults() {
        let run = run_args(&["run", "--", "true"]);
        assert_eq!(run.stop_timeout, 10);
        assert!(run.init);
        assert_eq!(run.name, None);
        assert_eq!(run.command, ["true"]);
        assert_eq!(run.network, NetworkArg::Bridge);
        assert_eq!(run.ip, None);
        assert_eq!(run.ip6, None);
    }

    #[test]
    fn ipv6_and_subnet6_are_global_and_ip6_belongs_to_run() {
        let cli = parse(&["run", "--", "true"]).expect("valid");
        assert!(!cli.global.ipv6);
        assert_eq!(cli.global.subnet6, "fd53:7570:6572::/64");
        let cli = parse(&[
            "--ipv6",
            "run",
            "--subnet6",
            "fd00:9::/64",
            "--ip6",
            "fd00:9::7",
            "--",
            "true",
        ])
        .expect("valid");
        assert!(cli.global.ipv6);
        assert_eq!(cli.global.subnet6, "fd00:9::/64");
        let Command::Run(run) = cli.command else {
            panic!("not run");
        };
        assert_eq!(run.ip6.as_deref(), Some("fd00:9::7"));
    }

    #[test]
    fn network_options_are_global_and_ip_belongs_to_run() {
        let cli = parse(&[
            "run",
            "--bridge",
            "br9",
            "--subnet",
            "10.9.0.0/24",
            "--ip",
            "10.9.0.7",
            "--",
            "true",
        ])
        .expect("valid");
        assert_eq!(
            (cli.global.bridge.as_str(), cli.global.subnet.as_str()),
            ("br9", "10.9.0.0/24")
        );
        let Command::Run(run) = cli.command else {
            panic!("not run");
        };
        assert_eq!(run.ip.as_deref(), Some("10.9.0.7"));
    }

    #[test]
    fn env_repeats_and_the_command_keeps_its_own_flags() {
        let run = run_args(&[
            "run", "-e", "A=1", "--env", "B", "--name", "web", "--", "nc", "-l", "-p", "8000",
        ]);
        assert_eq!(run.env, ["A=1", "B"]);
        assert_eq!(run.name.as_deref(), Some("web"));
        assert_eq!(run.command, ["nc", "-l", "-p", "8000"]);
    }

    #[test]
    fn the_command_may_follow_options_without_dashes() {
        let run = run_args(&["run", "--init", "sh", "-c", "exit 3"]);
        assert!(run.init);
        assert_eq!(run.command, ["sh", "-c", "exit 3"]);
    }

    #[test]
    fn init_is_the_default_and_takes_a_bool_after_an_equals_sign() {
        assert!(run_args(&["run", "--init=true", "true"]).init);
        let run = run_args(&["run", "--init=false", "false"]);
        assert!(!run.init);
        assert_eq!(run.command, ["false"]);
        assert!(parse(&["run", "--init=maybe", "true"]).is_err());
    }

    #[test]
    fn a_log_size_without_detach_is_refused_as_there_is_no_log() {
        let err = parse(&["run", "--log-max-size", "4k", "true"]).unwrap_err();
        assert!(err.to_string().contains("--detach"), "{err}");
        assert!(parse(&["run", "-d", "--log-max-size", "4k", "true"]).is_ok());
        assert!(parse(&["--bridge", "br9", "run", "true"]).is_ok());
    }

    #[test]
    fn a_missing_command_or_bad_timeout_is_refused() {
        assert!(parse(&["run"]).is_err());
        for args in [
            &["run", "--stop-timeout", "-1", "true"][..],
            &["run", "--stop-timeout", "1.5", "true"],
            &["stop", "-t", "99999999999999999999", "web"],
            &["stop", "-t", "4294967296", "web"],
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(
                err.contains(": expected whole seconds from 0 to 4294967295"),
                "{args:?}: {err}"
            );
        }
        let Command::Stop(stop) = parse(&["stop", "web"]).unwrap().command else {
            panic!("not stop");
        };
        assert_eq!(stop.time, None, "each container's own --stop-timeout");
        assert!(parse(&["run", "--network", "host", "true"]).is_err());
        assert!(parse(&["run", "--network", "container:", "true"]).is_err());
        assert_eq!(
            run_args(&["run", "--network", "container:web", "true"]).network,
            NetworkArg::Container("web".into())
        );
    }

    #[test]
    fn bench_defaults_and_a_scale_list() {
        let Command::Bench(bench) = parse(&["bench"]).unwrap().command else {
            panic!("not bench");
        };
        assert_eq!((bench.containers, bench.concurrency), (100, 1));
        assert!(!bench.publish && !bench.baseline && bench.scale.is_empty());
        let Command::Bench(bench) = parse(&["bench", "--scale", "0,100,10000", "--publish"])
            .unwrap()
            .command
        else {
            panic!("not bench");
        };
        assert_eq!(bench.scale, [0, 100, 10000]);
        assert!(parse(&["bench", "--scale", "0,x"]).is_err());
    }

    #[test]
    fn stop_takes_several_containers_and_a_time() {
        let cli = parse(&["stop", "-t", "3", "web", "3f2a"]).unwrap();
        let Command::Stop(stop) = cli.command else {
            panic!("not stop");
        };
        assert_eq!(stop.time, Some(3));
        assert_eq!(stop.containers, ["web", "3f2a"]);
        assert!(parse(&["stop"]).is_err());
        assert!(matches!(
            parse(&["ps", "--json"]).unwrap().command,
            Command::Ps(PsArgs { json: true, .. })
        ));
        assert!(parse(&["inspect"]).is_err());
        let Command::Stop(all) = parse(&["stop", "--all", "-t", "1"]).unwrap().command else {
            panic!("not stop");
        };
        assert!(all.all && all.containers.is_empty());
        assert!(parse(&["stop", "--all", "web"]).is_err());
        assert!(matches!(parse(&["gc"]).unwrap().command, Command::Gc));
    }

    #[test]
    fn kill_defaults_to_sigkill_and_takes_a_signal_by_name_or_number() {
        let kill = |args: &[&str]| match parse(args).unwrap().command {
            Command::Kill(kill) => kill,
            other => panic!("not kill: {other:?}"),
        };
        assert_eq!(kill(&["kill", "web"]).signal, libc::SIGKILL);
        assert_eq!(
            kill(&["kill", "-s", "TERM", "a", "b"]).signal,
            libc::SIGTERM
        );
        assert_eq!(
            kill(&["kill", "--signal=SIGUSR1", "a"]).signal,
            libc::SIGUSR1
        );
        assert_eq!(kill(&["kill", "-s", "1", "a"]).containers, ["a"]);
        assert!(parse(&["kill", "-s", "NOPE", "a"]).is_err());
        assert!(parse(&["kill"]).is_err());
    }

    #[test]
    fn a_state_dir_that_is_or_is_under_a_file_is_refused_naming_the_option() {
        for bad in ["/dev/null", "/dev/null/state"] {
            let err = parse(&["--state-dir", bad, "ps"]).unwrap_err().to_string();
            assert!(
                err.contains("--state-dir") && err.contains("/dev/null is not a directory"),
                "{err}"
            );
        }
        // One still to be made is fine: the supervisor makes it.
        let cli = parse(&["--state-dir", "/run/no-such/state", "ps"]).unwrap();
        assert_eq!(
            cli.global.state_dir,
            std::path::PathBuf::from("/run/no-such/state")
        );
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let cli = parse(&["--state-dir", "/tmp/s", "run", "--verbose", "true"]).unwrap();
        assert_eq!(cli.global.state_dir, std::path::PathBuf::from("/tmp/s"));
        assert_eq!(cli.global.verbose, 1);
        let cli = parse(&["--log-level", "debug", "run", "true"]).unwrap();
        assert_eq!(cli.global.log_level, Some(LogLevel::Debug));
    }

    #[test]
    fn exec_takes_dockers_flags_then_the_container_and_the_commands_own_flags() {
        let Command::Exec(exec) = parse(&[
            "exec", "-it", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "web", "ls", "-l",
        ])
        .unwrap()
        .command
        else {
            panic!("not exec");
        };
        assert!(exec.interactive && exec.tty);
        assert_eq!(exec.env, ["A=1"]);
        assert_eq!(exec.user.as_deref(), Some("nobody"));
        assert_eq!(exec.container, "web");
        assert_eq!(exec.command, ["ls", "-l"]);
        assert!(parse(&["exec", "web"]).is_err());
    }

    #[test]
    fn dash_v_is_dockers_volume_never_verbosity() {
        let run = run_args(&["run", "-v", "/tmp:/data", "--volume=/a:/b:ro", "true"]);
        assert_eq!(run.volume, ["/tmp:/data", "/a:/b:ro"]);
        assert_eq!(run.command, ["true"]);
        assert!(parse(&["-v", "run", "true"]).is_err());
        assert!(parse(&["ps", "-v"]).is_err());
    }

    #[test]
    fn a_subcommands_help_lists_its_own_options_before_the_global_ones() {
        use clap::CommandFactory;
        for (name, own) in [
            ("ps", "--quiet"),
            ("run", "--publish"),
            ("exec", "--workdir"),
        ] {
            let mut cli = Cli::command();
            cli.build();
            let sub = cli.find_subcommand_mut(name).expect("the subcommand");
            let help = sub.render_long_help().to_string();
            let at = |text: &str| {
                help.find(text)
                    .unwrap_or_else(|| panic!("{text} in\n{help}"))
            };
            let heading = at("\nGlobal options:\n");
            assert!(
                at(own) < heading,
                "{name}: {own} after the heading:\n{help}"
            );
            for global in ["--verbose", "--state-dir", "--bridge", "--loopback6-cgroup"] {
                assert!(
                    at(global) > heading,
                    "{name}: {global} among its own:\n{help}"
                );
            }
        }
    }
}
