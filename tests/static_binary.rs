//! The binary starts without the dynamic loader: no interpreter, no shared
//! library to open, map and relocate against at every container's start
//! (see .cargo/config.toml).

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_supervisor");

/// The type of each program header of an ELF64 little-endian file.
fn program_header_types(elf: &[u8]) -> Vec<u32> {
    assert_eq!(&elf[..4], b"\x7fELF", "{SUPERVISOR} is not an ELF file");
    assert_eq!((elf[4], elf[5]), (2, 1), "not ELF64 little-endian");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let offset = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count)
        .map(|i| {
            let at = offset + i * size;
            u32::from_le_bytes(elf[at..at + 4].try_into().unwrap())
        })
        .collect()
}

#[test]
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
fn the_binary_names_no_dynamic_loader() {
    const PT_INTERP: u32 = 3;
    let elf = std::fs::read(SUPERVISOR).unwrap();
    let types = program_header_types(&elf);
    assert!(!types.is_empty());
    assert!(
        !types.contains(&PT_INTERP),
        "{SUPERVISOR} is linked dynamically: it names an interpreter"
    );
}
