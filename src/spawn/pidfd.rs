//! A process file descriptor: signal the process and await its exit without
//! pid-reuse races.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use crate::values::Process;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The shell's (and docker's) exit code: the code itself, or 128+n when
    /// killed by signal n.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Exited(code) => code as u8,
            ExitStatus::Signaled(sig) => 128u8.wrapping_add(sig as u8),
        }
    }
}

#[derive(Debug)]
pub struct Pidfd {
    fd: OwnedFd,
}

impl Pidfd {
    pub fn new(fd: OwnedFd) -> Pidfd {
        Pidfd { fd }
    }

    /// Opens a pidfd for `pid` (the caller must have made sure the pid is
    /// the process it means, e.g. by checking its start time afterwards).
    pub fn open(pid: libc::pid_t) -> io::Result<Pidfd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this fd; nobody else owns it.
        Ok(Pidfd::new(unsafe {
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32)
        }))
    }

    /// A pidfd on `process`, or None when it has ended. The pidfd is
    /// opened first and the start time checked after: if the pid was reused
    /// in between, the check sees the newcomer and refuses.
    pub fn of(process: &Process) -> io::Result<Option<Pidfd>> {
        let pid = libc::pid_t::try_from(process.pid).map_err(io::Error::other)?;
        let pidfd = match Pidfd::open(pid) {
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            other => other?,
        };
        Ok(process.is_alive().then_some(pidfd))
    }

    pub fn send_signal(&self, signal: libc::c_int) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// A descriptor of the process's mount namespace (PIDFD_GET_MNT_NAMESPACE,
    /// Linux 6.11): it keeps the namespace, and every mount in it, alive.
    pub fn mount_namespace(&self) -> io::Result<OwnedFd> {
        // _IO(PIDFS_IOCTL_MAGIC, 3) from <linux/pidfd.h>.
        const PIDFD_GET_MNT_NAMESPACE: libc::c_ulong = 0xff03;
        // SAFETY: an ioctl without argument on our pidfd; it returns a new fd.
        let fd = unsafe { libc::ioctl(self.fd.as_raw_fd(), PIDFD_GET_MNT_NAMESPACE as _, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this fd; nobody else owns it.
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    }

    /// Waits until the process exits (the pidfd turns readable), then reaps it.
    pub async fn wait(&self) -> io::Result<ExitStatus> {
        let async_fd = self.registered()?;
        loop {
            let mut guard = async_fd.readable().await?;
            match self.try_reap() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => guard.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until the process has exited, without reaping it: for a
    /// process that is not our child (its pidfd turns readable all the same).
    pub async fn exited(&self) -> io::Result<()> {
        let _ready = self.registered()?.readable().await?;
        Ok(())
    }

    /// The pidfd on the runtime, waiting for readability (the exit).
    fn registered(&self) -> io::Result<AsyncFd<BorrowedFd<'_>>> {
        // SAFETY: the borrowed pidfd stays open and unchanged while the
        // AsyncFd lives: it borrows from self, which owns the fd.
        unsafe { AsyncFd::register_with_interest(self.fd.as_fd(), tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)
    }

    /// waitid(P_PIDFD, WNOHANG): the status if the process has exited.
    /// (Raw rather than nix, whose Signal cannot hold real-time signals.)
    fn try_reap(&self) -> io::Result<Option<ExitStatus>> {
        // SAFETY: a zeroed siginfo_t is valid; waitid fills it for our pidfd.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let ret = libc::waitid(
                libc::P_PIDFD,
                self.fd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            );
            if ret < 0 {
                return Err(io::Error::last_os_error());
            }
            if info.si_pid() == 0 {
                return Ok(None);
            }
            Ok(Some(match info.si_code {
                libc::CLD_EXITED => ExitStatus::Exited(info.si_status()),
                _ => ExitStatus::Signaled(info.si_status()),
            }))
        }
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_opens_only_on_the_very_process_named() {
        let me = Process::current().unwrap();
        assert!(Pidfd::of(&me).unwrap().is_some());
        let reused = Process {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(Pidfd::of(&reused).unwrap().is_none());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let process = Process::of(child.id()).unwrap();
        child.wait().unwrap();
        assert!(Pidfd::of(&process).unwrap().is_none());
    }

    #[test]
    fn exit_codes_follow_docker() {
        assert_eq!(ExitStatus::Exited(7).code(), 7);
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::Signaled(15).code(), 143);
    }
}
