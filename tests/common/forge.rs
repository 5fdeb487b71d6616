//! What the attack tests share: scripts that forge frames from inside a
//! container (python3 raw sockets, as root with the default capabilities),
//! and switching a guard rule of the bridge table off to show the attack
//! succeeding without it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::HostNs;

/// The python the forging scripts run under.
pub fn python() -> &'static str {
    super::python3("forging frames")
}

/// Writes `text` as a script named after `name` where containers (which
/// see the host's filesystem) can run it; returns its path. A new file at
/// each call: a test writing the same one again (a truncation, then a
/// write) while another test's forger reads it would run a script cut
/// short.
pub fn script(name: &str, text: &str) -> PathBuf {
    static WRITTEN: AtomicUsize = AtomicUsize::new(0);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{}-{}-{name}",
        std::process::id(),
        WRITTEN.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).expect("write a forging script");
    path
}

/// Deletes the rule of the bridge table's prerouting chain containing
/// `text`: the protection switched off.
pub fn delete_guard_rule(ns: &HostNs, text: &str) {
    delete_rule(|script| ns.ok(script), "bridge supervisor prerouting", text);
}

/// Deletes the rule of `chain` (`FAMILY TABLE CHAIN`) containing `text`,
/// through `sh` (a shell in the host's namespace, returning its output).
pub fn delete_rule(sh: impl Fn(&str) -> String, chain: &str, text: &str) {
    let listing = sh(&format!("nft -a list chain {chain}"));
    let handle = listing
        .lines()
        .find(|l| l.contains(text))
        .and_then(|l| l.rsplit_once("# handle "))
        .map(|(_, h)| h.trim().to_string())
        .unwrap_or_else(|| panic!("no rule with {text:?}: {listing}"));
    sh(&format!("nft delete rule {chain} handle {handle}"));
}
