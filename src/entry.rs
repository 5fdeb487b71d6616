//! The process's entry without Rust's start-up (`#![no_main]` in
//! `main.rs`): of what std does before `main`, only what this program
//! relies on, by hand.
//!
//! Every container and every CNI call starts a process, and std's start-up
//! took about 60 us of each (a static binary spawned to its exit: 479 us
//! with it, 418 without, p50 of 1,000 alternated spawns; glibc's own
//! start-up, with its ~40 `cpuid` at 3.6 us each in this VM, is 270 us of
//! either): reading `/proc/self/maps` to find the main thread's stack guard,
//! an alternate signal stack mapped, protected and unmapped again, and the
//! SIGSEGV and SIGBUS handlers that print "has overflowed its stack". A
//! stack overflow now ends the process with SIGSEGV without that line.
//!
//! Kept: SIGPIPE ignored (a write to a pipe whose reader left is an EPIPE
//! error, see `reader_gone`; the container's child resets it before exec),
//! stdin, stdout and stderr open (else the first file opened would take
//! the number of a closed one, and the answer would go into it), a panic
//! ending the process with 101, and stdout flushed at the exit
//! (`std::process::exit` does it).

/// Exit code of a panic that reached the top, as std's start-up gives it.
pub const PANICKED: u8 = 101;

/// Runs `dispatch` as std's start-up would run `main`, and exits with its
/// code.
pub fn run(dispatch: fn() -> u8) -> ! {
    ignore_sigpipe();
    open_standard_fds();
    let code = std::panic::catch_unwind(dispatch).unwrap_or(PANICKED);
    std::process::exit(i32::from(code))
}

fn ignore_sigpipe() {
    // SAFETY: SIG_IGN installs no handler code; only our disposition of
    // SIGPIPE changes, before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Exit code when a closed standard descriptor cannot be opened on
/// /dev/null: docker's for the runtime's own failure.
pub const NO_STANDARD_FDS: u8 = 125;

/// Opens /dev/null as each of descriptors 0, 1 and 2 that is closed, as
/// std does: one `poll` when all three are open, retried when a signal
/// interrupts it; each descriptor asked with fcntl when poll cannot tell
/// (EINVAL: RLIMIT_NOFILE below 3; EAGAIN, ENOMEM).
fn open_standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: `fds` is a valid array of three pollfd for the call's
        // length; a zero timeout returns at once.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } >= 0 {
            for pollfd in fds {
                if pollfd.revents & libc::POLLNVAL != 0 {
                    open_null_as(pollfd.fd);
                }
            }
            return;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            _ => break,
        }
    }
    for fd in 0..3 {
        // SAFETY: F_GETFD only asks whether FD is open.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
        if closed {
            open_null_as(fd);
        }
    }
}

/// /dev/null opened as FD, closed and the lowest free number (the ones
/// below it being open). Inherited by what we exec (no CLOEXEC), as std's.
/// When it cannot be, the process ends at once with `NO_STANDARD_FDS` and
/// says nothing: carrying on, the first file it opened would take FD's
/// number and get what is meant for that stream (an answer, an error), and
/// with stderr perhaps the closed one there is nowhere safe to write. std
/// aborts there; an exit code of ours tells the caller it was us, without
/// a core dump.
fn open_null_as(fd: libc::c_int) {
    // SAFETY: a NUL-terminated path; the descriptor, if any, is left open
    // for the process's life.
    let opened = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
    if opened != fd {
        // SAFETY: ends the process at once, running nothing of ours.
        unsafe { libc::_exit(i32::from(NO_STANDARD_FDS)) };
    }
}
