//! TCP relayed with splice(2): bytes go from one socket into a pipe and
//! from the pipe into the other socket inside the kernel, never copied
//! into the proxy. One pipe per direction; a read end of file becomes
//! `shutdown(Write)` on the other side.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::sys::socket::{Shutdown, shutdown};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes a pipe holds: the kernel's default 64 KiB makes a round of two
/// splice calls per 64 KiB; 1 MiB is the unprivileged maximum
/// (fs.pipe-max-size) and the kernel keeps the default if it refuses.
const PIPE_SIZE: usize = 1 << 20;

const FLAGS: SpliceFFlags = SpliceFFlags::SPLICE_F_MOVE.union(SpliceFFlags::SPLICE_F_NONBLOCK);

/// Both directions until both have ended (or one fails).
pub(super) async fn relay(a: &TcpStream, b: &TcpStream) -> io::Result<()> {
    tokio::try_join!(one_way(a, b), one_way(b, a))?;
    Ok(())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32));
    Ok((read, write))
}

async fn one_way(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let (pipe_read, pipe_write) = pipe()?;
    loop {
        // The pipe is empty here, so EAGAIN can only mean `from` has
        // nothing to read: the readiness try_io clears is the socket's.
        let filled = from
            .async_io(Interest::READABLE, || {
                splice(from.as_fd(), None, &pipe_write, None, PIPE_SIZE, FLAGS)
                    .map_err(io::Error::from)
            })
            .await?;
        if filled == 0 {
            shutdown(to.as_raw_fd(), Shutdown::Write)?;
            return Ok(());
        }
        let mut left = filled;
        while left > 0 {
            left -= to
                .async_io(Interest::WRITABLE, || {
                    splice(&pipe_read, None, to.as_fd(), None, left, FLAGS).map_err(io::Error::from)
                })
                .await?;
        }
    }
}
