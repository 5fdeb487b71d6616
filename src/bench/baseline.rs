//! The naive approach, measured for comparison, and nothing else: the
//! seed's way of giving a container its network and a published port,
//! one command per step, as a shell script or `system()` runs them.
//!
//! Per container:
//! - the namespaces: `unshare --net --pid --fork --uts --ipc --mount
//!   --mount-proc`, running a small shell that waits for its network;
//! - in the host: `ip link add nvN type veth peer name nvNc`, `ip link set
//!   nvN master BRIDGE`, `ip link set nvN up`, and the peer moved into the
//!   container with `ip link set nvNc netns PID`;
//! - inside (the container's shell, as the seed's child did): `ip link set
//!   lo up`, `ip link set nvNc up`, `ip addr add`, `ip route add default`;
//! - with a published port, the seed's three rules per port: DNAT in
//!   prerouting and in output, accept in forward (`iptables` when
//!   installed, as the seed; else the same rules with `nft`);
//! - then the command runs, and the rules are deleted again (the veth
//!   pair goes with the container's namespace, as the supervisor's does).
//!
//! This module is the only code in the crate that runs `ip`, `nft`,
//! `iptables` or `unshare`, and only inside the bench's throwaway host: the
//! supervisor itself never runs them. It works on its own bridge, subnet
//! and table, apart from the supervisor's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Error, Sample, find_program};

const BRIDGE: &str = "svnaive0";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 1);
const PREFIX: u8 = 16;
/// The naive table, when the rules are nft's.
const NFT_TABLE: &str = "table ip naive {
	chain prerouting { type nat hook prerouting priority dstnat; policy accept; }
	chain output { type nat hook output priority -100; policy accept; }
	chain forward { type filter hook forward priority filter; policy accept; }
}
";
/// The container: says it exists, waits, configures its side of the
/// network with `ip` ($1 its interface, $2 its address, $3 the gateway,
/// $4 the ip binary), says so, waits, then execs the command.
const CONTAINER: &str = r#"echo ready; read _ || exit 1
"$4" link set lo up && "$4" link set "$1" up && "$4" addr add "$2" dev "$1" && "$4" route add default via "$3" || exit 1
echo configured; read _ || exit 1
exec /bin/true"#;

/// How the naive approach publishes ports.
#[derive(Debug, Clone)]
enum Rules {
    Iptables(PathBuf),
    Nft(PathBuf),
}

/// The tools the naive approach needs, found.
#[derive(Debug, Clone)]
pub struct Tools {
    ip: PathBuf,
    unshare: PathBuf,
    sh: PathBuf,
    /// None when no port is published.
    rules: Option<Rules>,
}

impl Tools {
    /// Err: which tool is missing, for the report.
    pub fn find(publish: bool) -> Result<Tools, String> {
        let need = |name: &str, package: &str| {
            find_program(name).ok_or_else(|| format!("`{name}` ({package}) is not installed"))
        };
        let ip = need("ip", "iproute2")?;
        let unshare = need("unshare", "util-linux")?;
        let sh = need("sh", "a POSIX shell")?;
        let rules = if publish {
            let rules = find_program("iptables")
                .map(Rules::Iptables)
                .or_else(|| find_program("nft").map(Rules::Nft))
                .ok_or("neither `iptables` nor `nft` (nftables) is installed")?;
            Some(rules)
        } else {
            None
        };
        Ok(Tools {
            ip,
            unshare,
            sh,
            rules,
        })
    }
}

/// The naive approach, set up in the bench's host.
pub struct Naive {
    tools: Tools,
    /// Numbers the veth pairs: a container's pair may outlive it for a
    /// while (the kernel removes it with the namespace, asynchronously), so
    /// names are never reused, not even by a warm-up's index.
    next_pair: std::sync::atomic::AtomicUsize,
}

/// One rule the naive approach added, and how to delete it.
struct Added {
    delete: Vec<String>,
}

impl Naive {
    /// Its bridge with the gateway address, and with nft its table (not
    /// timed: the supervisor's bridge and tables are not timed either).
    pub fn setup(tools: Tools) -> Result<Naive, Error> {
        let ip = &tools.ip;
        let setup = |program: &Path, args: &[&str]| run(program, args).map_err(Error::Baseline);
        setup(ip, &["link", "add", BRIDGE, "type", "bridge"])?;
        setup(
            ip,
            &["addr", "add", &format!("{GATEWAY}/{PREFIX}"), "dev", BRIDGE],
        )?;
        setup(ip, &["link", "set", BRIDGE, "up"])?;
        if let Some(Rules::Nft(nft)) = &tools.rules {
            run_with_input(nft, &["-f", "-"], NFT_TABLE).map_err(Error::Baseline)?;
        }
        Ok(Naive {
            tools,
            next_pair: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// What it runs, for the report: "ip + nft".
    pub fn tools(&self) -> &'static str {
        match self.tools.rules {
            Some(Rules::Iptables(_)) => "ip + iptables",
            Some(Rules::Nft(_)) => "ip + nft",
            None => "ip",
        }
    }

    fn address(index: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(GATEWAY) + 1 + (index % 65_000) as u32)
    }

    /// Runs container `index` the naive way, to the end of its teardown.
    pub fn run_one(&self, index: usize, publish: bool) -> Result<Sample, String> {
        let Tools {
            ip, unshare, sh, ..
        } = &self.tools;
        let pair = self
            .next_pair
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let host_if = format!("nv{pair}");
        let peer = format!("nv{pair}c");
        let address = Self::address(index);
        let mut phases = Vec::new();
        let start = Instant::now();
        let mut child = Command::new(unshare)
            .args([
                "--net",
                "--pid",
                "--fork",
                "--uts",
                "--ipc",
                "--mount",
                "--mount-proc",
                "--",
            ])
            .arg(sh)
            .args(["-c", CONTAINER, "sh", &peer])
            .arg(format!("{address}/{PREFIX}"))
            .arg(GATEWAY.to_string())
            .arg(ip)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting unshare: {e}"))?;
        let pid = child.id().to_string();
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("unshare without pipes".into());
        };
        let mut stdout = BufReader::new(stdout);
        let mut stderr = child.stderr.take();
        let mut expect = |what: &str| -> Result<(), String> {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            if line.trim() == what {
                return Ok(());
            }
            let mut err = String::new();
            if let Some(stderr) = stderr.as_mut() {
                let _ = stderr.read_to_string(&mut err);
            }
            Err(format!(
                "the container did not say {what:?}: {}",
                err.trim()
            ))
        };
        expect("ready")?;
        let mut t = mark(&mut phases, "unshare", start);

        let network = t;
        run(
            ip,
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &peer,
            ],
        )?;
        run(ip, &["link", "set", &host_if, "master", BRIDGE])?;
        run(ip, &["link", "set", &host_if, "up"])?;
        run(ip, &["link", "set", &peer, "netns", &pid])?;
        t = mark(&mut phases, "host links", t);

        stdin
            .write_all(b"\n")
            .map_err(|e| format!("releasing the container's setup: {e}"))?;
        expect("configured")?;
        t = mark(&mut phases, "container links", t);

        let mut added = Vec::new();
        if let (true, Some(rules)) = (publish, &self.tools.rules) {
            let port = super::Supervisor::host_port(index);
            added = add_rules(rules, port, address)?;
            t = mark(&mut phases, "port rules", t);
        }
        phases.push(("network ready".to_string(), t - network));

        stdin
            .write_all(b"\n")
            .map_err(|e| format!("releasing the container: {e}"))?;
        drop(stdin);
        // Measured to the release: the exec that follows is not counted.
        let until_exec = start.elapsed();
        let status = child.wait().map_err(|e| format!("waiting: {e}"))?;
        if !status.success() {
            return Err(format!("the container exited {status}"));
        }
        t = mark(&mut phases, "release to exit", t);

        if let Some(rules) = &self.tools.rules {
            let program = rules.program();
            for rule in &added {
                run(program, &strs(&rule.delete))?;
            }
        }
        mark(&mut phases, "teardown", t);
        phases.push((super::UNTIL_EXEC.to_string(), until_exec));
        Ok(Sample {
            container: index,
            end_to_end: start.elapsed(),
            phases,
            max_rss_kib: None,
        })
    }
}

impl Rules {
    fn program(&self) -> &Path {
        match self {
            Rules::Iptables(p) | Rules::Nft(p) => p,
        }
    }
}

/// The seed's three rules for one port, one command each.
fn add_rules(rules: &Rules, port: u16, address: Ipv4Addr) -> Result<Vec<Added>, String> {
    match rules {
        Rules::Iptables(iptables) => iptables_rules(port, address)
            .into_iter()
            .map(|(add, delete)| {
                run(iptables, &strs(&add))?;
                Ok(Added { delete })
            })
            .collect(),
        Rules::Nft(nft) => nft_rules(port, address)
            .into_iter()
            .map(|(chain, rule)| {
                let echo = run(
                    nft,
                    &["-e", "-a", "add", "rule", "ip", "naive", chain, &rule],
                )?;
                let handle = echo
                    .rsplit_once("# handle ")
                    .map(|(_, h)| h.trim().to_string())
                    .ok_or_else(|| format!("nft printed no rule handle: {echo:?}"))?;
                let delete = ["delete", "rule", "ip", "naive", chain, "handle", &handle];
                Ok(Added {
                    delete: delete.iter().map(|s| s.to_string()).collect(),
                })
            })
            .collect(),
    }
}

/// The seed's iptables commands for one port: (add, delete) arguments.
fn iptables_rules(port: u16, address: Ipv4Addr) -> Vec<(Vec<String>, Vec<String>)> {
    let to = format!("{address}:8000");
    let dnat = format!("-p tcp --dport {port} -j DNAT --to-destination {to}");
    let accept = format!("-p tcp -d {address} --dport 8000 -j ACCEPT");
    [
        ("-t nat -I PREROUTING 1", "-t nat -D PREROUTING", &dnat),
        ("-t nat -A OUTPUT", "-t nat -D OUTPUT", &dnat),
        ("-A FORWARD", "-D FORWARD", &accept),
    ]
    .into_iter()
    .map(|(add, delete, spec)| {
        (
            words(&format!("{add} {spec}")),
            words(&format!("{delete} {spec}")),
        )
    })
    .collect()
}

/// The same three rules in nft syntax: (chain of table `ip naive`, rule).
fn nft_rules(port: u16, address: Ipv4Addr) -> Vec<(&'static str, String)> {
    let dnat = format!("tcp dport {port} dnat to {address}:8000");
    vec![
        ("prerouting", dnat.clone()),
        ("output", dnat),
        (
            "forward",
            format!("ip daddr {address} tcp dport 8000 accept"),
        ),
    ]
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Records the phase `name` as ending now; returns now.
fn mark(phases: &mut Vec<(String, std::time::Duration)>, name: &str, since: Instant) -> Instant {
    let now = Instant::now();
    phases.push((name.to_string(), now - since));
    now
}

/// Runs one command; its stdout, or what it said on failure.
fn run(program: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("starting {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {}: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_with_input(program: &Path, args: &[&str], input: &str) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", program.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("{}: {e}", program.display()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {}: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_addresses_stay_in_their_subnet_and_skip_the_gateway() {
        assert_eq!(Naive::address(0), Ipv4Addr::new(172, 18, 0, 2));
        assert_eq!(Naive::address(300), Ipv4Addr::new(172, 18, 1, 46));
        assert!(u32::from(Naive::address(64_999)) < u32::from(Ipv4Addr::new(172, 19, 0, 0)));
    }

    #[test]
    fn the_seeds_three_rules_per_port_and_their_deletion() {
        let a = Ipv4Addr::new(172, 18, 0, 2);
        let rules = iptables_rules(10_000, a);
        assert_eq!(
            rules[0].0.join(" "),
            "-t nat -I PREROUTING 1 -p tcp --dport 10000 -j DNAT --to-destination 172.18.0.2:8000"
        );
        assert_eq!(
            rules[0].1.join(" "),
            "-t nat -D PREROUTING -p tcp --dport 10000 -j DNAT --to-destination 172.18.0.2:8000"
        );
        assert_eq!(rules[1].1[..4].join(" "), "-t nat -D OUTPUT");
        assert_eq!(
            rules[2].0.join(" "),
            "-A FORWARD -p tcp -d 172.18.0.2 --dport 8000 -j ACCEPT"
        );
        let nft = nft_rules(10_000, a);
        assert_eq!(
            nft[0],
            (
                "prerouting",
                "tcp dport 10000 dnat to 172.18.0.2:8000".into()
            )
        );
        assert_eq!(nft[1].0, "output");
        assert_eq!(
            nft[2],
            (
                "forward",
                "ip daddr 172.18.0.2 tcp dport 8000 accept".into()
            )
        );
    }
}
