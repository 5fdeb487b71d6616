//! What reaches stderr at each log level: warnings by default, not with
//! `--log-level error`, and RUST_LOG over both. `ps` over a state
//! directory holding an unreadable record warns without needing root.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::SUPERVISOR;
const WARNING: &str = "record(s) of dead supervisors or unreadable";

/// A state directory with one unreadable record, removed on drop.
struct StateDir(PathBuf);

impl StateDir {
    fn new(name: &str) -> StateDir {
        let dir = common::unique_temp_path(name);
        std::fs::create_dir_all(dir.join("containers")).unwrap();
        std::fs::write(dir.join("containers/0123456789ab.json"), "not json").unwrap();
        StateDir(dir)
    }

    /// `ps`'s stderr with `args` before it and RUST_LOG as given.
    fn ps_stderr(&self, args: &[&str], rust_log: Option<&str>) -> String {
        let mut cmd = Command::new(SUPERVISOR);
        cmd.args(args).arg("ps").arg("--state-dir").arg(&self.0);
        cmd.env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn warnings_show_by_default_and_not_below_the_level_asked_for() {
    let dir = StateDir::new("levels");
    assert!(dir.ps_stderr(&[], None).contains(WARNING));
    assert!(
        dir.ps_stderr(&["--log-level", "trace"], None)
            .contains(WARNING)
    );
    assert!(dir.ps_stderr(&["--verbose"], None).contains(WARNING));
    assert_eq!(dir.ps_stderr(&["--log-level", "error"], None), "");
}

#[test]
fn a_default_warning_reads_as_the_errors_do_and_verbose_keeps_the_log_format() {
    let dir = StateDir::new("format");
    let plain = dir.ps_stderr(&[], None);
    assert!(
        plain.starts_with("supervisor: warning: ") && plain.contains(WARNING),
        "{plain}"
    );
    let verbose = dir.ps_stderr(&["--verbose"], None);
    let line = verbose.lines().find(|l| l.contains(WARNING)).unwrap();
    assert!(line.contains("Z  WARN "), "{verbose}");
}

#[test]
fn rust_log_wins_over_the_level_asked_for() {
    let dir = StateDir::new("rust-log");
    assert_eq!(dir.ps_stderr(&[], Some("error")), "");
    let err = dir.ps_stderr(&["--log-level", "error"], Some("warn"));
    assert!(err.contains(WARNING), "{err}");
}
