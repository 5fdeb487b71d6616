//! Compiles mnl.c into libmnl.a and links it, in place of the shared libmnl
//! the crates.io mnl-sys finds with pkg-config.

fn main() {
    println!("cargo:rerun-if-changed=mnl.c");
    cc::Build::new()
        .file("mnl.c")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("mnl");
}
