//! A compiled seccomp filter, ready for the child to install with one
//! syscall. What it allows is decided elsewhere (`crate::seccomp`); here it
//! is only a BPF program.

use std::io;

/// A classic BPF program for seccomp(SECCOMP_SET_MODE_FILTER).
#[derive(Debug, Clone)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
}

impl Filter {
    /// From the raw program as libseccomp exports it: 8-byte instructions
    /// in the machine's byte order.
    pub fn from_bytes(bytes: &[u8]) -> io::Result<Filter> {
        let size = std::mem::size_of::<libc::sock_filter>();
        if bytes.is_empty() || bytes.len() % size != 0 || bytes.len() / size > u16::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a seccomp program of {} bytes", bytes.len()),
            ));
        }
        let program = bytes
            .chunks_exact(size)
            .map(|i| libc::sock_filter {
                code: u16::from_ne_bytes([i[0], i[1]]),
                jt: i[2],
                jf: i[3],
                k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
            })
            .collect();
        Ok(Filter { program })
    }

    pub fn len(&self) -> usize {
        self.program.len()
    }

    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// Installs the filter on the calling thread; no_new_privs must be set
    /// (we have no CAP_SYS_ADMIN by then).
    ///
    /// # Safety
    /// A raw syscall on the program the parent built; nothing allocates.
    pub unsafe fn install(&self) -> libc::c_int {
        // SAFETY: see install_program; the length is checked in from_bytes.
        unsafe { install_program(&self.program) }
    }
}

/// A container run from a shell shares the user's terminal (its
/// controlling one, which `run` hands over as a shell hands a job its
/// terminal): TIOCSTI would push keystrokes into its input, which the
/// user's shell reads and runs once the container ends, as the host's user.
/// TIOCLINUX pastes from a virtual console's selection the same way. Both
/// are refused whatever the profile, `unconfined` included (bubblewrap and
/// flatpak refuse them too). The kernel reads the command as 32 bits: only
/// the low half of the argument is compared, else a high bit set slips by
/// (CVE-2017-5226).
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541c;
const EPERM: u32 = libc::EPERM as u32;

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}
const LOAD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets in `struct seccomp_data`: the second argument is the 64 bits
/// at 24, its low half first on a little-endian machine.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG1_LOW: u32 = if cfg!(target_endian = "little") {
    24
} else {
    28
};

/// ioctl on x86_64, on x32 (its number with bit 30) and on i386.
#[cfg(target_arch = "x86_64")]
const TERMINAL_GUARD: [libc::sock_filter; 13] = [
    insn(LOAD, 0, 0, ARCH),
    insn(JEQ, 0, 3, 0xc000_003e), // AUDIT_ARCH_X86_64, else to 5
    insn(LOAD, 0, 0, NR),
    insn(JEQ, 4, 0, 16),                // ioctl: to 8
    insn(JEQ, 3, 7, 0x4000_0000 | 514), // x32's ioctl: to 8, else allow
    insn(JEQ, 0, 6, 0x4000_0003),       // AUDIT_ARCH_I386, else allow
    insn(LOAD, 0, 0, NR),
    insn(JEQ, 0, 4, 54), // i386's ioctl, else allow
    insn(LOAD, 0, 0, ARG1_LOW),
    insn(JEQ, 1, 0, TIOCSTI),
    insn(JEQ, 0, 1, TIOCLINUX),
    insn(RET, 0, 0, libc::SECCOMP_RET_ERRNO | EPERM),
    insn(RET, 0, 0, libc::SECCOMP_RET_ALLOW),
];

/// ioctl on the one ABI of the machine.
#[cfg(not(target_arch = "x86_64"))]
const TERMINAL_GUARD: [libc::sock_filter; 7] = [
    insn(LOAD, 0, 0, NR),
    insn(JEQ, 0, 4, libc::SYS_ioctl as u32),
    insn(LOAD, 0, 0, ARG1_LOW),
    insn(JEQ, 1, 0, TIOCSTI),
    insn(JEQ, 0, 1, TIOCLINUX),
    insn(RET, 0, 0, libc::SECCOMP_RET_ERRNO | EPERM),
    insn(RET, 0, 0, libc::SECCOMP_RET_ALLOW),
];

/// Installs the terminal guard on the calling thread; no_new_privs must
/// be set.
///
/// # Safety
/// A raw syscall on a static program; nothing allocates.
pub unsafe fn install_terminal_guard() -> libc::c_int {
    // SAFETY: see install_program.
    unsafe { install_program(&TERMINAL_GUARD) }
}

/// seccomp(SECCOMP_SET_MODE_FILTER) with `program` (at most u16::MAX
/// instructions, checked by the callers).
///
/// # Safety
/// A raw syscall; nothing allocates.
unsafe fn install_program(program: &[libc::sock_filter]) -> libc::c_int {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: prog points at the program, alive for the call; the kernel
    // copies it and never writes through the pointer.
    unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        ) as libc::c_int
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_guard_refuses_tiocsti_with_high_bits_set_and_nothing_else() {
        // On a thread of its own: the filter stays with the thread.
        let refused = std::thread::spawn(|| {
            let tty_ioctl = |cmd: u64| {
                let null = std::fs::File::open("/dev/null").unwrap();
                // SAFETY: an ioctl on a file we own; TIOCSTI reads one byte.
                let ret = unsafe {
                    libc::syscall(
                        libc::SYS_ioctl,
                        std::os::fd::AsRawFd::as_raw_fd(&null),
                        cmd,
                        c"x".as_ptr(),
                    )
                };
                (ret < 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap())
            };
            // SAFETY: prctl and the guard's install on this thread only.
            unsafe {
                assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
                assert_eq!(install_terminal_guard(), 0);
            }
            [
                tty_ioctl(TIOCSTI.into()),
                tty_ioctl(1 << 32 | u64::from(TIOCSTI)),
                tty_ioctl(TIOCLINUX.into()),
                tty_ioctl(libc::TIOCGWINSZ),
            ]
        })
        .join()
        .unwrap();
        let eperm = Some(libc::EPERM);
        // /dev/null is no terminal: what passes the guard meets ENOTTY.
        assert_eq!(refused, [eperm, eperm, eperm, Some(libc::ENOTTY)]);
    }

    #[test]
    fn a_program_is_whole_instructions() {
        assert!(Filter::from_bytes(&[]).is_err());
        assert!(Filter::from_bytes(&[0; 12]).is_err());
        let f = Filter::from_bytes(&[0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f.program[0].code, 6);
        assert_eq!(f.program[0].k, 0x7fff_0000);
    }
}
