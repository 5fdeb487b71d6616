//! `bench --restart-same-port`: a published service restarted on the same
//! port and address, as a client sees it. Each sample stops the running
//! container (SIGTERM to its supervisor, waited for) and starts a new one
//! with the same `-p` and `--ip`, while a client on the host connects to
//! the published port every millisecond, one attempt at a time with a
//! 50 ms timeout. The figure: from starting the new `supervisor run` until
//! a connection is first answered. Attempts that neither connect nor are
//! refused within the timeout are SYNs that went nowhere: counted.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::runner::Supervisor;
use super::{Sample, progress::Progress};

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
    /// `supervisor run -p PORT:8000 --ip IP -- busybox httpd …`, running.
    fn start_service(&self, port: u16, ip: Ipv4Addr) -> Result<Child, String> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--bridge", &self.bridge, "--subnet", &self.subnet, "run"])
            .args(["-p", &format!("{port}:8000"), "--ip", &ip.to_string(), "--"])
            .args(SERVICE)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn()
            .map_err(|e| format!("starting {}: {e}", self.exe.display()))
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
    progress: &Progress,
) -> Result<Restarts, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut running = supervisor.start_service(port, ip)?;
    until_answered(&addr, &mut running)?;
    let mut samples = Vec::with_capacity(count);
    let (mut lost, mut attempts) = (0, 0);
    progress.draw();
    for container in 0..count {
        let stopping = Instant::now();
        stop(running)?;
        let started = Instant::now();
        running = supervisor.start_service(port, ip)?;
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
    Ok(Restarts {
        samples,
        lost,
        attempts,
    })
}
