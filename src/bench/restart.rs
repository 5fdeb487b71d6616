//! `bench --restart-same-port`: a published service restarted on the same
//! port and address, as a client sees it. Each sample stops the running
//! container (SIGTERM to its supervisor, waited for) and starts a new one
//! with the same `-p` and `--ip`, while a client on the host connects to
//! the published port every millisecond, one attempt at a time with a
//! 50 ms timeout. The figure: from starting the new `supervisor run` until
//! a connection is first answered. Attempts that neither connect nor are
//! refused within the timeout are SYNs that went nowhere: counted. Each
//! new run logs with `--verbose`, so a sample also holds that run's
//! phases (what a slow restart waited on). With `--pause`, each service
//! runs that long before it is stopped: a restart alone, with the last
//! one's kernel work done, rather than restarts back to back.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::runner::{Supervisor, log_file, read_log};
use super::{Sample, phases, progress::Progress};

/// The service: listens on 8000 for as long as the container runs and
/// accepts at once.
const SERVICE: [&str; 7] = ["busybox", "httpd", "-f", "-p", "8000", "-h", "/"];
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(50);
const ATTEMPT_EVERY: Duration = Duration::from_millis(1);
/// Gives up on a container that never answers.
const LIMIT: Duration = Duration::from_secs(10);
pub const PHASE: &str = "new run to first answer";
const STOP_PHASE: &str = "stop of the old one";

/// What `count` restarts measured.
pub struct Restarts {
    pub samples: Vec<Sample>,
    /// Attempts that got no answer and no refusal within the timeout.
    pub lost: usize,
    pub attempts: usize,
}

/// Whether a connection attempt was answered, refused, or went nowhere.
enum Outcome {
    Answered,
    Refused,
    Lost,
}

fn attempt(addr: &SocketAddr) -> Outcome {
    match TcpStream::connect_timeout(addr, ATTEMPT_TIMEOUT) {
        Ok(_) => Outcome::Answered,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Outcome::Lost,
        Err(_) => Outcome::Refused,
    }
}

impl Supervisor {
    /// `supervisor --verbose run -p PORT:8000 --ip IP -- busybox httpd …`,
    /// running, and the file its log goes to.
    fn start_service(&self, port: u16, ip: Ipv4Addr) -> Result<(Child, File), String> {
        let log = log_file().map_err(|e| format!("creating a log file: {e}"))?;
        let stderr = log
            .try_clone()
            .map_err(|e| format!("sharing a log file: {e}"))?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--verbose")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--bridge", &self.bridge, "--subnet", &self.subnet, "run"])
            .args(["-p", &format!("{port}:8000"), "--ip", &ip.to_string(), "--"])
            .args(SERVICE)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.exe.display()))?;
        Ok((child, log))
    }
}

/// Stops the service's supervisor (SIGTERM, which it forwards) and waits.
fn stop(mut child: Child) -> Result<(), String> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
        .map_err(|e| format!("stopping the service: {e}"))?;
    child
        .wait()
        .map(drop)
        .map_err(|e| format!("waiting for the service: {e}"))
}

/// Polls `addr` until an attempt is answered; (when the answer came,
/// attempts made, attempts lost).
fn until_answered(addr: &SocketAddr, child: &mut Child) -> Result<(Instant, usize, usize), String> {
    let deadline = Instant::now() + LIMIT;
    let (mut attempts, mut lost) = (0, 0);
    loop {
        let at = Instant::now();
        attempts += 1;
        match attempt(addr) {
            Outcome::Answered => return Ok((Instant::now(), attempts, lost)),
            Outcome::Lost => lost += 1,
            Outcome::Refused => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the service's supervisor exited with {status}"));
        }
        if at > deadline {
            return Err(format!("the service did not answer within {LIMIT:?}"));
        }
        std::thread::sleep(ATTEMPT_EVERY);
    }
}

/// `count` restarts of one service on host port `port`, the client on
/// the host's loopback.
pub fn measure(
    supervisor: &Supervisor,
    count: usize,
    port: u16,
    ip: Ipv4Addr,
    pause: Duration,
    progress: &Progress,
) -> Result<Restarts, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let (mut running, mut log) = supervisor.start_service(port, ip)?;
    until_answered(&addr, &mut running)?;
    let mut samples: Vec<Sample> = Vec::with_capacity(count);
    let (mut lost, mut attempts) = (0, 0);
    progress.draw();
    for container in 0..count {
        std::thread::sleep(pause);
        let stopping = Instant::now();
        stop(running)?;
        add_run_phases(samples.last_mut(), &mut log)?;
        let started = Instant::now();
        (running, log) = supervisor.start_service(port, ip)?;
        let (answered, made, missed) = until_answered(&addr, &mut running)?;
        lost += missed;
        attempts += made;
        let first_answer = answered.saturating_duration_since(started);
        samples.push(Sample {
            container,
            end_to_end: first_answer,
            phases: vec![
                (STOP_PHASE.to_string(), started - stopping),
                (PHASE.to_string(), first_answer),
            ],
            max_rss_kib: None,
        });
        progress.step();
    }
    progress.finish();
    stop(running)?;
    add_run_phases(samples.last_mut(), &mut log)?;
    Ok(Restarts {
        samples,
        lost,
        attempts,
    })
}

/// Adds the phases a stopped run logged to its sample (none for the
/// first run, which has no sample).
fn add_run_phases(sample: Option<&mut Sample>, log: &mut File) -> Result<(), String> {
    let text = read_log(log).map_err(|e| format!("reading a run's log: {e}"))?;
    if let Some(sample) = sample {
        sample.phases.extend(phases::parse_log(&text));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::runner::tests::fake_supervisor;

    /// A service that logs one phase, then listens on `port` until it is
    /// stopped (a listening socket answers without accepting).
    fn fake_service(port: u16) -> Supervisor {
        fake_supervisor(
            "bench-restart",
            &format!(
                "echo '2026-12-07T01:49:31.187067Z DEBUG publish batch: 54 us' >&2\n\
                 exec python3 -c 'import socket, time\n\
                 s = socket.socket()\n\
                 s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                 s.bind((\"127.0.0.1\", {port}))\n\
                 s.listen(64)\n\
                 time.sleep(60)'"
            ),
        )
    }

    /// Runs `f` on a thread of its own in a fresh network namespace with
    /// `lo` up: the suite's namespace has it down. None, loudly, without
    /// root; under CI, a panic.
    fn on_loopback<T: Send + 'static>(
        test: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            assert!(std::env::var_os("CI").is_none(), "{test}: needs root");
            eprintln!("\n!!! SKIPPED {test}: needs root !!!\n");
            return None;
        }
        let thread = std::thread::spawn(move || {
            // SAFETY: unshare affects only this thread's network namespace.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            let up = Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status();
            assert!(up.is_ok_and(|s| s.success()), "lo up");
            f()
        });
        Some(
            thread
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
        )
    }

    /// A port nothing listens on now.
    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn a_restart_sample_holds_the_phases_its_new_run_logged() {
        on_loopback(
            "a_restart_sample_holds_the_phases_its_new_run_logged",
            restart_sample_holds_its_phases,
        );
    }

    fn restart_sample_holds_its_phases() {
        let port = free_port();
        let fake = fake_service(port);
        let progress = Progress::new("test", 2);
        let measured = measure(
            &fake,
            2,
            port,
            Ipv4Addr::LOCALHOST,
            Duration::ZERO,
            &progress,
        );
        std::fs::remove_file(&fake.exe).unwrap();
        let samples = measured.unwrap().samples;
        let publish = ("publish batch".to_string(), Duration::from_micros(54));
        assert_eq!(samples.len(), 2);
        for sample in &samples {
            assert!(sample.phases.contains(&publish), "{:?}", sample.phases);
            assert!(sample.phases.iter().any(|(name, _)| name == PHASE));
        }
    }

    #[test]
    fn with_a_pause_each_service_runs_that_long_before_its_restart() {
        on_loopback(
            "with_a_pause_each_service_runs_that_long_before_its_restart",
            each_service_runs_for_the_pause,
        );
    }

    fn each_service_runs_for_the_pause() {
        let port = free_port();
        let fake = fake_service(port);
        let progress = Progress::new("test", 2);
        let started = Instant::now();
        let measured = measure(
            &fake,
            2,
            port,
            Ipv4Addr::LOCALHOST,
            Duration::from_secs(1),
            &progress,
        );
        let took = started.elapsed();
        std::fs::remove_file(&fake.exe).unwrap();
        assert_eq!(measured.unwrap().samples.len(), 2);
        // Three fake runs take well under two seconds without it.
        assert!(took >= Duration::from_secs(2), "{took:?}");
    }
}
