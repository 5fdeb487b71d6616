//! eBPF without a loader library: instructions assembled by hand
//! ([`insn`]) and the bpf(2) commands that load and attach them ([`sys`]).
//! The one program today is the `[::1]` connect hook (`proxy::connect6`).

pub mod insn;
pub mod sys;
