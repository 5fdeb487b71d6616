//! `supervisor bench --cni`: ADD and DEL of our CNI plugin against the
//! reference chain (`bridge` + `host-local` + `portmap`), timed the way an
//! engine waits for them (every plugin process started, fed its config,
//! reaped: see `cni_engine`), each attachment publishing one port, with 0,
//! 100, … containers already attached to the same network.
//!
//! The reference chain is measured first, before anything of ours exists;
//! its attachments stay while ours are measured (on another bridge and
//! subnet): removing them would cost minutes of DELs, and whatever they
//! cost ours counts against ours.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cni_engine::{Attachment, Network};
use super::named_netns::NamedNetns;
use super::stats::percentile;
use super::{Error, Machine, STATE_DIR, sandbox};

/// Where the reference plugins are (Debian's containernetworking-plugins).
const REFERENCE_DIR: &str = "/usr/lib/cni";
/// ADD/DEL pairs, unrecorded, before each configuration.
const WARMUP: usize = 2;
/// A measured attachment publishes host port `MEASURED_PORT + i % 10,000`;
/// pre-attached container `i`, `ATTACHED_PORT + i`.
const MEASURED_PORT: usize = 10_000;
const ATTACHED_PORT: usize = 30_000;
/// The most containers attached beforehand (a /16 holds them).
pub const MAX_ATTACHED: usize = 20_000;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// This binary: the plugin under test.
    pub supervisor: PathBuf,
    /// ADD/DEL pairs per configuration.
    pub samples: usize,
    /// Containers already attached: one configuration per value.
    pub attached: Vec<usize>,
    /// Wait this long after each ADD/DEL pair (and its namespace's removal)
    /// before the next, so the kernel's teardown of the last one is off the
    /// next ADD's path: each pair is then measured alone. Zero: back to
    /// back, as an engine replacing containers in a loop sees it.
    pub pause: Duration,
    /// Whether the reference chain is measured too (first).
    pub reference: bool,
    /// Whether our network is in routed mode (`"mode": "routed"`).
    pub routed: bool,
}

impl Options {
    pub fn command_line(&self) -> String {
        let levels: Vec<String> = self.attached.iter().map(usize::to_string).collect();
        let pause = match self.pause.as_millis() {
            0 => String::new(),
            ms => format!(" --pause {ms}"),
        };
        let reference = if self.reference {
            ""
        } else {
            " --no-reference"
        };
        let mode = if self.routed {
            " --cni-mode routed"
        } else {
            ""
        };
        format!(
            "supervisor bench --cni{reference}{mode} --containers {}{pause} --scale {}",
            self.samples,
            levels.join(",")
        )
    }

    fn check(&self) -> Result<(), Error> {
        if self.samples == 0 {
            return Err(Error::Option("--containers must be at least 1".into()));
        }
        if let Some(&n) = self.attached.iter().find(|&&n| n > MAX_ATTACHED) {
            return Err(Error::Option(format!(
                "--scale {n}: at most {MAX_ATTACHED} containers can be attached beforehand"
            )));
        }
        Ok(())
    }
}

/// One chain at one number of attached containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    pub name: String,
    pub attached: usize,
    pub add: Vec<Duration>,
    pub del: Vec<Duration>,
}

/// Where the reference chain is in [`conflists`].
const REFERENCE: usize = 0;

/// The two networks measured, each on its own bridge and /16; ours in
/// routed mode with `routed`.
fn conflists(routed: bool) -> [(&'static str, String); 2] {
    let (name, mode) = if routed {
        ("supervisor (routed)", r#""mode":"routed","#)
    } else {
        ("supervisor", "")
    };
    let host_local = Path::new(STATE_DIR).join("host-local");
    let state = Path::new(STATE_DIR).join("cni");
    [
        (
            "reference bridge + host-local + portmap",
            format!(
                r#"{{"cniVersion":"1.0.0","name":"benchref","plugins":[
                {{"type":"bridge","bridge":"cniref0","isGateway":true,"ipMasq":true,"hairpinMode":true,
                  "ipam":{{"type":"host-local","dataDir":"{}","ranges":[[{{"subnet":"10.99.0.0/16"}}]],
                           "routes":[{{"dst":"0.0.0.0/0"}}]}}}},
                {{"type":"portmap","capabilities":{{"portMappings":true}}}}]}}"#,
                host_local.display()
            ),
        ),
        (
            name,
            format!(
                r#"{{"cniVersion":"1.0.0","name":"benchours","plugins":[
                {{"type":"supervisor",{mode}"bridge":"svcni0","subnet":"10.98.0.0/16","stateDir":"{}",
                  "capabilities":{{"portMappings":true}}}}]}}"#,
                state.display()
            ),
        ),
    ]
}

/// Installs this binary as the plugin `supervisor` in a directory of the
/// bench's own.
fn install_plugin(exe: &Path) -> Result<PathBuf, Error> {
    let dir = Path::new(STATE_DIR).join("cni-bin");
    let file_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::File { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(file_error(&dir))?;
    let link = dir.join("supervisor");
    std::os::unix::fs::symlink(exe, &link).map_err(file_error(&link))?;
    Ok(dir)
}

/// Attaches container `id` (a netns of its own, publishing `port`) and
/// keeps it: its netns, to hold until the end.
fn attach(network: &Network, id: &str, port: usize) -> Result<NamedNetns, String> {
    let netns = NamedNetns::new(id).map_err(|e| format!("netns {id}: {e}"))?;
    let attachment = Attachment::publishing(id, netns.path(), &[(port as u16, 8000)]);
    network.add(&attachment).map_err(|e| e.to_string())?;
    Ok(netns)
}

/// One ADD and one DEL of a fresh container: their durations.
fn add_del(network: &Network, id: &str, port: usize) -> Result<(Duration, Duration), String> {
    let netns = NamedNetns::new(id).map_err(|e| format!("netns {id}: {e}"))?;
    let attachment = Attachment::publishing(id, netns.path(), &[(port as u16, 8000)]);
    let start = Instant::now();
    let result = network.add(&attachment).map_err(|e| e.to_string())?;
    let add = start.elapsed();
    let start = Instant::now();
    network
        .del(&attachment, Some(&result))
        .map_err(|e| e.to_string())?;
    Ok((add, start.elapsed()))
}

/// Runs the CNI bench in its own throwaway host; prints the table on `out`.
pub fn run(options: &Options, out: &mut dyn Write) -> Result<(), Error> {
    options.check()?;
    sandbox::enter()?;
    let machine = Machine::read();
    let plugin_dir = install_plugin(&options.supervisor)?;
    let dirs = [plugin_dir.as_path(), Path::new(REFERENCE_DIR)];
    let mut levels = options.attached.clone();
    levels.sort_unstable();
    levels.dedup();
    let mut configurations = Vec::new();
    let mut notes = Vec::new();
    // Kept to the end: see the module comment.
    let mut attached: Vec<NamedNetns> = Vec::new();
    for (chain, (name, conflist)) in conflists(options.routed).into_iter().enumerate() {
        if chain == REFERENCE && !options.reference {
            continue;
        }
        let network = Network::from_conflist(&conflist, &dirs).map_err(Error::Option)?;
        if let Err(why) = measure_chain(
            chain,
            name,
            &network,
            &levels,
            options,
            &mut attached,
            &mut configurations,
        ) {
            notes.push(format!("{name}: not measured further: {why}"));
        }
    }
    out.write_all(table(options, &machine, &configurations, &notes).as_bytes())
        .map_err(Error::Output)?;
    drop(attached);
    Ok(())
}

/// Every level of one chain, in ascending order; its attached containers
/// go into `attached`, each level's measurements into `configurations`.
fn measure_chain(
    chain: usize,
    name: &str,
    network: &Network,
    levels: &[usize],
    options: &Options,
    attached: &mut Vec<NamedNetns>,
    configurations: &mut Vec<Configuration>,
) -> Result<(), String> {
    let mut present = 0;
    for &level in levels {
        for i in present..level {
            let one = attach(network, &format!("a{chain}-{i}"), ATTACHED_PORT + i)
                .map_err(|d| format!("attaching container {i} beforehand: {d}"))?;
            attached.push(one);
        }
        present = level;
        let mut configuration = Configuration {
            name: format!("{name}, {level} attached"),
            attached: level,
            add: Vec::new(),
            del: Vec::new(),
        };
        for i in 0..WARMUP + options.samples {
            let id = format!("m{chain}-{level}-{i}");
            let (add, del) = add_del(network, &id, MEASURED_PORT + i % 10_000)
                .map_err(|d| format!("{level} attached, container {i}: {d}"))?;
            if i >= WARMUP {
                configuration.add.push(add);
                configuration.del.push(del);
            }
            std::thread::sleep(options.pause);
        }
        configurations.push(configuration);
    }
    Ok(())
}

/// Milliseconds with two decimals.
fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1000.0))
}

/// The report: min, median and p90 of ADD and DEL per configuration.
pub fn table(
    options: &Options,
    machine: &Machine,
    configurations: &[Configuration],
    notes: &[String],
) -> String {
    let mut text = format!(
        "{}\n{} ADD/DEL pairs per configuration (after {WARMUP} unrecorded), one published port \
         each, plugin processes included; {} CPUs, kernel {}, load average {} at the start\n\n",
        options.command_line(),
        options.samples,
        machine.cpus,
        machine.kernel,
        machine.load_average
    );
    let width = configurations
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max("configuration".len());
    text.push_str(&format!(
        "{:width$}  {:>8} {:>8} {:>8}  {:>8} {:>8} {:>8}\n",
        "configuration", "ADD min", "ADD p50", "ADD p90", "DEL min", "DEL p50", "DEL p90"
    ));
    for c in configurations {
        let mut add = c.add.clone();
        add.sort_unstable();
        let mut del = c.del.clone();
        del.sort_unstable();
        text.push_str(&format!(
            "{:width$}  {:>8} {:>8} {:>8}  {:>8} {:>8} {:>8}\n",
            c.name,
            ms(add.first().copied()),
            ms(percentile(&add, 50.0)),
            ms(percentile(&add, 90.0)),
            ms(del.first().copied()),
            ms(percentile(&del, 50.0)),
            ms(percentile(&del, 90.0)),
        ));
    }
    text.push_str("(milliseconds)\n");
    for note in notes {
        text.push_str(&format!("note: {note}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_gives_min_median_and_p90_of_add_and_del_per_configuration() {
        let options = Options {
            supervisor: "supervisor".into(),
            samples: 3,
            attached: vec![0, 100],
            pause: Duration::ZERO,
            reference: true,
            routed: false,
        };
        let machine = Machine {
            cpus: 2,
            kernel: "6.18".into(),
            load_average: "1.00 2.00 3.00".into(),
        };
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect();
        let table = table(
            &options,
            &machine,
            &[Configuration {
                name: "supervisor, 0 attached".into(),
                attached: 0,
                add: ms(&[3, 1, 2]),
                del: ms(&[30, 10, 20]),
            }],
            &["reference: not measured".into()],
        );
        assert!(
            table.ends_with("note: reference: not measured\n"),
            "{table}"
        );
        assert!(
            table.starts_with("supervisor bench --cni --containers 3 --scale 0,100\n"),
            "{table}"
        );
        let row = table
            .lines()
            .find(|l| l.starts_with("supervisor, 0 attached"))
            .expect("a row");
        let cells: Vec<&str> = row.split_whitespace().skip(3).collect();
        assert_eq!(cells, ["1.00", "2.00", "3.00", "10.00", "20.00", "30.00"]);
    }

    #[test]
    fn bad_options_are_refused_before_anything_runs() {
        let mut o = Options {
            supervisor: "s".into(),
            samples: 0,
            attached: vec![0],
            pause: Duration::ZERO,
            reference: true,
            routed: false,
        };
        assert!(matches!(o.check(), Err(Error::Option(_))));
        o.samples = 1;
        o.attached = vec![MAX_ATTACHED + 1];
        assert!(matches!(o.check(), Err(Error::Option(m)) if m.contains("--scale")));
    }
}
