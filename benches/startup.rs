//! Container startup.
//!
//! - `startup/*`: the whole `supervisor run … -- /bin/true` process with
//!   `--network none`, with the bridge, and with the bridge and one
//!   published port, against `unshare -n -p -f -u -i -m true` (the same
//!   namespaces, no supervision) in the same run. Bridge runs are timed
//!   alone (after a pause for the kernel to remove the last container's
//!   namespace), and `-p` also back to back.
//! - `phases/*`: the spawn phases through the library: clone3 until the
//!   child waits on its pipe, and release until it has exec'd.
//! - After criterion, the phases `run -v` logs (p50/p90 over many runs),
//!   for the bridge with and without a published port, and with one back
//!   to back.
//!
//! The process first moves into a throwaway network and mount namespace
//! with a private /run (`src/bench/sandbox.rs`), so nothing reaches
//! the machine's own. Without root it says so and exits.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::Criterion;
use stats::Summary;
use supervisor::spawn::{Container, SpawnConfig};

// The harness is part of the binary, not the library (src/bench/mod.rs):
// these benches include the files they share with it by path.
// Only part of it is used here, and its unit tests run with the binary.
#[allow(dead_code, unused_imports)]
#[path = "../src/bench/phases.rs"]
mod phases;
#[path = "../src/bench/sandbox.rs"]
mod sandbox;
// Only part of it is used here, and its unit tests run with the binary.
#[allow(dead_code, unused_imports)]
#[path = "../src/bench/stats.rs"]
mod stats;

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_supervisor");

fn status_ok(cmd: &mut Command) {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success(), "{cmd:?} failed: {status}");
}

fn supervisor_run(args: &[&str]) -> Command {
    let mut cmd = Command::new(SUPERVISOR);
    cmd.arg("run").args(args).args(["--", "/bin/true"]);
    cmd.env_remove("RUST_LOG");
    cmd
}

fn startup(c: &mut Criterion) {
    let mut group = c.benchmark_group("startup");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("unshare -n -p -f -u -i -m true (baseline)", |b| {
        b.iter(|| {
            status_ok(Command::new("unshare").args(["-n", "-p", "-f", "-u", "-i", "-m", "true"]))
        })
    });
    group.bench_function("run --network none -- /bin/true", |b| {
        b.iter(|| status_ok(&mut supervisor_run(&["--network", "none"])))
    });
    // A container's veth goes with its namespace, after it has exited: the
    // kernel deletes it (holding RTNL) while the next one plumbs. Alone:
    // each run starts once the last one's namespace is gone.
    for (name, args) in [
        (
            "run --network bridge -- /bin/true, alone",
            &["--network", "bridge"][..],
        ),
        ("run -p 8080:8000 -- /bin/true, alone", &["-p", "8080:8000"]),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        std::thread::sleep(SETTLE);
                        let t = Instant::now();
                        status_ok(&mut supervisor_run(args));
                        t.elapsed()
                    })
                    .sum()
            })
        });
    }
    group.bench_function("run -p 8080:8000 -- /bin/true, back to back", |b| {
        b.iter(|| status_ok(&mut supervisor_run(&["-p", "8080:8000"])))
    });
    group.finish();
}

/// Long enough here for the kernel to remove a container's namespace.
const SETTLE: Duration = Duration::from_millis(30);

/// clone3 → blocked child, and release → exec, through the library.
fn spawn_phases(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = SpawnConfig {
        hostname: "bench".into(),
        workdir: "/".into(),
        env: vec![("PATH".into(), supervisor::spec::DEFAULT_PATH.into())],
        command: vec!["/bin/true".into()],
        init: false,
        take_terminal: false,
        capabilities: supervisor::spawn::DEFAULT_CAPABILITIES.to_vec(),
        user: None,
        confinement: Default::default(),
        join_network: None,
        cgroup: None,
        cgroup_join: Vec::new(),
    };
    let finish = |mut container: Container| {
        runtime.block_on(async {
            container.release().await.expect("release");
            container.pidfd().wait().await.expect("wait");
        })
    };
    let mut group = c.benchmark_group("phases");
    group.bench_function("clone3 until the child waits", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let t = Instant::now();
                    let container = Container::spawn(&config).expect("clone3");
                    let elapsed = t.elapsed();
                    finish(container);
                    elapsed
                })
                .sum()
        })
    });
    group.bench_function("release until exec", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let mut container = Container::spawn(&config).expect("clone3");
                    let t = Instant::now();
                    runtime.block_on(container.release()).expect("release");
                    let elapsed = t.elapsed();
                    runtime.block_on(container.pidfd().wait()).expect("wait");
                    elapsed
                })
                .sum()
        })
    });
    group.finish();
}

/// The phases `run --verbose` logs, p50/p90 over `runs` runs, each alone
/// or back to back: where the startup time goes. Back to back, a start's
/// batches may meet the last one's netfilter release (see
/// `nftables::CLOSE_TICK`): their p90 shows how often.
fn phase_breakdown(title: &str, args: &[&str], runs: usize, alone: bool) {
    let mut order: Vec<String> = Vec::new();
    let mut samples: Vec<Vec<Duration>> = Vec::new();
    for _ in 0..runs {
        if alone {
            std::thread::sleep(SETTLE);
        }
        let out = Command::new(SUPERVISOR)
            .arg("--verbose")
            .arg("run")
            .args(args)
            .args(["--", "/bin/true"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("spawn");
        assert!(out.status.success(), "run --verbose failed");
        for (name, d) in phases::parse_log(&String::from_utf8_lossy(&out.stderr)) {
            let at = order.iter().position(|n| *n == name).unwrap_or_else(|| {
                order.push(name);
                samples.push(Vec::new());
                order.len() - 1
            });
            samples[at].push(d);
        }
    }
    let how = if alone { "each alone" } else { "back to back" };
    println!("\n{title}, phases from -v over {runs} runs, {how} (p50 / p90):");
    for (name, values) in order.iter().zip(&samples) {
        if let Some(s) = Summary::of(values) {
            println!(
                "  {name:<28} {:>8.1} us {:>8.1} us",
                s.p50.as_secs_f64() * 1e6,
                s.p90.as_secs_f64() * 1e6
            );
        }
    }
}

fn main() {
    if let Err(err) = sandbox::enter() {
        eprintln!("benches/startup: {err}; skipped");
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    startup(&mut c);
    spawn_phases(&mut c);
    c.final_summary();
    let runs = if std::env::args().any(|a| a == "--bench") {
        200
    } else {
        2
    };
    phase_breakdown("run --network bridge -- /bin/true", &[], runs, true);
    let published = ["-p", "8080:8000"];
    phase_breakdown("run -p 8080:8000 -- /bin/true", &published, runs, true);
    phase_breakdown("run -p 8080:8000 -- /bin/true", &published, runs, false);
}
