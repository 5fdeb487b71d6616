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
