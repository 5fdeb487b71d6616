//! Real-time scheduling for the short, bounded work on a container's path
//! to its start, and on `run`'s from the container's end to its own exit
//! (the teardown), so that another runnable task on its CPU does not put
//! it off. Not in between: the supervisor then only waits, or relays a
//! `[::1]` proxy's traffic, which must not starve ordinary tasks.
//!
//! On this 2-core machine a start has three tasks of its own (the
//! supervisor's thread, the network namespace's thread, the container
//! being set up) besides whatever else runs. Left to the fair scheduler,
//! each newly cloned task preempts the one on its CPU: the container, once
//! cloned, preempted the namespace's thread for its whole set-up (0.6 ms),
//! while the supervisor waited for that thread's last step (lo up, its
//! sysctls): 0.3-1.3 ms in half of the starts (perf sched, `bench`). A
//! real-time thread is preempted by no ordinary task, and makes its work
//! run as soon as it is runnable.
//!
//! With SCHED_RESET_ON_FORK: whatever the supervisor's threads clone (the
//! container, the socket's holder, a thread) starts ordinary, so nothing
//! real-time reaches a container's command. The container makes itself
//! real-time for its own set-up, and ordinary again before its filter and
//! its command (see spawn::child). Best effort: without the
//! privilege (CAP_SYS_NICE, or an RLIMIT_RTPRIO of 0) the thread stays as
//! it was.
//!
//! A real-time thread must not wait by spinning for what an ordinary task
//! holds: on its CPU the holder would never run (until the kernel's RT
//! throttling lets ordinary tasks have 50 ms of each second). Some net
//! sysctls do (kernel 6.18): a write that changes `ipv4.ip_forward` or
//! `ipv4.conf.IF.forwarding` (`devinet_sysctl_forward`), any write to
//! `ipv6.conf.{all,IF}.forwarding` (`addrconf_fixup_forwarding`) or to
//! `ipv6.conf.{all,IF}.disable_ipv6` (`addrconf_disable_ipv6`), and several
//! other `ipv6.conf` ones, take RTNL with a trylock and restart the syscall
//! when it is held. So every sysctl write but one of a `conf/default` entry
//! is made ordinary (`netlink::sysctl`, with `ordinary_for`): on the run
//! path that is the host's `ip_forward`, the bridge's `route_localnet` (no
//! lock, made ordinary all the same) and `ipv6.conf.all.forwarding`, each
//! written only when it does not read so already, so once per boot or
//! bridge. The netns thread's `ipv6.conf.default` writes stay real-time: a
//! `default` entry takes no lock (`disable_ipv6` returns before its
//! trylock; `accept_ra`, `autoconf`, `accept_dad` are plain integers), nor
//! does any read. Netlink requests, nftables batches, unshare and the
//! container's mounts take their locks sleeping (mutexes, rwsems), whose
//! optimistic spin stops when the holder is off its CPU.

/// The lowest real-time priority: above every ordinary task, below every
/// other real-time one (the kernel's own threads among them).
const PRIORITY: libc::c_int = 1;

/// Makes the calling thread real-time (SCHED_FIFO, reset on fork); false
/// when it is not allowed to.
pub fn enter() -> bool {
    let param = libc::sched_param {
        sched_priority: PRIORITY,
    };
    // SAFETY: sched_setscheduler on the calling thread (0), with stack
    // data that outlives the call.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param) == 0
    }
}

/// Makes the calling process real-time (SCHED_FIFO) without the reset on
/// fork, for a process that clones nothing until it is ordinary again: it
/// can then go back after giving up CAP_SYS_NICE, which the flag's
/// clearing needs. False when it is not allowed to.
pub fn enter_alone() -> bool {
    let param = libc::sched_param {
        sched_priority: PRIORITY,
    };
    // SAFETY: as in `enter`; async-signal-safe (a cloned child calls it).
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}

/// Runs `clone`, which starts a task (a thread, a process), with the reset
/// on fork off when the calling thread is real-time: the task starts
/// real-time, and gets a CPU as soon as it is runnable. A new ordinary
/// task on a busy machine waited for one for 1-4 ms, when the netns
/// thread and the container's set-up are both on the path to the
/// command's start. The task must make itself ordinary before it runs
/// anything of the container's (see spawn::child), or end.
pub fn cloning_real_time<T>(clone: impl FnOnce() -> T) -> T {
    if !is_real_time() {
        return clone();
    }
    enter_alone();
    let cloned = clone();
    enter();
    cloned
}

/// Makes the calling thread ordinary again (SCHED_OTHER, nice unchanged):
/// 0, or -1 with errno set, as the syscall (async-signal-safe: a cloned
/// child calls it before its exec).
pub fn leave() -> libc::c_int {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as in `enter`.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) }
}

/// Runs `work` with the calling thread ordinary, when it is real-time,
/// and real-time again after: for a step the kernel may retry in a loop
/// until a lock is free, when the lock's holder may be an ordinary task
/// kept off this CPU meanwhile (see the module).
pub fn ordinary_for<T>(work: impl FnOnce() -> T) -> T {
    if !is_real_time() {
        return work();
    }
    let _ = leave();
    let done = work();
    enter();
    done
}

/// Whether the calling thread is real-time now.
pub fn is_real_time() -> bool {
    // SAFETY: sched_getscheduler only reads the calling thread's policy.
    let policy = unsafe { libc::sched_getscheduler(0) };
    policy >= 0 && policy & !libc::SCHED_RESET_ON_FORK == libc::SCHED_FIFO
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body` on a thread of its own (the test's thread stays as it
    /// is); None, said loudly, without root (CAP_SYS_NICE).
    fn on_a_thread<T: Send + 'static>(body: fn() -> T) -> Option<T> {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: needs root (CAP_SYS_NICE)");
            assert!(std::env::var("CI").as_deref() != Ok("true"));
            return None;
        }
        Some(std::thread::spawn(body).join().unwrap())
    }

    #[test]
    fn a_thread_real_time_alone_becomes_ordinary_again_without_cap_sys_nice() {
        let seen = on_a_thread(|| {
            assert!(enter_alone());
            let real_time = is_real_time();
            // The child's set-up drops every capability before it leaves.
            caps::clear(None, caps::CapSet::Effective).unwrap();
            (real_time, leave(), is_real_time())
        });
        assert!(seen.is_none_or(|seen| seen == (true, 0, false)), "{seen:?}");
    }

    #[test]
    fn what_a_real_time_thread_clones_for_the_path_starts_real_time_and_only_that() {
        let seen = on_a_thread(|| {
            assert!(enter());
            let spawn = || std::thread::spawn(is_real_time).join().unwrap();
            let for_the_path = cloning_real_time(spawn);
            let after = spawn();
            (for_the_path, after, is_real_time(), leave())
        });
        assert!(
            seen.is_none_or(|seen| seen == (true, false, true, 0)),
            "{seen:?}"
        );
    }

    #[test]
    fn a_real_time_thread_clones_only_ordinary_ones_and_becomes_ordinary_again() {
        let seen = on_a_thread(|| {
            assert!(enter());
            let real_time = is_real_time();
            let child = std::thread::spawn(is_real_time).join().unwrap();
            (real_time, child, leave(), is_real_time())
        });
        assert!(
            seen.is_none_or(|seen| seen == (true, false, 0, false)),
            "{seen:?}"
        );
    }
}
