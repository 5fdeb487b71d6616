//! `supervisor bench`: how fast containers start, measured the way a user
//! runs them (`supervisor run` as a process, N containers, C at a time),
//! and how the naive approach compares, measured in the same run.
//!
//! One job per file: `sandbox` is the throwaway host everything runs in,
//! `runner` runs `supervisor run` containers C at a time, `baseline` the
//! naive approach, `scale` pre-publishes ports, `phases` reads `-v` logs,
//! `stats` computes percentiles, `report` renders the table, JSON and CSV,
//! `plot` the SVG, and `progress` the bar on a terminal. `dual_stack`
//! alternates `--ipv6` runs with IPv4 ones, their connect hook on the
//! cgroup `hook_cgroup` makes. `cni` is the CNI
//! plugin's bench (`--cni`), driving networks through `cni_engine` in
//! namespaces from `named_netns`.
//!
//! Part of the binary (`mod bench` in main.rs), not of the library: it
//! measures the runtime from outside, through `supervisor run` processes and
//! the library's public API, so a reader of the runtime never steps over it
//! and the library never compiles it. The criterion benches in `benches/`
//! include the few files they share (`sandbox`, `phases`, `stats`, `scale`)
//! by path, which is why those files use nothing but `supervisor::…` and
//! the standard crates.

pub mod baseline;
pub mod cni;
pub mod cni_engine;
mod dual_stack;
mod hook_cgroup;
mod named_netns;
pub mod phases;
mod plot;
mod process_start;
mod progress;
pub mod report;
mod restart;
mod runner;
pub mod sandbox;
pub mod scale;
pub mod stats;

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use supervisor::firewall::{self, Firewall};
use supervisor::values::Subnet;

use progress::Progress;
pub use runner::Supervisor;

/// The bridge and subnet of the bench's own host (a /16, so any
/// concurrency finds addresses).
pub const BRIDGE: &str = "sv0";
pub const SUBNET: &str = "172.16.0.0/16";
/// `--ipv6`'s dual-stack bridge and its IPv4 subnet (its IPv6 one is
/// `run`'s default).
pub const BRIDGE6: &str = "sv6";
pub const SUBNET_OF_BRIDGE6: &str = "172.17.0.0/16";
/// Leases, records and the firewall lock, in the bench's private /run.
pub const STATE_DIR: &str = "/run/supervisor-bench";
/// The phase from starting the first command until the container's own
/// command is exec'd: what a user waits for before their program runs.
pub const UNTIL_EXEC: &str = "until exec";
/// Containers run, unrecorded, before each configuration: the first run
/// in a host creates the bridge and loads the tables, which is not what
/// the next ten thousand runs cost.
const WARMUP: usize = 2;
/// The host port of `--restart-same-port`, clear of the runner's and
/// `scale`'s ports.
const RESTART_PORT: u16 = 9000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid option: {0}")]
    Option(String),
    #[error(transparent)]
    Sandbox(#[from] sandbox::Error),
    #[error("{path}")]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{configuration}, container {index}: {detail}")]
    Run {
        configuration: String,
        index: usize,
        detail: String,
    },
    #[error("pre-publishing ports")]
    Firewall(#[from] firewall::Error),
    #[error("setting up the naive baseline: {0}")]
    Baseline(String),
    #[error("writing the report")]
    Output(#[source] io::Error),
}

impl Error {
    /// docker's convention for the supervisor's own failures.
    pub fn exit_code(&self) -> u8 {
        125
    }
}

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The supervisor binary to run containers with.
    pub supervisor: PathBuf,
    /// Containers per configuration.
    pub containers: usize,
    /// Containers running at the same time.
    pub concurrency: usize,
    /// A pause after each container (on each worker) before the next: lets
    /// the kernel finish tearing down the last one's namespace, so each is
    /// measured alone rather than back to back.
    pub pause: Duration,
    /// One published port per container.
    pub publish: bool,
    /// Also measure the naive approach.
    pub baseline: bool,
    /// Measure dual stack beside IPv4, alternated.
    pub ipv6: bool,
    /// Ports already published: one configuration per value.
    pub scale: Vec<usize>,
    /// Also measure a service restarted on the same port and address.
    pub restart_same_port: bool,
    /// Also measure starting the supervisor process against /bin/true.
    pub process_start: bool,
    pub json: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub plot: Option<PathBuf>,
}

impl Options {
    /// The command line that measures this again.
    pub fn command_line(&self) -> String {
        let mut line = format!(
            "supervisor bench --containers {} --concurrency {}",
            self.containers, self.concurrency
        );
        if !self.pause.is_zero() {
            line.push_str(&format!(" --pause {}", self.pause.as_millis()));
        }
        if self.publish {
            line.push_str(" --publish");
        }
        if self.ipv6 {
            line.push_str(" --ipv6");
        }
        if self.baseline {
            line.push_str(" --baseline");
        }
        if self.restart_same_port {
            line.push_str(" --restart-same-port");
        }
        if self.process_start {
            line.push_str(" --process-start");
        }
        if !self.scale.is_empty() {
            let values: Vec<String> = self.scale.iter().map(usize::to_string).collect();
            line.push_str(&format!(" --scale {}", values.join(",")));
        }
        for (flag, path) in [
            ("--json", &self.json),
            ("--csv", &self.csv),
            ("--plot", &self.plot),
        ] {
            if let Some(path) = path {
                line.push_str(&format!(" {flag} {}", path.display()));
            }
        }
        line
    }

    fn check(&self) -> Result<(), Error> {
        if self.containers == 0 {
            return Err(Error::Option("--containers must be at least 1".into()));
        }
        if self.concurrency == 0 || self.concurrency > runner::MAX_CONCURRENCY {
            return Err(Error::Option(format!(
                "--concurrency must be between 1 and {}",
                runner::MAX_CONCURRENCY
            )));
        }
        if self.ipv6 && !self.publish {
            return Err(Error::Option(
                "--ipv6 needs --publish: it times `run -p` dual stack against IPv4".into(),
            ));
        }
        if self.ipv6 && !self.scale.is_empty() {
            return Err(Error::Option(
                "--ipv6 with --scale: dual stack is compared with IPv4 at no port pre-published"
                    .into(),
            ));
        }
        if let Some(&n) = self.scale.iter().find(|&&n| n > scale::MAX) {
            return Err(Error::Option(format!(
                "--scale {n}: at most {} ports can be pre-published",
                scale::MAX
            )));
        }
        Ok(())
    }

    /// Whether measured containers publish a port: `--scale` is about
    /// published ports, so it implies `--publish`.
    pub fn publishes(&self) -> bool {
        self.publish || !self.scale.is_empty()
    }
}

/// One container's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its number within its configuration, from 0.
    pub container: usize,
    /// From starting the first command to the end of its teardown.
    pub end_to_end: Duration,
    /// Named phases, in the order they happened.
    pub phases: Vec<(String, Duration)>,
    /// Peak resident set of the supervisor process (its own VmHWM), KiB;
    /// None for the baseline, which is many processes.
    pub max_rss_kib: Option<u64>,
}

/// N containers started one way.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    pub name: String,
    /// The naive approach rather than the supervisor.
    pub baseline: bool,
    /// Ports already published while these containers ran.
    pub published_before: usize,
    /// `--ipv6`'s dual-stack runs, alternated with the IPv4 ones.
    pub dual_stack: bool,
    /// The time spent running containers: the wall time less `--pause`.
    pub busy: Duration,
    pub samples: Vec<Sample>,
}

impl Configuration {
    /// Containers per second of busy time.
    pub fn per_second(&self) -> f64 {
        let seconds = self.busy.as_secs_f64();
        if seconds > 0.0 {
            self.samples.len() as f64 / seconds
        } else {
            0.0
        }
    }

    /// Phase names in the order they first appear.
    pub fn phase_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for sample in &self.samples {
            for (name, _) in &sample.phases {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        names
    }

    /// Every sample's `phase`, where it was logged.
    pub fn phase(&self, phase: &str) -> Vec<Duration> {
        self.samples
            .iter()
            .filter_map(|s| phases::find(&s.phases, phase))
            .collect()
    }

    pub fn end_to_end(&self) -> Vec<Duration> {
        self.samples.iter().map(|s| s.end_to_end).collect()
    }

    pub fn max_rss_kib(&self) -> Vec<u64> {
        self.samples.iter().filter_map(|s| s.max_rss_kib).collect()
    }
}

/// The machine as the bench found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
    /// /proc/loadavg's 1, 5 and 15 minute figures at the start.
    pub load_average: String,
}

impl Machine {
    pub fn read() -> Machine {
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
            load_average,
        }
    }
}

/// Everything one `supervisor bench` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub command: String,
    pub machine: Machine,
    pub containers: usize,
    pub concurrency: usize,
    pub pause: Duration,
    pub publish: bool,
    pub configurations: Vec<Configuration>,
    /// What was not measured, and why.
    pub notes: Vec<String>,
}

/// The files asked for, created before the bench leaves the machine's
/// mount namespace: a path under /run must name the user's /run, not the
/// bench's private one.
struct Outputs {
    json: Option<(PathBuf, File)>,
    csv: Option<(PathBuf, File)>,
    plot: Option<(PathBuf, File)>,
}

impl Outputs {
    fn create(options: &Options) -> Result<Outputs, Error> {
        let open = |path: &Option<PathBuf>| -> Result<Option<(PathBuf, File)>, Error> {
            path.as_ref()
                .map(|p| {
                    File::create(p)
                        .map(|f| (p.clone(), f))
                        .map_err(|source| Error::File {
                            path: p.clone(),
                            source,
                        })
                })
                .transpose()
        };
        Ok(Outputs {
            json: open(&options.json)?,
            csv: open(&options.csv)?,
            plot: open(&options.plot)?,
        })
    }

    fn write(self, report: &Report) -> Result<(), Error> {
        for (file, render) in [
            (self.json, report::json as fn(&Report) -> String),
            (self.csv, report::csv),
            (self.plot, plot::svg),
        ] {
            if let Some((path, mut file)) = file {
                file.write_all(render(report).as_bytes())
                    .map_err(|source| Error::File { path, source })?;
            }
        }
        Ok(())
    }
}

/// Runs the whole bench in its own throwaway host and prints the table on
/// `out`; writes the files asked for.
pub fn run(options: &Options, out: &mut dyn Write) -> Result<(), Error> {
    options.check()?;
    let outputs = Outputs::create(options)?;
    sandbox::enter()?;
    let machine = Machine::read();
    let state_dir = PathBuf::from(STATE_DIR);
    std::fs::create_dir_all(&state_dir).map_err(|source| Error::File {
        path: state_dir.clone(),
        source,
    })?;
    let subnet: Subnet = SUBNET
        .parse()
        .map_err(|e| Error::Option(format!("bench subnet: {e}")))?;
    let supervisor = Supervisor {
        exe: options.supervisor.clone(),
        state_dir: state_dir.clone(),
        bridge: BRIDGE.into(),
        subnet: SUBNET.into(),
        publish: options.publishes(),
        dual_stack: None,
    };
    // The baseline first, before anything is pre-published: every `nft`
    // command loads the whole ruleset, and it should find what the
    // supervisor's first configuration finds.
    let mut notes = Vec::new();
    let mut naive = None;
    if options.baseline {
        match baseline::Tools::find(options.publishes()) {
            Ok(tools) => {
                let setup = baseline::Naive::setup(tools)?;
                let name = format!("naive baseline ({})", setup.tools());
                let publish = options.publishes();
                naive = Some(measure(&name, true, 0, options, |i| {
                    setup.run_one(i, publish)
                })?);
            }
            Err(why) => notes.push(format!("naive baseline not measured: {why}")),
        }
    }
    let mut configurations = Vec::new();
    if options.ipv6 {
        let cgroup = hook_cgroup::HookCgroup::make();
        notes.push(cgroup.note());
        let dual = Supervisor {
            bridge: BRIDGE6.into(),
            subnet: SUBNET_OF_BRIDGE6.into(),
            dual_stack: Some(cgroup.argument()),
            ..supervisor.clone()
        };
        configurations.extend(dual_stack::measure(&supervisor, &dual, options)?);
    } else if options.scale.is_empty() {
        configurations.push(measure("supervisor", false, 0, options, |i| {
            supervisor.run_one(i)
        })?);
    } else {
        let firewall = Firewall::open(&state_dir)?;
        firewall.ensure_network(BRIDGE, &subnet, None)?;
        let mut points = options.scale.clone();
        points.sort_unstable();
        points.dedup();
        let mut present = 0;
        for n in points {
            scale::prepublish(&firewall, present..n, &subnet)?;
            present = n;
            let name = format!("supervisor, {n} published");
            configurations.push(measure(&name, false, n, options, |i| {
                supervisor.run_one(i)
            })?);
        }
    }
    if options.process_start {
        let measured =
            process_start::measure(&options.supervisor, options.containers).map_err(|detail| {
                Error::Run {
                    configuration: "process start".into(),
                    index: 0,
                    detail,
                }
            })?;
        configurations.extend(measured);
    }
    if options.restart_same_port {
        let (configuration, note) = restarts(&supervisor, options)?;
        configurations.push(configuration);
        notes.push(note);
    }
    configurations.extend(naive);
    let report = Report {
        command: options.command_line(),
        machine,
        containers: options.containers,
        concurrency: options.concurrency,
        pause: options.pause,
        publish: options.publishes(),
        configurations,
        notes,
    };
    out.write_all(report::table(&report).as_bytes())
        .map_err(Error::Output)?;
    outputs.write(&report)
}

/// Runs `WARMUP` containers, unrecorded, then `options.containers` with
/// `one`, into a configuration.
fn measure(
    name: &str,
    baseline: bool,
    published_before: usize,
    options: &Options,
    one: impl Fn(usize) -> Result<Sample, String> + Sync,
) -> Result<Configuration, Error> {
    let attempt = |index| {
        one(index).map_err(|detail| Error::Run {
            configuration: name.to_string(),
            index,
            detail,
        })
    };
    for index in 0..WARMUP {
        attempt(index)?;
        std::thread::sleep(options.pause);
    }
    let progress = Progress::new(name, options.containers);
    let (samples, busy) = runner::measure(
        options.containers,
        options.concurrency,
        options.pause,
        &progress,
        attempt,
    )?;
    Ok(Configuration {
        name: name.to_string(),
        baseline,
        published_before,
        dual_stack: false,
        busy,
        samples,
    })
}

/// `--restart-same-port`: `options.containers` restarts, and a note of
/// the SYNs that went nowhere.
fn restarts(supervisor: &Supervisor, options: &Options) -> Result<(Configuration, String), Error> {
    let name = "supervisor, restarted on the same port and address";
    let ip = std::net::Ipv4Addr::new(172, 16, 0, 2);
    let progress = Progress::new(name, options.containers);
    let started = std::time::Instant::now();
    let measured = restart::measure(
        supervisor,
        options.containers,
        RESTART_PORT,
        ip,
        options.pause,
        &progress,
    )
    .map_err(|detail| Error::Run {
        configuration: name.to_string(),
        index: 0,
        detail,
    })?;
    let note = format!(
        "{name}: {} of {} connection attempts (one at a time, every 1 ms, 50 ms timeout) \
         got neither an answer nor a refusal",
        measured.lost, measured.attempts
    );
    Ok((
        Configuration {
            name: name.to_string(),
            baseline: false,
            published_before: 0,
            dual_stack: false,
            busy: started
                .elapsed()
                .saturating_sub(options.pause * options.containers as u32),
            samples: measured.samples,
        },
        note,
    ))
}

/// The named binary in $PATH, or in the sbin directories root's PATH has
/// but a user's may lack.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            supervisor: "supervisor".into(),
            containers: 100,
            concurrency: 1,
            pause: Duration::ZERO,
            publish: false,
            baseline: false,
            ipv6: false,
            scale: vec![],
            restart_same_port: false,
            process_start: false,
            json: None,
            csv: None,
            plot: None,
        }
    }

    #[test]
    fn the_command_line_repeats_every_option() {
        let mut o = options();
        assert_eq!(
            o.command_line(),
            "supervisor bench --containers 100 --concurrency 1"
        );
        o.publish = true;
        o.baseline = true;
        o.ipv6 = true;
        o.scale = vec![0, 100];
        o.restart_same_port = true;
        o.process_start = true;
        o.json = Some("out.json".into());
        o.pause = Duration::from_millis(50);
        assert_eq!(
            o.command_line(),
            "supervisor bench --containers 100 --concurrency 1 --pause 50 --publish --ipv6 \
             --baseline --restart-same-port --process-start --scale 0,100 --json out.json"
        );
    }

    #[test]
    fn bad_counts_are_refused_before_anything_runs() {
        let mut o = options();
        o.containers = 0;
        assert!(matches!(o.check(), Err(Error::Option(_))));
        let mut o = options();
        o.concurrency = 0;
        assert!(matches!(o.check(), Err(Error::Option(_))));
        let mut o = options();
        o.scale = vec![0, scale::MAX + 1];
        assert!(matches!(o.check(), Err(Error::Option(m)) if m.contains("--scale")));
    }

    #[test]
    fn ipv6_needs_publish_and_no_scale() {
        let mut o = options();
        o.ipv6 = true;
        assert!(matches!(o.check(), Err(Error::Option(m)) if m.contains("--publish")));
        o.publish = true;
        assert!(o.check().is_ok());
        o.scale = vec![0];
        assert!(matches!(o.check(), Err(Error::Option(m)) if m.contains("--scale")));
    }

    #[test]
    fn scale_implies_publishing() {
        let mut o = options();
        assert!(!o.publishes());
        o.scale = vec![0];
        assert!(o.publishes());
    }
}
