//! Whole-process container startup: `supervisor run -- /bin/true` against
//! `unshare -n -p -f -u -i -m true` (the same namespaces, no supervision)
//! in one run. The bench moves itself into a throwaway network and mount
//! namespace first, so nothing it does reaches the machine's own.

use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::Criterion;

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_supervisor");

fn status_ok(cmd: &mut Command) {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success(), "{cmd:?} failed: {status}");
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
        b.iter(|| {
            status_ok(Command::new(SUPERVISOR).args([
                "run",
                "--network",
                "none",
                "--",
                "/bin/true",
            ]))
        })
    });
    group.bench_function("run --network bridge -- /bin/true", |b| {
        b.iter(|| {
            status_ok(Command::new(SUPERVISOR).args([
                "run",
                "--network",
                "bridge",
                "--",
                "/bin/true",
            ]))
        })
    });
    group.finish();
}

/// The phases `run -v` logs, medians over `runs` bridge runs: where the
/// startup time goes.
fn phase_breakdown(runs: usize) {
    let phases = [
        "clone3",
        "network prepared, clone3",
        "plumb",
        "release to exec",
        "startup",
    ];
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); phases.len()];
    for _ in 0..runs {
        let out = Command::new(SUPERVISOR)
            .args(["-v", "run", "--", "/bin/true"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("spawn");
        assert!(out.status.success(), "run -v failed");
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            for (i, phase) in phases.iter().enumerate() {
                if let Some(us) = phase_us(line, phase) {
                    samples[i].push(us);
                }
            }
        }
    }
    println!(
        "
run --network bridge -- /bin/true, phases from -v, median of {runs} runs:"
    );
    for (phase, mut values) in phases.iter().zip(samples) {
        values.sort_unstable();
        if let Some(median) = values.get(values.len() / 2) {
            println!("  {phase:<28} {median:>6} us");
        }
    }
}

/// The microseconds of `phase` in a `-v` log line ("... DEBUG clone3: 712 us").
fn phase_us(line: &str, phase: &str) -> Option<u64> {
    let rest = line.split_once(" DEBUG ")?.1.strip_prefix(phase)?;
    rest.strip_prefix(": ")?.split(' ').next()?.parse().ok()
}

/// A private network + mount namespace for the whole bench process, with a
/// private /run so no state directory of the machine is touched.
fn enter_throwaway_host() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("benches/startup: needs root (it creates namespaces); skipping");
        return false;
    }
    // SAFETY: called first thing in main, while the process is single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS) } != 0 {
        panic!("unshare: {}", std::io::Error::last_os_error());
    }
    let ok = Command::new("sh")
        .args([
            "-c",
            "mount --make-rprivate / && mount -t tmpfs tmpfs /run && ip link set lo up",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "could not set up the throwaway host");
    true
}

fn main() {
    if !enter_throwaway_host() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    startup(&mut c);
    c.final_summary();
    let bench_mode = std::env::args().any(|a| a == "--bench");
    phase_breakdown(if bench_mode { 200 } else { 2 });
}
