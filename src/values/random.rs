//! Random numbers for ids and port picks.

/// A short random container id: 12 hex digits, like docker's short ids.
pub fn new_id() -> String {
    format!("{:012x}", random_u64() >> 16)
}

/// 64 random bits from the kernel.
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom fills the stack buffer it is given.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        // Without the kernel's randomness, time and pid still differ
        // between supervisors of one host.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        return (nanos as u64) ^ ((std::process::id() as u64) << 32);
    }
    u64::from_ne_bytes(bytes)
}

/// A container's generation: a random non-zero number chosen at its setup,
/// which its connections carry as their conntrack mark (see the chain
/// `generation` of nft/supervisor.nft). Its address may be another's after
/// it; its generation, drawn from 2^32 - 1, almost surely not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Generation(std::num::NonZeroU32);

impl Generation {
    /// A new random generation.
    pub fn random() -> Generation {
        loop {
            if let Some(generation) = Generation::new(random_u64() as u32) {
                return generation;
            }
        }
    }

    /// `value` as a generation; None for 0, which marks no container's
    /// connection.
    pub fn new(value: u32) -> Option<Generation> {
        std::num::NonZeroU32::new(value).map(Generation)
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }
}

/// As nft prints a mark.
impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#010x}", self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_is_never_zero_and_prints_as_nft_prints_a_mark() {
        assert_eq!(Generation::new(0), None);
        assert_ne!(Generation::random().get(), 0);
        assert_eq!(
            Generation::new(0x8f3a_0c11).map(|g| g.to_string()),
            Some("0x8f3a0c11".to_string())
        );
        assert_eq!(Generation::new(0x11).unwrap().to_string(), "0x00000011");
    }
}
