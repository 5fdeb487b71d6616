//! Reading a file that must be a regular one without opening anything else
//! on the way: opening is already an effect (a FIFO's writer goes on, a
//! device may act on its open: the watchdog's starts its countdown), and a
//! non-blocking open only spares the opener. So the file is located with
//! `O_PATH`, which opens nothing, its kind checked on that descriptor, and
//! only then opened for reading through `/proc/self/fd`: the very inode
//! checked, whatever was renamed over the path meanwhile.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// `located` (an `O_PATH` descriptor) opened for reading when it is a
/// regular file; anything else refused unopened.
pub fn reopen(located: OwnedFd) -> io::Result<File> {
    let located = File::from(located);
    if !located.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    File::options()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", located.as_raw_fd()))
        // Not NotFound: the file is there, /proc is not.
        .map_err(|e| io::Error::other(format!("reopening through /proc/self/fd: {e}")))
}

/// All of `file` when it holds at most `max` bytes (reading one more to
/// tell); larger is an error saying the limit, so that `/dev/zero` or an
/// endless pipe is not read until the OOM killer ends the reader.
pub fn read_at_most(file: impl Read, max: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(io::Error::other(format!("larger than {} MiB", max >> 20)));
    }
    Ok(bytes)
}
