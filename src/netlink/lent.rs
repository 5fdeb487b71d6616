//! A CNI ADD's lend of its engine namespace's IPv6 defaults (see
//! `prepared`), made exclusive, and written down before it is made.
//!
//! Exclusive: an `flock` on the namespace itself (its nsfs inode, through
//! a duplicate of the descriptor the engine's path opened), which every
//! opener of that namespace shares whatever its state directory. Two
//! plugins of different state directories (`cni.lock` is per directory)
//! lending at once would each give back what the other lent: the last to
//! give back leaves, say, `default.disable_ipv6=1` behind.
//!
//! Written down: `/run/supervisor-lent/COOKIE` (the namespace's cookie,
//! `SO_NETNS_COOKIE`, never reused, unlike an inode number), one `NAME
//! VALUE` line per default it held, made before the first is changed and
//! removed once each is back, under the lock. A lender killed between
//! leaves it; the next lender in that namespace, holding the lock its
//! holder's death freed, puts those values back first; so does a DEL or
//! CHECK in that namespace ([`repair`]), for one whose ADDs are over.
//!
//! A record whose namespace went before any of those stays (a few bytes
//! on /run, until reboot), and `gc` leaves it too: nothing cheap and
//! certain tells from a cookie that its namespace is gone. One can outlive
//! every path to it (a socket holds it), and an nsfs file handle, whose id
//! is the cookie on 6.18, did not open even a live namespace there
//! (ESTALE). Meanwhile each DEL and CHECK pays for the cookie's lookup.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::Error;
use super::sysctl::{Previous, Setting};

/// Where lends are written down: shared by every state directory, as the
/// namespaces are.
pub const DIR: &str = "/run/supervisor-lent";

/// The lock of one engine namespace's defaults, held by its lender.
#[derive(Debug)]
pub(crate) struct Lock {
    _flock: Flock<OwnedFd>,
    record: PathBuf,
}

impl Lock {
    /// Takes the lock of `netns` (the calling thread's namespace, whose
    /// cookie is `cookie`), waiting for another lender's give-back, and
    /// puts back what a lender that died there had written down, through
    /// the procfs instance `proc`.
    pub(crate) fn take(
        dir: &Path,
        netns: BorrowedFd<'_>,
        cookie: u64,
        proc: Option<BorrowedFd<'_>>,
    ) -> Result<Lock, Error> {
        let fd = netns.try_clone_to_owned().map_err(Error::LendLock)?;
        let flock = Flock::lock(fd, FlockArg::LockExclusive)
            .map_err(|(_, errno)| Error::LendLock(errno.into()))?;
        let lock = Lock {
            _flock: flock,
            record: dir.join(cookie.to_string()),
        };
        lock.put_back_left(proc)?;
        Ok(lock)
    }

    /// Writes down what `held` held, before any is lent.
    pub(crate) fn write_down(&self, held: &[(&Setting, Previous)]) -> Result<(), Error> {
        let mut text = String::new();
        for (setting, previous) in held {
            text.push_str(&format!("{} {}\n", setting.name(), previous.value()));
        }
        let record_error = |source| Error::LentRecord {
            path: self.record.clone(),
            source,
        };
        let create = || {
            File::options()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&self.record)
        };
        let mut file = match create() {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = self.record.parent() {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(record_error)?;
                }
                create()
            }
            created => created,
        }
        .map_err(record_error)?;
        file.write_all(text.as_bytes()).map_err(record_error)
    }

    /// Every default is back: the record goes, then the lock.
    pub(crate) fn done(self) -> Result<(), Error> {
        self.remove_record()
    }

    fn remove_record(&self) -> Result<(), Error> {
        match fs::remove_file(&self.record) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(Error::LentRecord {
                path: self.record.clone(),
                source: err,
            }),
            _ => Ok(()),
        }
    }

    /// Puts back the values a dead lender wrote down, then removes its
    /// record. Only the defaults a lend sets, and only numbers: the record
    /// names no file of its own.
    fn put_back_left(&self, proc: Option<BorrowedFd<'_>>) -> Result<(), Error> {
        let text = match crate::state::file::read_regular(&self.record) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            read => read.map_err(|source| Error::LentRecord {
                path: self.record.clone(),
                source,
            })?,
        };
        let lendable = Setting::container_ipv6("default");
        for line in String::from_utf8_lossy(&text).lines() {
            let Some((name, value)) = line.split_once(' ') else {
                continue;
            };
            let number = !value.is_empty()
                && value.len() <= 20
                && value
                    .trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit());
            let Some(setting) = lendable.iter().find(|s| s.name() == name) else {
                continue;
            };
            if number {
                setting.recorded_under(proc, value.to_string())?.restore()?;
                tracing::info!(
                    sysctl = %setting.key,
                    value,
                    "put back what a killed lender left"
                );
            }
        }
        self.remove_record()
    }
}

/// Puts back what a lender killed in a namespace (not the caller's) wrote
/// down under `dir`, as the next lender there would: for a DEL or CHECK.
/// The namespace is opened by `open` (None: nothing to repair) only when
/// `dir` holds a record. True when it had one. With nothing written down
/// anywhere, the usual case, it costs one open of `dir` (a few µs); with a
/// record of any namespace, the cookie's too (a setns and a socket).
pub fn repair(dir: &Path, open: impl FnOnce() -> Option<OwnedFd>) -> Result<bool, Error> {
    if !any_record(dir) {
        return Ok(false);
    }
    let Some(netns) = open() else {
        return Ok(false);
    };
    let netns = netns.as_fd();
    super::netns::within(netns, || {
        let socket = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|errno| Error::LendLock(errno.into()))?;
        let cookie = crate::netns_cookie::of_socket(socket.as_fd()).map_err(Error::LendLock)?;
        if fs::symlink_metadata(dir.join(cookie.to_string())).is_err() {
            return Ok(false);
        }
        // Under the lock: a live lender's record goes before it is freed.
        super::sysctl::with_private_proc(|proc| Lock::take(dir, netns, cookie, proc)?.done())?;
        Ok(true)
    })
    .map_err(Error::EnterNetns)?
}

/// Whether `dir` holds any record (a lend under way, or one left).
fn any_record(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}
