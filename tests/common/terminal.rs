//! A supervisor on a terminal of its own, as a user runs it.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A supervisor started on a fresh pty, in a session of its own with the
/// pty as its controlling terminal, as from a login shell; and the master
/// side, to type on and read from.
pub struct Terminal {
    pub child: Child,
    pub master: std::fs::File,
}

/// A shell command that pushes "id\n" into the input of the terminal on
/// its stdin (TIOCSTI), as a container would to have the user's shell run a
/// command of its choosing once it ends; prints "typing ok" or "typing
/// refused".
pub const TYPE_INTO_THE_TERMINAL: &str = "python3 -c 'import fcntl, termios
for c in b\"id\\n\": fcntl.ioctl(0, termios.TIOCSTI, bytes([c]))' 2>/dev/null \
&& echo 'typing ok' || echo 'typing refused'";

/// Makes `cmd` start in a session of its own whose controlling terminal
/// is the pty slave `slave` (a descriptor the child inherits), as a login
/// shell's job is.
pub fn in_a_session_on(cmd: &mut Command, slave: std::os::fd::RawFd) {
    // SAFETY: setsid and ioctl in the forked child before exec, neither
    // allocating.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl Terminal {
    pub fn start(mut cmd: Command) -> Terminal {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave = std::os::fd::AsRawFd::as_raw_fd(&pty.slave);
        cmd.stdin(pty.slave.try_clone().unwrap())
            .stdout(pty.slave.try_clone().unwrap())
            .stderr(pty.slave.try_clone().unwrap());
        in_a_session_on(&mut cmd, slave);
        let child = cmd.spawn().expect("spawn on a pty");
        drop(pty.slave);
        Terminal {
            child,
            master: std::fs::File::from(pty.master),
        }
    }

    pub fn type_in(&mut self, keys: &[u8]) {
        use std::io::Write;
        self.master.write_all(keys).expect("write to the pty");
    }

    /// Reads the terminal until `needle` appears; fails after 10 s.
    pub fn expect(&mut self, needle: &str) {
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} on the terminal; saw {seen:?}"
            );
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&self.master),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 200) } <= 0 {
                continue;
            }
            let n = self.master.read(&mut buf).expect("read pty");
            assert!(n > 0, "pty closed before {needle:?}; saw {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// Everything the terminal showed, once the supervisor has ended and
    /// with it the terminal's last user (the master then reads EIO).
    pub fn output_at_the_end(&mut self) -> String {
        let _ = self.child.wait();
        let mut seen = Vec::new();
        let _ = self.master.read_to_end(&mut seen);
        String::from_utf8_lossy(&seen).into_owned()
    }

    /// The terminal's foreground process group, as the host sees it.
    pub fn foreground(&self) -> i32 {
        // SAFETY: TIOCGPGRP on the master we own fills a stack integer.
        unsafe { libc::tcgetpgrp(std::os::fd::AsRawFd::as_raw_fd(&self.master)) }
    }
}

impl Drop for Terminal {
    /// A failed test must not leave its supervisor behind on a dead pty.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
