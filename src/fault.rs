//! A hidden hook for fault tests. With `SUPERVISOR_TEST_PAUSE_AT=PHASE` in
//! its environment, the supervisor stops itself (SIGSTOP) on reaching PHASE,
//! so a test can kill it right there with SIGKILL: a crash at a chosen
//! point, without timing. Phases, in lifecycle order:
//!
//! - `registered`: the record is written, nothing else exists yet;
//! - `leased`: the address is leased and the container cloned, not plumbed;
//! - `linked`: the veth pair exists, no port is published yet;
//! - `published`: the firewall batch is in, the record does not list it yet;
//! - `recorded`: the record is complete, the container not released;
//! - `running`: the container runs its command;
//! - `exited`: the container has exited, nothing is torn down yet;
//! - `released`: elements and lease are given back, the record not yet
//!   removed.
//!
//! Unset, each phase costs one environment lookup.

pub const PAUSE_AT: &str = "SUPERVISOR_TEST_PAUSE_AT";

/// Stops the process here when the test hook names `phase`.
pub fn pause_at(phase: &str) {
    if std::env::var_os(PAUSE_AT).is_some_and(|v| v == phase) {
        tracing::debug!(phase, "stopping for a fault test");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
}
