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

/// The C functions std declares weak (its `weak!`/`syscall!` on Linux, for
/// a glibc that may lack them), as the release binary lists them undefined
/// and weak (`nm … | grep ' w '`, glibc's own left out).
const STD_WEAK: &[&str] = &[
    "gettid",
    "pidfd_getpid",
    "pidfd_spawnp",
    "posix_spawn_file_actions_addchdir",
    "posix_spawn_file_actions_addchdir_np",
    "statx",
];

/// Every `.rs` file under `dir`.
fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Our code calls none of them through `libc`: with LTO (the release
/// profile) our reference and std's weak one become one weak reference,
/// the static link then pulls no object of libc.a for it, and the call
/// jumps to address 0. `run --rootfs` of a release build died so (SIGSEGV
/// in the container's set-up, `libc::statx` after pivot_root) while every
/// test, on the debug build, passed. The system call itself is the way.
#[test]
fn our_code_calls_no_libc_function_that_std_links_weakly() {
    let mut files = Vec::new();
    sources(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut calls = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for name in STD_WEAK {
            if text.contains(&format!("libc::{name}(")) {
                calls.push(format!("{}: libc::{name}", file.display()));
            }
        }
    }
    assert!(calls.is_empty(), "{calls:#?}");
}
