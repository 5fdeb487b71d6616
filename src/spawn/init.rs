//! The container's PID 1 when it is not the command (the default).
//!
//! PID 1 of a pid namespace ignores every signal it has no handler for, and
//! orphans are re-parented to it. Most programs are written for neither: run
//! as PID 1, `nc -l` ignores Ctrl-C and SIGTERM, and zombies pile up. So the
//! cloned child stays on as a minimal init, as docker's `--init` (tini) does:
//! it starts the command, forwards the signals it is sent, reaps every child,
//! and exits with the command's status. It costs a clone sharing its memory,
//! not an exec (exec-ing `supervisor init` cost 1.3 ms): it is still the copy
//! of the supervisor that clone3 made, so the rules of child.rs hold here too
//! (raw syscalls only, no allocation, no locks, no logging).

use super::child::{ChildPlan, Stage, errno, exec_candidates, fail, wait_for_release};

/// What comm (`ps`, /proc/1/stat) calls the init. 15 bytes at most.
const NAME: &std::ffi::CStr = c"supervisor-init";

/// Starts the command, then forwards, reaps and exits; never returns.
/// Runs before the final release: the command waits for it, so that once
/// released only the exec is left. Every signal is blocked already
/// (child::reset_signals), so anything sent since clone3 waits, queued, for
/// the loop below: blocked signals are queued even for PID 1, which would
/// otherwise discard them.
///
/// # Safety
/// As child::run: only in the cloned child, after its setup.
pub(super) unsafe fn run(plan: &ChildPlan) -> ! {
    let report = plan.report_write;
    // SAFETY: prctl on a static string; write_bytes on our own copy of the
    // environment strings, which nothing here reads again. clone is glibc's
    // thin wrapper (no atfork handlers, unlike fork(), which may take locks
    // another thread held at clone3). CLONE_VM, as posix_spawn: no copy of
    // the address space. Not CLONE_VFORK: the init goes on at once, closes
    // its copies of the release channel and the report pipe and waits for
    // signals, so that once released the command's exec alone ends the
    // report (the supervisor's wait), with no wake-up of the init on that
    // path. The command runs on a stack of its own, prepared before clone3,
    // and writes nothing of ours but errno, which it shares with us (no TLS
    // of its own): from here on the init makes only calls that cannot fail
    // while the command lives (see the loop), so it never writes errno
    // before the command has exec'd or exited.
    let pid = unsafe {
        libc::prctl(libc::PR_SET_NAME, NAME.as_ptr() as libc::c_ulong, 0, 0, 0);
        // The init is a copy of the supervisor: its memory and /proc/1/environ
        // hold the host's environment and whatever the supervisor had read.
        // Root in the container has the same uid and a subset of its
        // capabilities, which is enough to read them unless the init is not
        // dumpable (runc hides its init the same way). The command gets a
        // dumpable mm of its own at exec.
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 {
            fail(report, Stage::StartCommand, errno());
        }
        // Not dumpable is not enough: with CAP_SYS_ADMIN (--cap-add) root
        // in the container still reads /proc/1/environ. Our copy of the
        // strings goes; the command's environment was built before clone3.
        if let Some((start, end)) = plan.environ {
            std::ptr::write_bytes(start as *mut u8, 0, end - start);
        }
        libc::clone(
            command_main,
            plan.command_stack,
            libc::CLONE_VM | libc::SIGCHLD,
            (plan as *const ChildPlan).cast_mut().cast(),
        )
    };
    if pid < 0 {
        // SAFETY: see child::fail.
        unsafe { fail(report, Stage::StartCommand, errno()) }
    }
    // Only the command's copy of the report pipe may stay open (it closes on
    // exec, or carries the exec's error), and nothing the supervisor held
    // (leases, sockets) may live on in the init. The command has its own
    // descriptor table (no CLONE_FILES): this closes none of its copies,
    // and ends the wait it makes before its release (`init_closed`).
    // SAFETY: close_range only closes our own descriptors, and cannot fail
    // on this range.
    unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
    let command = pid as libc::pid_t;
    // None of the calls below fails while the command lives, so none writes
    // the errno the command reads after a failed exec: sigwaitinfo waits
    // for a set that holds every signal; waitpid runs on SIGCHLD only, and
    // finds the command (WNOHANG: 0 when nothing else changed, never -1
    // while it is there to reap); kill targets the command, not reaped yet.
    // The one exception: sigwaitinfo woken with no signal (a cgroup
    // freezer's thaw) returns EINTR; it would take that thaw to land between
    // the command's failed execve and its read of errno, a few instructions,
    // for the command to report EINTR instead of its own errno.
    loop {
        // SAFETY: sigwaitinfo and kill with stack data, see below.
        let signal = unsafe { wait_signal() };
        if signal == libc::SIGCHLD {
            if let Some(status) = reap_all(command) {
                // SAFETY: _exit is async-signal-safe.
                unsafe { libc::_exit(status) }
            }
        } else {
            // Never one from the terminal delivered a second time: the init
            // is never in the terminal's foreground group (see
            // start_command), so every signal it gets was sent to it alone.
            // SAFETY: kill on our own child, not reaped yet.
            unsafe { libc::kill(command, signal) };
        }
    }
}

/// Reads `fd` until its end: every copy of its write end closed. Any
/// error but EINTR ends the wait too: this orders, it guards nothing.
///
/// # Safety
/// Raw syscalls only, as the rest of the command's start.
unsafe fn wait_for_eof(fd: libc::c_int) {
    let mut byte = 0u8;
    loop {
        // SAFETY: reading one byte into a stack variable.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if n == 0 || (n < 0 && errno() != libc::EINTR) {
            return;
        }
    }
}

/// The size of the command's stack until it execs: a few small frames.
pub(super) const COMMAND_STACK: usize = 64 * 1024;

extern "C" fn command_main(plan: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `plan` is the ChildPlan the init passed to clone, alive in
    // the memory we share with it until we exec or exit.
    unsafe { start_command(&*plan.cast::<ChildPlan>()) }
}

/// The command: a process group of its own, which takes the terminal from
/// the supervisor's group when the container should have it, as a shell
/// gives it to a job: the terminal's signals (Ctrl-C) then reach the command
/// and its children, never the init. Until then they reach the supervisor,
/// which forwards them through the init: none is lost or delivered twice.
/// Then the signal mask a program expects, and exec.
unsafe fn start_command(plan: &ChildPlan) -> ! {
    // SAFETY: setpgid/tcsetpgrp/sigprocmask on our own process and stdin,
    // with stack data. tcsetpgrp from a background group would raise
    // SIGTTOU, which is still blocked; a failure only leaves the terminal
    // with the supervisor, which forwards what it gets.
    unsafe {
        libc::setpgid(0, 0);
        // Not released before the init has let go of what the supervisor
        // held: otherwise, on a busy CPU, the command could run while the
        // init still holds it (leases, sockets), visible in /proc/1/fd.
        let (closed_read, closed_write) = plan.init_closed;
        libc::close(closed_write);
        wait_for_eof(closed_read);
        // In the init's place, which waits for signals meanwhile. A parent
        // that dies now reads as EOF: we exit 125, and so does the init.
        wait_for_release(plan.release_read);
        if plan.take_terminal {
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        let errno = exec_candidates(plan);
        fail(plan.report_write, Stage::Exec, errno)
    }
}

/// The next signal.
unsafe fn wait_signal() -> libc::c_int {
    // SAFETY: sigwaitinfo with a full set and no siginfo.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        loop {
            let sig = libc::sigwaitinfo(&all, std::ptr::null_mut());
            if sig > 0 {
                return sig;
            }
        }
    }
}

/// Reaps every exited child; the command's exit code once it is among them:
/// its own code, or 128+n when signal n killed it, as the supervisor
/// reports a signal death.
///
/// A command stopped by the terminal (Ctrl-Z, or reading it from the
/// background) is resumed at once: the supervisor is not a job its shell
/// could resume, so a stop would leave the terminal hung with Ctrl-C
/// pending behind it. Ctrl-Z then does nothing, as for a PID 1 command.
fn reap_all(command: libc::pid_t) -> Option<libc::c_int> {
    let mut result = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on any child of ours, non-blocking.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::WUNTRACED) };
        if pid <= 0 {
            return result;
        }
        if pid != command {
            continue;
        }
        if libc::WIFSTOPPED(status) {
            if matches!(
                libc::WSTOPSIG(status),
                libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
            ) {
                // SAFETY: kill on our own child, stopped, not reaped.
                unsafe { libc::kill(command, libc::SIGCONT) };
            }
        } else if libc::WIFEXITED(status) {
            result = Some(libc::WEXITSTATUS(status));
        } else {
            result = Some(128 + libc::WTERMSIG(status));
        }
    }
}
