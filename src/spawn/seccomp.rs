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
        let prog = libc::sock_fprog {
            // Checked in from_bytes.
            len: self.program.len() as u16,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: prog points at our program, alive for the call; the
        // kernel copies it.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            ) as libc::c_int
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
