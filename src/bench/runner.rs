//! Running containers as a user does: one `supervisor -v run … -- /bin/true`
//! process per container, C at a time. Each gives its end-to-end time (from
//! spawning the process to reaping it), and from its `-v` log its phases
//! and its peak RSS. The peak comes from the supervisor itself (VmHWM):
//! the rusage wait4 returns carries over the high-water mark of the process
//! that forked it, i.e. this bench's.
//!
//! The log goes to an anonymous in-memory file (a memfd), read once the
//! run has ended. Read from a pipe as it is written, each of its ~25 lines
//! would wake the bench, which on a 2-core machine often preempts the
//! supervisor itself (30-60 µs each): the bench would inflate the figures
//! it takes from the log's timestamps, by a cost no user pays.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::progress::Progress;
use super::{Error, Sample, UNTIL_EXEC, phases};

/// More would only measure the scheduler; the subnet has room for it.
pub const MAX_CONCURRENCY: usize = 1000;
/// Container `i` publishes host port `PORT_BASE + i % PORT_SPAN` (to 8000):
/// distinct among any `MAX_CONCURRENCY` running at once, and clear of the
/// ports `scale` pre-publishes.
const PORT_BASE: usize = 10_000;
const PORT_SPAN: usize = 20_000;

/// How to run a container with the supervisor.
#[derive(Debug, Clone)]
pub struct Supervisor {
    pub exe: PathBuf,
    pub state_dir: PathBuf,
    pub bridge: String,
    pub subnet: String,
    pub publish: bool,
    /// Dual stack (`--ipv6`), with this `--loopback6-cgroup`: never left
    /// to `run`'s default, the cgroup2 root (see `hook_cgroup`).
    pub dual_stack: Option<String>,
}

impl Supervisor {
    /// The host port container `index` publishes.
    pub fn host_port(index: usize) -> u16 {
        (PORT_BASE + index % PORT_SPAN) as u16
    }

    /// `supervisor --verbose … [--ipv6 --loopback6-cgroup CGROUP] run
    /// [-p PORT:8000] -- /bin/true`.
    pub fn command(&self, index: usize) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--verbose")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--bridge", &self.bridge, "--subnet", &self.subnet]);
        if let Some(cgroup) = &self.dual_stack {
            cmd.args(["--ipv6", "--loopback6-cgroup", cgroup]);
        }
        cmd.arg("run");
        if self.publish {
            cmd.args(["-p", &format!("{}:8000", Self::host_port(index))]);
        }
        cmd.args(["--", "/bin/true"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    /// Runs container `index` to its end. Err: what went wrong, with the
    /// end of its log.
    pub fn run_one(&self, index: usize) -> Result<Sample, String> {
        let mut log_file = log_file().map_err(|e| format!("creating its log file: {e}"))?;
        let stderr = log_file
            .try_clone()
            .map_err(|e| format!("sharing its log file: {e}"))?;
        let mut cmd = self.command(index);
        cmd.stderr(stderr);
        let spawned_at = SystemTime::now();
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.exe.display()))?;
        let status = child.wait().map_err(|e| format!("waiting: {e}"))?;
        let end_to_end = start.elapsed();
        let log = read_log(&mut log_file).map_err(|e| format!("reading its log: {e}"))?;
        if !status.success() {
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!("supervisor run {status}: {}", tail.join(" | ")));
        }
        let mut phases = with_network_ready(phases::parse_log(&log));
        // The user's view of startup: from starting `supervisor run` until
        // the container's command runs (the supervisor logs the release
        // right after the exec).
        if let Some(exec) = phases::logged_at(&log, "release to exec") {
            let until = exec.duration_since(spawned_at).unwrap_or_default();
            phases.push((UNTIL_EXEC.to_string(), until));
        }
        Ok(Sample {
            container: index,
            end_to_end,
            phases,
            max_rss_kib: phases::peak_rss_kib(&log),
        })
    }
}

/// An anonymous file in memory: written by the supervisor without waking
/// anyone, gone when the last descriptor closes.
pub fn log_file() -> nix::Result<File> {
    let fd = nix::sys::memfd::memfd_create(c"bench-log", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    Ok(File::from(fd))
}

/// The whole of a log the supervisor wrote through a shared descriptor
/// (whose offset it left at the end).
pub fn read_log(file: &mut File) -> std::io::Result<String> {
    file.rewind()?;
    let mut log = String::new();
    file.read_to_string(&mut log)?;
    Ok(log)
}

/// Adds "network ready" (plumbing and the publish batch: the container's
/// network complete) after "publish batch", when both were logged.
fn with_network_ready(mut phases: Vec<(String, Duration)>) -> Vec<(String, Duration)> {
    let plumb = phases::find(&phases, "plumb");
    let batch = phases.iter().position(|(n, _)| n == "publish batch");
    if let (Some(plumb), Some(at)) = (plumb, batch) {
        let ready = plumb + phases[at].1;
        phases.insert(at + 1, ("network ready".into(), ready));
    }
    phases
}

/// Runs `one` for containers 0..count, `concurrency` at a time, each
/// worker waiting `pause` after each of its containers; stops at the first
/// failure. Returns the samples in container order and the busy time: the
/// longest any worker spent running containers (the wall time, less its
/// pauses).
pub fn measure<F>(
    count: usize,
    concurrency: usize,
    pause: Duration,
    progress: &Progress,
    one: F,
) -> Result<(Vec<Sample>, Duration), Error>
where
    F: Fn(usize) -> Result<Sample, Error> + Sync,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let samples = Mutex::new(Vec::with_capacity(count));
    let first_error = Mutex::new(None);
    let busy = Mutex::new(Vec::new());
    progress.draw();
    std::thread::scope(|scope| {
        for _ in 0..concurrency.clamp(1, count.max(1)) {
            scope.spawn(|| {
                let mut mine = Duration::ZERO;
                while !failed.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    if index >= concurrency {
                        std::thread::sleep(pause);
                    }
                    let start = Instant::now();
                    let result = one(index);
                    mine += start.elapsed();
                    match result {
                        Ok(sample) => {
                            lock(&samples).push(sample);
                            progress.step();
                        }
                        Err(err) => {
                            failed.store(true, Ordering::Relaxed);
                            lock(&first_error).get_or_insert(err);
                        }
                    }
                }
                lock(&busy).push(mine);
            });
        }
    });
    progress.finish();
    if let Some(err) = lock(&first_error).take() {
        return Err(err);
    }
    let busy = lock(&busy).iter().max().copied().unwrap_or_default();
    let mut samples = std::mem::take(&mut *lock(&samples));
    samples.sort_by_key(|s| s.container);
    Ok((samples, busy))
}

/// A poisoned lock only means another worker panicked; its data is whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn network_ready_is_plumbing_plus_the_publish_batch() {
        let phases = vec![
            ("plumb".to_string(), us(900)),
            ("publish batch".to_string(), us(100)),
            ("release to exec".to_string(), us(400)),
        ];
        let with = with_network_ready(phases);
        let names: Vec<&str> = with.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["plumb", "publish batch", "network ready", "release to exec"]
        );
        assert_eq!(with[2].1, us(1000));
        assert_eq!(with_network_ready(vec![]), vec![]);
    }

    #[test]
    fn measure_keeps_container_order_and_stops_at_the_first_failure() {
        let progress = Progress::new("test", 20);
        let sample = |i| Sample {
            container: i,
            end_to_end: us(i as u64),
            phases: vec![],
            max_rss_kib: None,
        };
        let (samples, _) = measure(20, 4, Duration::ZERO, &progress, |i| Ok(sample(i))).unwrap();
        let order: Vec<usize> = samples.iter().map(|s| s.container).collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>());
        let err = measure(20, 3, Duration::ZERO, &progress, |i| {
            if i == 5 {
                Err(Error::Option("boom".into()))
            } else {
                Ok(sample(i))
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("boom"));
    }

    #[test]
    fn pauses_do_not_count_as_busy_time() {
        let progress = Progress::new("test", 3);
        let sample = |i| Sample {
            container: i,
            end_to_end: us(1),
            phases: vec![],
            max_rss_kib: None,
        };
        // Pauses long beside the samples' 1 ms sleeps, which a loaded
        // machine may stretch to several: one pause counted is seen.
        let pause = Duration::from_millis(300);
        let started = Instant::now();
        let (_, busy) = measure(3, 1, pause, &progress, |i| {
            std::thread::sleep(Duration::from_millis(1));
            Ok(sample(i))
        })
        .unwrap();
        assert!(started.elapsed() >= 2 * pause);
        assert!(busy < pause, "{busy:?}");
    }

    /// A stand-in for `supervisor`: a script that ignores its arguments.
    /// Named by time as well as pid: concurrent suite runs, each in a pid
    /// namespace of its own, repeat pids but share /tmp (as the library's
    /// `scratch` says; this crate cannot use it).
    pub(in crate::bench) fn fake_supervisor(name: &str, script: &str) -> Supervisor {
        let nanos = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let exe = std::env::temp_dir().join(format!("{name}-{}-{nanos}", std::process::id()));
        // A child writes the script: a writable descriptor of ours would be
        // inherited by whatever another test thread forks meanwhile, and
        // exec'ing the script while that child lives fails with ETXTBSY.
        let written = std::process::Command::new("sh")
            .args([
                "-c",
                "printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"",
                "sh",
            ])
            .arg(format!("#!/bin/sh\n{script}\n"))
            .arg(&exe)
            .status()
            .unwrap();
        assert!(written.success(), "writing {}", exe.display());
        Supervisor {
            exe,
            state_dir: "/nonexistent".into(),
            bridge: "br".into(),
            subnet: "10.0.0.0/24".into(),
            publish: false,
            dual_stack: None,
        }
    }

    #[test]
    fn a_failed_run_reports_the_end_of_its_log() {
        let fake = fake_supervisor(
            "bench-failing",
            "for i in 1 2 3 4 5 6 7; do echo \"line $i\" >&2; done; exit 3",
        );
        let err = fake.run_one(0).unwrap_err();
        std::fs::remove_file(&fake.exe).unwrap();
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(
            err.ends_with("line 3 | line 4 | line 5 | line 6 | line 7"),
            "{err}"
        );
        assert!(!err.contains("line 2"), "{err}");
    }

    /// Read from a pipe, the log would keep the bench waiting for whatever
    /// still holds the pipe open, having woken it at each line.
    #[test]
    fn the_log_is_read_once_the_run_has_ended_not_as_it_is_written() {
        let fake = fake_supervisor(
            "bench-straggler",
            "echo '2026-11-29T14:29:47.323067Z DEBUG clone3: 792 us' >&2\n\
             sleep 10 &\n\
             echo '2026-11-29T14:29:47.324067Z DEBUG peak rss: 1234 KiB' >&2",
        );
        let started = Instant::now();
        let sample = fake.run_one(0).unwrap();
        let took = started.elapsed();
        std::fs::remove_file(&fake.exe).unwrap();
        // Not the straggler's 10 s; half of it leaves a loaded machine room.
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(sample.phases, vec![("clone3".to_string(), us(792))]);
        assert_eq!(sample.max_rss_kib, Some(1234));
    }

    /// `run`'s default hooks the cgroup2 root: a dual-stack run always
    /// names the bench's own cgroup, before `run` (a global option).
    #[test]
    fn a_dual_stack_run_names_its_hook_cgroup() {
        let mut supervisor = fake_supervisor("bench-args", "true");
        std::fs::remove_file(&supervisor.exe).unwrap();
        supervisor.publish = true;
        let args = |s: &Supervisor| -> Vec<String> {
            s.command(0)
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        assert!(!args(&supervisor).contains(&"--ipv6".to_string()));
        supervisor.dual_stack = Some("/sys/fs/cgroup/bench-own".into());
        let args = args(&supervisor).join(" ");
        assert!(
            args.contains(
                "--ipv6 --loopback6-cgroup /sys/fs/cgroup/bench-own run -p 10000:8000 -- /bin/true"
            ),
            "{args}"
        );
    }

    #[test]
    fn ports_stay_clear_of_the_pre_published_ones() {
        assert_eq!(Supervisor::host_port(0), 10_000);
        assert_eq!(Supervisor::host_port(PORT_SPAN), 10_000);
        assert!(usize::from(Supervisor::host_port(PORT_SPAN - 1)) < super::super::scale::PORT_BASE);
    }
}
