//! The suite's own pid namespace (scripts/test) has an init that reaps:
//! every test's orphans (holders, sleeps, daemons whose parent died first)
//! are reparented to it, and hundreds of zombies piled up when cargo, which
//! reaps none, was that init.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn an_orphan_of_a_test_is_reaped_once_it_exits() {
    if !common::privileged("an_orphan_of_a_test_is_reaped_once_it_exits") {
        return;
    }
    let out = Command::new("sh")
        .args(["-c", "sleep 0.1 & echo $!"])
        .output()
        .expect("sh runs");
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("sh prints the orphan's pid");
    let init = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Some(state) = common::process_state(pid) {
        assert!(
            Instant::now() < deadline,
            "the orphan {pid} is still there ({state}) 5 s on: pid 1 of this namespace, \
             {}, does not reap (run the suite through scripts/test)",
            init.trim()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
