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

/// Opens /dev/null as each of descriptors 0, 1 and 2 that is closed, as
/// std does (one `poll` when all three are open).
fn open_standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd for the call's
    // length; a zero timeout returns at once.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    if polled < 0 {
        return;
    }
    for pollfd in fds {
        if pollfd.revents & libc::POLLNVAL != 0 {
            // The lowest free number is this one, the ones below it being
            // open. Inherited by what we exec (no CLOEXEC), as std's.
            // SAFETY: a NUL-terminated path; the descriptor, if any, is
            // left open for the process's life.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}
