//! The lifecycle's milestones, in one place: how long each phase took, and
//! where a fault test may stop it. The lifecycle wraps a step in [`timed`]
//! (or [`timed_async`]) and marks a point with [`pause_at`]; how either is
//! reported is decided here.
//!
//! Timings are one debug line each, `NAME: N us`, shown by `run -v`; the
//! bench (`bench::phases`) reads a run's phases from that log, so what it
//! times is exactly what a user runs.
//!
//! Fault points: with `SUPERVISOR_TEST_PAUSE_AT=POINT` in its environment,
//! the supervisor stops itself (SIGSTOP) on reaching POINT, so a test can
//! kill it right there with SIGKILL: a crash at a chosen point, without
//! timing. Points, in lifecycle order:
//!
//! - `registered`: the record is written, nothing else exists yet;
//! - `leased`: the address is leased and the container cloned, not plumbed;
//! - `linked`: the veth pair exists, no port is published yet;
//! - `published`: the firewall batch is in, the record does not list it yet;
//! - `recorded`: the record is complete, the container not released;
//! - `running`: the container runs its command;
//! - `exited`: the container has exited, nothing is torn down yet;
//! - `unlived`: its ports and generation are unpublished and the
//!   generation is no longer live, its address and anti-spoofing elements
//!   not yet given back;
//! - `released`: elements and lease are given back, the record not yet
//!   removed;
//! - `log ending` (`run -d`): the container has ended, its log's pump
//!   not yet told to write the last of its output.
//!
//! In `gc` (or a run giving back a dead supervisor's remains): `unlinked`,
//! a dead container's veth is deleted, its lease not yet given back. The
//! same point in the work a CNI DEL leaves for after its answer (see
//! `cni::forget`), before its connections are forgotten.
//!
//! And while a container's root is prepared, before the network: `mount-point`,
//! a missing mount point in a `--rootfs` is found missing, not yet made
//! (where another process could swap what holds it for a symbolic link).
//! And in the container's child, which cannot stop itself (SIGSTOP is
//! lost on the PID 1 of a namespace) nor read the environment: with
//! `SUPERVISOR_TEST_PAUSE_AT=POINT:FIFO`, it opens FIFO and reads it to its
//! end, so a test holds it there by opening the FIFO for writing (which
//! returns once the child is there) and lets it go by closing it. Points:
//! `root-bound`, a `--rootfs` is bound onto itself, nothing mounted in it
//! yet; `proc-mounted`, the fresh proc is mounted, not yet protected;
//! `dev-mounted`, /dev's tmpfs is mounted, nothing made in it yet;
//! `sys-mounted`, the fresh sysfs is mounted, not yet masked;
//! `root-entered`, the child is in the `--rootfs` (pivot_root done, its
//! proc and sysfs checked to be there), /proc and /sys not yet protected.
//!
//! And in a CNI ADD: `lent`, the engine namespace's IPv6 defaults are lent
//! (see `netlink::lent`), its interface not yet made.
//!
//! Unset, each point costs one environment lookup.

use std::future::Future;
use std::time::Instant;

pub const PAUSE_AT: &str = "SUPERVISOR_TEST_PAUSE_AT";

/// Logs phase `name` as having run since `since`.
pub fn phase(name: &str, since: Instant) {
    tracing::debug!("{name}: {} us", since.elapsed().as_micros());
}

/// Runs `step`, logged as phase `name`.
pub fn timed<T>(name: &str, step: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let value = step();
    phase(name, t);
    value
}

/// Awaits `step`, logged as phase `name`.
pub async fn timed_async<T>(name: &str, step: impl Future<Output = T>) -> T {
    let t = Instant::now();
    let value = step.await;
    phase(name, t);
    value
}

/// The FIFO the container's child waits on at `point`, when the test hook
/// names it (`POINT:FIFO`).
pub fn child_pause_at(point: &str) -> Option<std::path::PathBuf> {
    let hook = std::env::var_os(PAUSE_AT)?;
    let hook = hook.to_str()?;
    let (at, fifo) = hook.split_once(':')?;
    (at == point).then(|| fifo.into())
}

/// Stops the process here when the test hook names `point`.
pub fn pause_at(point: &str) {
    if std::env::var_os(PAUSE_AT).is_some_and(|v| v == point) {
        tracing::debug!(phase = point, "stopping for a fault test");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What `run -v` would print, for the duration of `work`.
    fn logged(work: impl FnOnce()) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_target(false)
            .with_writer(move || Writer(writer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, work);
        let bytes = buffer.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Writer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Writer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The `… DEBUG NAME: N us` line the bench's parser reads.
    fn is_phase_line(line: &str, name: &str) -> bool {
        line.split_once(" DEBUG ")
            .and_then(|(_, message)| message.strip_prefix(&format!("{name}: ")))
            .and_then(|rest| rest.strip_suffix(" us"))
            .is_some_and(|micros| micros.parse::<u64>().is_ok())
    }

    #[test]
    fn a_timed_step_returns_its_value_and_logs_one_phase_line() {
        let mut value = 0;
        let log = logged(|| value = timed("etc files", || 7));
        assert_eq!(value, 7);
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(is_phase_line(lines[0], "etc files"), "{log}");
    }

    #[test]
    fn an_awaited_step_is_logged_once_it_is_done() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let log = logged(|| {
            let value = runtime.block_on(timed_async("record", async { "done" }));
            assert_eq!(value, "done");
        });
        assert!(is_phase_line(log.trim_end(), "record"), "{log}");
    }
}
