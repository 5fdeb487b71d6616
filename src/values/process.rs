//! One process, named for good: its pid and its start time.
//!
//! A pid alone is reused once its process is reaped; the start time (field
//! 22 of `/proc/PID/stat`, clock ticks after boot) tells the process that
//! wrote a record or lease from a later one that got its pid.

use std::fs;
use std::io;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub start_time: u64,
}

impl Process {
    /// No process: the holder of what a CNI attachment holds (its record,
    /// lease and elements) from ADD until the engine's DEL or GC. Never a
    /// process's identity (pid 0 is none), so it is never dead: nothing of
    /// an attachment is reclaimed as a dead supervisor's.
    pub const UNTIL_RELEASED: Process = Process {
        pid: 0,
        start_time: 0,
    };

    /// Whether this is `UNTIL_RELEASED`, not a process: nothing to signal.
    pub fn is_none(&self) -> bool {
        self.pid == 0
    }

    /// The calling process.
    pub fn current() -> io::Result<Process> {
        Process::of(std::process::id())
    }

    /// Whatever process has `pid` now.
    pub fn of(pid: u32) -> io::Result<Process> {
        Ok(Process {
            pid,
            start_time: stat(pid)?.start_time,
        })
    }

    /// True while this very process runs. A zombie has ended: it only waits
    /// for its parent to reap it. `UNTIL_RELEASED` is alive. When /proc cannot tell for another reason
    /// the answer is yes, so nothing of a live process is ever reclaimed.
    pub fn is_alive(&self) -> bool {
        if self.is_none() {
            return true;
        }
        match stat(self.pid) {
            Ok(stat) => stat.start_time == self.start_time && !matches!(stat.state, 'Z' | 'X'),
            Err(err) => err.kind() != io::ErrorKind::NotFound,
        }
    }
}

/// The fields of `/proc/PID/stat` we use.
struct Stat {
    state: char,
    start_time: u64,
}

fn stat(pid: u32) -> io::Result<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat format"),
        )
    })
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after its last closing parenthesis, which starts field 3.
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(22 - 4)?.parse().ok()?;
    Some(Stat { state, start_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        let stat = parse_stat(text).unwrap();
        assert_eq!((stat.state, stat.start_time), ('S', 98765));
        assert!(parse_stat("42 (x) S 1").is_none());
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = Process::current().unwrap();
        assert!(me.start_time > 0);
        assert!(me.is_alive());
        let reused = Process {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!reused.is_alive());
    }

    #[test]
    fn a_reaped_process_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let process = Process::of(child.id()).unwrap();
        child.wait().unwrap();
        assert!(!process.is_alive());
    }

    #[test]
    fn a_zombie_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let process = Process::of(child.id()).unwrap();
        // Not reaped yet: wait until it has exited and is a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process.is_alive() {
            assert!(std::time::Instant::now() < deadline, "child never exited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().unwrap();
    }
}
