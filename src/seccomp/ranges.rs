//! The same program, shorter: libseccomp's syscall-number dispatch
//! rewritten as a search over ranges.
//!
//! libseccomp tests each syscall a rule names on its own (a JEQ each, in a
//! binary tree at best): docker's default profile compiles to 1,227
//! instructions for x86_64, x86 and x32, of which some 1,100 only compare
//! the syscall number. The kernel checks, converts and JIT-compiles every
//! instruction when the container's child installs the filter, which cost
//! 0.21-0.26 ms of its setup. But the numbers a profile allows mostly come
//! in runs: docker's x86_64 dispatch has 153 ranges of numbers that end in
//! the same place, x86's 117. So each dispatch (a load of the number and
//! the comparisons on it up to the first instruction that does something
//! else) becomes a balanced tree of `JGE` over those ranges, followed by a
//! jump to each place they end; every other instruction (the architecture
//! checks, the argument comparisons, the returns) is kept as it is. The
//! result, 336 instructions, installs in 0.09-0.11 ms.
//!
//! What the program decides does not change, by construction: in every
//! range, the new tree ends where the old comparisons did, with the same
//! accumulator (the number), and the comparisons' constants bound the
//! ranges, so one number per range stands for all of them. `compact`
//! proves it all the same (`equivalent`: both programs walked side by side,
//! for every input, not a sample of inputs), and keeps the original on any
//! difference, or on anything it does not know. (A sample missed some:
//! libseccomp reaches x86's dispatch after a jump, where a scan for the
//! architectures compared found only x86_64's, and three argument patterns
//! never tried personality's allowed values.)

use std::collections::{BTreeMap, BTreeSet};

const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const DATA_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

fn decode(bytes: &[u8]) -> Vec<Insn> {
    bytes
        .chunks_exact(8)
        .map(|i| Insn {
            code: u16::from_ne_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect()
}

fn encode(program: &[Insn]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for i in program {
        bytes.extend_from_slice(&i.code.to_ne_bytes());
        bytes.extend_from_slice(&[i.jt, i.jf]);
        bytes.extend_from_slice(&i.k.to_ne_bytes());
    }
    bytes
}

fn is_compare(code: u16) -> bool {
    matches!(code, JEQ_K | JGT_K | JGE_K | JSET_K)
}

/// Where instruction `pc` may go next; None for an instruction this module
/// does not know.
fn successors(program: &[Insn], pc: usize) -> Option<Vec<usize>> {
    let i = program[pc];
    Some(match i.code {
        RET_K => vec![],
        JA => vec![pc + 1 + i.k as usize],
        code if is_compare(code) => vec![pc + 1 + i.jt as usize, pc + 1 + i.jf as usize],
        LD_W_ABS | ALU_AND_K => vec![pc + 1],
        _ => return None,
    })
}

/// Whether a comparison of `a` with instruction `i`'s constant holds.
fn holds(i: Insn, a: u32) -> bool {
    match i.code {
        JEQ_K => a == i.k,
        JGT_K => a > i.k,
        JGE_K => a >= i.k,
        _ => a & i.k != 0,
    }
}

/// A load of the syscall number and the comparisons on it that follow.
struct Dispatch {
    /// The comparisons and jumps, reached from the load only.
    members: BTreeSet<usize>,
    /// Ranges, by their first number, and the instruction each ends at;
    /// the first begins at 0, each runs up to the next.
    ranges: Vec<(u32, usize)>,
}

impl Dispatch {
    /// The dispatch beginning with the load at `load`, if it compares.
    fn at(program: &[Insn], load: usize) -> Option<Dispatch> {
        let mut members = BTreeSet::new();
        let mut constants = BTreeSet::from([0u32]);
        let mut todo = vec![load + 1];
        while let Some(pc) = todo.pop() {
            let i = *program.get(pc)?;
            if (is_compare(i.code) || i.code == JA) && members.insert(pc) {
                if i.code == JSET_K {
                    return None;
                }
                if i.code != JA {
                    constants.insert(i.k);
                    constants.extend(i.k.checked_add(1));
                }
                todo.extend(successors(program, pc)?);
            }
        }
        if members.is_empty() {
            return None;
        }
        let end = |a: u32| {
            let mut pc = load + 1;
            while members.contains(&pc) {
                let i = program[pc];
                pc += 1 + match i.code {
                    JA => i.k as usize,
                    _ if holds(i, a) => i.jt as usize,
                    _ => i.jf as usize,
                };
            }
            pc
        };
        let mut ranges: Vec<(u32, usize)> = Vec::new();
        for first in constants {
            let to = end(first);
            if ranges.last().is_none_or(|&(_, last)| last != to) {
                ranges.push((first, to));
            }
        }
        Some(Dispatch { members, ranges })
    }
}

/// Where an instruction of the new program jumps: to an instruction of
/// the original (wherever it lands), or to one of the new program.
#[derive(Debug, Clone, Copy)]
enum Target {
    Old(usize),
    New(usize),
}

/// An instruction of the new program, its targets not yet offsets.
struct Pending {
    code: u16,
    k: u32,
    jt: Option<Target>,
    jf: Option<Target>,
    /// For a tree's comparison: the jumps to each place its ranges end,
    /// laid out after the tree, for targets beyond a conditional jump's
    /// reach (255 instructions).
    stubs: Option<usize>,
}

/// `program` (libseccomp's export: 8-byte instructions in the machine's
/// byte order) with each syscall-number dispatch searched by ranges; the
/// program itself when that cannot be done or shown to decide the same.
pub fn compact(bytes: &[u8]) -> Vec<u8> {
    let program = decode(bytes);
    match rewrite(&program) {
        Some(new) if new.len() < program.len() && equivalent(&program, &new) => encode(&new),
        _ => bytes.to_vec(),
    }
}

fn rewrite(program: &[Insn]) -> Option<Vec<Insn>> {
    let mut predecessors: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for pc in 0..program.len() {
        for next in successors(program, pc)? {
            if next >= program.len() {
                return None;
            }
            predecessors.entry(next).or_default().push(pc);
        }
    }
    let mut dispatches = BTreeMap::new();
    let mut owner = BTreeMap::new();
    for (pc, i) in program.iter().enumerate() {
        if i.code == LD_W_ABS && i.k == NR {
            if let Some(dispatch) = Dispatch::at(program, pc) {
                for &member in &dispatch.members {
                    if owner.insert(member, pc).is_some() {
                        return None;
                    }
                }
                dispatches.insert(pc, dispatch);
            }
        }
    }
    // A comparison reached from anywhere but its own dispatch would be
    // reached with something else than the number.
    for (&member, &load) in &owner {
        let from = predecessors.get(&member).map_or(&[][..], Vec::as_slice);
        if from
            .iter()
            .any(|&p| p != load && owner.get(&p) != Some(&load))
        {
            return None;
        }
    }
    let mut pending: Vec<Pending> = Vec::new();
    let mut position = vec![usize::MAX; program.len()];
    for (pc, &i) in program.iter().enumerate() {
        if owner.contains_key(&pc) {
            continue;
        }
        position[pc] = pending.len();
        let jump = |offset: u8| Some(Target::Old(pc + 1 + offset as usize));
        pending.push(match i.code {
            JA => Pending {
                code: JA,
                k: 0,
                jt: Some(Target::Old(pc + 1 + i.k as usize)),
                jf: None,
                stubs: None,
            },
            code if is_compare(code) => Pending {
                code,
                k: i.k,
                jt: jump(i.jt),
                jf: jump(i.jf),
                stubs: None,
            },
            code => Pending {
                code,
                k: i.k,
                jt: None,
                jf: None,
                stubs: None,
            },
        });
        if let Some(dispatch) = dispatches.get(&pc) {
            emit_tree(&dispatch.ranges, &mut pending);
        }
    }
    resolve(&pending, &position)
}

/// A balanced tree of `JGE` over `ranges`, then one jump to each place
/// they end.
fn emit_tree(ranges: &[(u32, usize)], pending: &mut Vec<Pending>) {
    let ends: BTreeSet<usize> = ranges.iter().map(|&(_, end)| end).collect();
    let base = pending.len();
    let nodes = ranges.len() - 1;
    let stubs = base + nodes.max(1);
    if nodes == 0 {
        pending.push(Pending {
            code: JA,
            k: 0,
            jt: Some(Target::Old(ranges[0].1)),
            jf: None,
            stubs: None,
        });
    } else {
        // Preorder: a node, its lower half, its upper half.
        fn node(ranges: &[(u32, usize)], pending: &mut Vec<Pending>, stubs: usize) -> Target {
            if ranges.len() == 1 {
                return Target::Old(ranges[0].1);
            }
            let at = pending.len();
            pending.push(Pending {
                code: JGE_K,
                k: 0,
                jt: None,
                jf: None,
                stubs: Some(stubs),
            });
            let mid = ranges.len() / 2;
            let lower = node(&ranges[..mid], pending, stubs);
            let upper = node(&ranges[mid..], pending, stubs);
            let this = &mut pending[at];
            this.k = ranges[mid].0;
            this.jt = Some(upper);
            this.jf = Some(lower);
            Target::New(at)
        }
        node(ranges, pending, stubs);
    }
    debug_assert_eq!(pending.len(), stubs);
    for end in ends {
        pending.push(Pending {
            code: JA,
            k: 0,
            jt: Some(Target::Old(end)),
            jf: None,
            stubs: None,
        });
    }
}

/// Offsets for every jump; None when one cannot reach its target forward.
fn resolve(pending: &[Pending], position: &[usize]) -> Option<Vec<Insn>> {
    let at = |target: Target| match target {
        Target::Old(pc) => position.get(pc).copied().filter(|&p| p != usize::MAX),
        Target::New(index) => Some(index),
    };
    let mut program = Vec::with_capacity(pending.len());
    for (index, p) in pending.iter().enumerate() {
        let forward = |target: Target| at(target)?.checked_sub(index + 1);
        if p.code == JA {
            let offset = forward(p.jt?)?;
            program.push(Insn {
                code: JA,
                jt: 0,
                jf: 0,
                k: u32::try_from(offset).ok()?,
            });
            continue;
        }
        if !is_compare(p.code) {
            program.push(Insn {
                code: p.code,
                jt: 0,
                jf: 0,
                k: p.k,
            });
            continue;
        }
        // Beyond reach: by way of the tree's jump to the same place.
        let reach = |target: Target| -> Option<u8> {
            let offset = forward(target)?;
            if let Ok(short) = u8::try_from(offset) {
                return Some(short);
            }
            let (Target::Old(end), Some(stubs)) = (target, p.stubs) else {
                return None;
            };
            let stub = (stubs..pending.len())
                .take_while(|&s| pending[s].code == JA)
                .find(|&s| matches!(pending[s].jt, Some(Target::Old(e)) if e == end))?;
            u8::try_from(stub.checked_sub(index + 1)?).ok()
        };
        program.push(Insn {
            code: p.code,
            jt: reach(p.jt?)?,
            jf: reach(p.jf?)?,
            k: p.k,
        });
    }
    Some(program)
}

/// The most instructions the kernel takes in one program (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// Whether the kernel's checks would take `program` as far as this module
/// reads it: only instructions it knows, loads of whole words inside
/// `struct seccomp_data`, every jump inside the program, a return last.
fn well_formed(program: &[Insn]) -> bool {
    let len = program.len();
    (1..=MAX_INSNS).contains(&len)
        && program[len - 1].code == RET_K
        && program.iter().enumerate().all(|(pc, i)| match i.code {
            LD_W_ABS => i.k % 4 == 0 && (i.k as usize) + 4 <= DATA_LEN,
            _ => successors(program, pc).is_some_and(|next| next.iter().all(|&n| n < len)),
        })
}

/// Where `program` goes from `pc` with `a` in the accumulator, through
/// comparisons and jumps, to the first instruction that does anything else.
fn exit(program: &[Insn], mut pc: usize, a: u32) -> usize {
    loop {
        let i = program[pc];
        pc += 1 + match i.code {
            JA => i.k as usize,
            code if is_compare(code) && holds(i, a) => i.jt as usize,
            code if is_compare(code) => i.jf as usize,
            _ => return pc,
        };
    }
}

/// The comparisons and jumps reachable from `pc` through comparisons and
/// jumps only.
fn decisions(program: &[Insn], pc: usize) -> Vec<Insn> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![pc];
    while let Some(pc) = todo.pop() {
        let i = program[pc];
        if (is_compare(i.code) || i.code == JA) && seen.insert(pc) {
            todo.extend(successors(program, pc).unwrap_or_default());
        }
    }
    seen.into_iter().map(|pc| program[pc]).collect()
}

/// Most pairs of instructions `equivalent` walks before it gives up.
const MAX_PAIRS: usize = 1 << 16;

/// Whether `old` and `new` return the same for every input, whatever the
/// syscall number, architecture, instruction pointer and arguments.
///
/// The two are walked side by side, as pairs of places where both hold the
/// same accumulator and read the same data (true at the start, and kept by
/// the same load or AND on both sides). From a pair, the comparisons each
/// side makes on the accumulator, up to the first instruction that does
/// anything else, decide alike for every number between two consecutive
/// constants they compare with, so one number per such interval stands for
/// all of them; the instructions both sides then reach must be the same
/// and lead to pairs of the same kind. Whatever the accumulator is, so
/// this holds for any data: a proof, not a sample. It may refuse two
/// programs that decide the same (then libseccomp's is kept), never the
/// reverse. A `JSET` among the comparisons is not decided by intervals:
/// there the two sides must make the same comparison.
fn equivalent(old: &[Insn], new: &[Insn]) -> bool {
    if !well_formed(old) || !well_formed(new) {
        return false;
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![(0, 0)];
    while let Some((p, q)) = todo.pop() {
        if !seen.insert((p, q)) {
            continue;
        }
        if seen.len() > MAX_PAIRS {
            return false;
        }
        let (i, j) = (old[p], new[q]);
        let jumps = |i: Insn| is_compare(i.code) || i.code == JA;
        if !jumps(i) && !jumps(j) {
            if i != j {
                return false;
            }
            match i.code {
                RET_K => {}
                LD_W_ABS | ALU_AND_K => todo.push((p + 1, q + 1)),
                _ => return false,
            }
            continue;
        }
        let (from_old, from_new) = (decisions(old, p), decisions(new, q));
        let compared = from_old.iter().chain(&from_new).filter(|i| i.code != JA);
        if compared.clone().any(|i| i.code == JSET_K) {
            // The same comparison on both sides, after any jumps.
            let (p, q) = (skip_jumps(old, p), skip_jumps(new, q));
            let (i, j) = (old[p], new[q]);
            if i.code != j.code || i.k != j.k || !is_compare(i.code) {
                return false;
            }
            todo.push((p + 1 + i.jt as usize, q + 1 + j.jt as usize));
            todo.push((p + 1 + i.jf as usize, q + 1 + j.jf as usize));
            continue;
        }
        let bounds: BTreeSet<u32> = compared
            .flat_map(|i| [Some(i.k), i.k.checked_add(1)])
            .flatten()
            .chain([0])
            .collect();
        for a in bounds {
            todo.push((exit(old, p, a), exit(new, q, a)));
        }
    }
    true
}

fn skip_jumps(program: &[Insn], mut pc: usize) -> usize {
    while program[pc].code == JA {
        pc += 1 + program[pc].k as usize;
    }
    pc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::{
        Action, Arg, Condition, Op, Profile, Rule, Target as Conditions, compile_exported,
        default_profile,
    };

    const ARCH: u32 = 4;
    const X86_64: u32 = 0xc000_003e;
    const I386: u32 = 0x4000_0003;
    const AARCH64: u32 = 0xc000_00b7;
    const X32_BIT: u32 = 0x4000_0000;
    const ALLOW: u32 = 0x7fff_0000;
    const ERRNO: u32 = 0x0005_0000;

    fn conditions() -> Conditions {
        Conditions {
            caps: vec!["CAP_CHOWN".into(), "CAP_NET_BIND_SERVICE".into()],
            kernel: (6, 18),
        }
    }

    fn docker_default() -> Vec<Insn> {
        decode(&compile_exported(&default_profile(), &conditions()).unwrap())
    }

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// A small deterministic generator.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn pick<T: Copy>(state: &mut u64, from: &[T]) -> T {
        from[next(state) as usize % from.len()]
    }

    /// What `program` returns for `data`, as the kernel runs it; None for
    /// an instruction this module does not know or a jump out of it.
    fn run(program: &[Insn], data: &[u8; DATA_LEN]) -> Option<u32> {
        let mut a = 0u32;
        let mut pc = 0;
        loop {
            let i = *program.get(pc)?;
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    let at = i.k as usize;
                    a = u32::from_ne_bytes(data.get(at..at + 4)?.try_into().ok()?);
                }
                ALU_AND_K => a &= i.k,
                JA => pc += i.k as usize,
                RET_K => return Some(i.k),
                code if is_compare(code) => {
                    pc += if holds(i, a) { i.jt } else { i.jf } as usize;
                }
                _ => return None,
            }
        }
    }

    fn data(nr: u32, arch: u32, words: &[u32; 14]) -> [u8; DATA_LEN] {
        let mut data = [0u8; DATA_LEN];
        data[..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (w, word) in words.iter().enumerate() {
            data[8 + 4 * w..12 + 4 * w].copy_from_slice(&word.to_ne_bytes());
        }
        data
    }

    /// Inputs that tell such programs apart, whatever their shape: every
    /// number below 1024, with and without the x32 bit, and every constant
    /// compared and its neighbours, as a number; every architecture
    /// compared and a few that are not; and for each, every word of the
    /// instruction pointer and arguments at each constant it is compared
    /// with (or masked by) and its neighbours, the others 0, then a few
    /// draws of all of them at once.
    fn probes(programs: &[&[Insn]], state: &mut u64) -> Vec<[u8; DATA_LEN]> {
        let near = |k: u32| [k.wrapping_sub(1), k, k.wrapping_add(1)];
        let mut numbers: BTreeSet<u32> = (0..1024).flat_map(|n| [n, n | X32_BIT]).collect();
        numbers.extend([0x3fff_ffff, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, u32::MAX]);
        let mut arches = BTreeSet::from([0, X86_64, I386, AARCH64, 0x1234_5678, u32::MAX]);
        // Word w of the data from byte 8 on: the constants compared after
        // its load (and an AND), as far as the next load.
        let mut words: Vec<BTreeSet<u32>> = vec![BTreeSet::from([0, u32::MAX]); 14];
        for program in programs {
            for (pc, i) in program.iter().enumerate() {
                if is_compare(i.code) {
                    numbers.extend(near(i.k));
                }
                if i.code != LD_W_ABS {
                    continue;
                }
                let after = decisions_after_load(program, pc);
                match i.k {
                    NR => {}
                    ARCH => arches.extend(after),
                    k => words[(k as usize - 8) / 4].extend(after.into_iter().flat_map(near)),
                }
            }
        }
        let words: Vec<Vec<u32>> = words.into_iter().map(|w| w.into_iter().collect()).collect();
        let mut probes = Vec::new();
        for &arch in &arches {
            for &nr in &numbers {
                probes.push(data(nr, arch, &[0; 14]));
                for (w, values) in words.iter().enumerate() {
                    for &value in values.iter().filter(|&&v| v != 0) {
                        let mut all = [0; 14];
                        all[w] = value;
                        probes.push(data(nr, arch, &all));
                    }
                }
                for _ in 0..3 {
                    let all = std::array::from_fn(|w| pick(state, &words[w]));
                    probes.push(data(nr, arch, &all));
                }
            }
        }
        probes
    }

    /// The constants compared (and masks applied) after the load at `pc`,
    /// before the next load.
    fn decisions_after_load(program: &[Insn], pc: usize) -> Vec<u32> {
        let mut found = Vec::new();
        let mut seen = BTreeSet::new();
        let mut todo = vec![pc + 1];
        while let Some(pc) = todo.pop() {
            let Some(&i) = program.get(pc) else { continue };
            if i.code == LD_W_ABS || i.code == RET_K || !seen.insert(pc) {
                continue;
            }
            if i.code != JA {
                found.push(i.k);
            }
            todo.extend(successors(program, pc).unwrap_or_default());
        }
        found
    }

    /// The first input the two programs decide differently, if any.
    fn difference(old: &[Insn], new: &[Insn], seed: u64) -> Option<String> {
        let mut state = seed | 1;
        first_difference(old, new, &probes(&[old, new], &mut state))
    }

    fn first_difference(old: &[Insn], new: &[Insn], probes: &[[u8; DATA_LEN]]) -> Option<String> {
        probes.iter().find_map(|data| {
            let (a, b) = (run(old, data), run(new, data));
            (a != b || a.is_none()).then(|| {
                let nr = u32::from_ne_bytes(data[..4].try_into().unwrap());
                let arch = u32::from_ne_bytes(data[4..8].try_into().unwrap());
                format!("nr {nr:#x} arch {arch:#x} data {data:?}: {a:x?} then {b:x?}")
            })
        })
    }

    #[test]
    fn dockers_default_becomes_a_third_as_long_and_decides_the_same_for_any_input() {
        let old = docker_default();
        let new = decode(&compact(&encode(&old)));
        assert!(new.len() * 3 < old.len(), "{} -> {}", old.len(), new.len());
        assert_eq!(difference(&old, &new, 7), None);
    }

    #[test]
    fn dockers_default_keeps_its_verdicts_on_every_abi() {
        let new = decode(&compact(&encode(&docker_default())));
        let verdict = |nr: u32, arch: u32, arg0: u64| {
            let mut words = [0u32; 14];
            words[2] = arg0 as u32;
            words[3] = (arg0 >> 32) as u32;
            run(&new, &data(nr, arch, &words)).unwrap()
        };
        let eperm = ERRNO | libc::EPERM as u32;
        // getpid, keyctl, add_key, unshare, personality on x86_64, x32, x86.
        for (arch, base, [getpid, keyctl, add_key, unshare, personality]) in [
            (X86_64, 0, [39, 250, 248, 272, 135]),
            (X86_64, X32_BIT, [39, 250, 248, 272, 135]),
            (I386, 0, [20, 288, 286, 310, 136]),
        ] {
            let at = |nr: u32| base + nr;
            assert_eq!(
                verdict(at(getpid), arch, 0),
                ALLOW,
                "getpid {arch:#x}+{base:#x}"
            );
            for nr in [keyctl, add_key] {
                assert_eq!(verdict(at(nr), arch, 0), eperm, "{nr} {arch:#x}+{base:#x}");
            }
            assert_eq!(verdict(at(unshare), arch, 0x1000_0000), eperm);
            for persona in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
                assert_eq!(
                    verdict(at(personality), arch, persona),
                    ALLOW,
                    "{persona:#x}"
                );
            }
            for persona in [0x0040_0000, 0x20009, 9] {
                assert_eq!(
                    verdict(at(personality), arch, persona),
                    eperm,
                    "{persona:#x}"
                );
            }
        }
        // A 64-bit argument is compared whole (an x86 one has no upper half).
        assert_eq!(verdict(135, X86_64, 0x1_0000_0000), eperm);
        // clone: without namespace flags only.
        assert_eq!(verdict(56, X86_64, 0x11), ALLOW);
        assert_eq!(verdict(56, X86_64, 0x1000_0011), eperm);
        // Above every syscall, negative, and an architecture not filtered.
        for nr in [1023, 0x3fff_ffff, X32_BIT + 1023, 0x8000_0000, u32::MAX] {
            assert_eq!(verdict(nr, X86_64, 0), eperm, "{nr:#x}");
        }
        assert_eq!(verdict(39, AARCH64, 0), 0, "an unknown ABI is killed");
    }

    #[test]
    fn the_check_refuses_a_program_that_differs_only_for_arguments() {
        // personality(0x20008) allowed in libseccomp's program, refused in
        // this one: the comparison's constant is off by one.
        let old = docker_default();
        let mut new = decode(&compact(&encode(&old)));
        let at = new
            .iter()
            .position(|i| i.code == JEQ_K && i.k == 0x20008)
            .unwrap();
        new[at].k += 1;
        assert!(difference(&old, &new, 1).is_some());
        assert!(!equivalent(&old, &new));
    }

    #[test]
    fn the_check_tries_every_abi_the_program_names() {
        // libseccomp's program reaches x86's dispatch after a jump: a tree
        // that allows x86's add_key, request_key and keyctl is refused.
        let old = docker_default();
        let mut new = decode(&compact(&encode(&old)));
        let x86 = new
            .iter()
            .rposition(|i| i.code == LD_W_ABS && i.k == NR)
            .unwrap();
        let node = (x86..new.len())
            .find(|&pc| new[pc].code == JGE_K && (285..=286).contains(&new[pc].k))
            .unwrap();
        new[node].k = 289;
        let add_key = data(286, I386, &[0; 14]);
        assert_eq!(run(&new, &add_key), Some(ALLOW));
        assert_eq!(run(&old, &add_key), Some(ERRNO | libc::EPERM as u32));
        assert!(!equivalent(&old, &new));
    }

    #[test]
    fn every_change_to_the_compacted_default_the_check_accepts_decides_the_same() {
        let old = docker_default();
        let new = decode(&compact(&encode(&old)));
        // Any change by one of a comparison's constant moves a bound
        // next to one already probed.
        let probes = probes(&[&old, &new], &mut 5);
        let mut accepted = 0;
        for at in 0..new.len() {
            let i = new[at];
            // Off by one: a bound, a target.
            let mut changes = vec![Insn {
                k: i.k.wrapping_add(1),
                ..i
            }];
            if is_compare(i.code) {
                changes.extend([
                    Insn {
                        jt: i.jt.wrapping_add(1),
                        ..i
                    },
                    Insn {
                        jf: i.jf.wrapping_add(1),
                        ..i
                    },
                ]);
            }
            for change in changes {
                let mut changed = new.clone();
                changed[at] = change;
                if equivalent(&old, &changed) {
                    accepted += 1;
                    let found = first_difference(&old, &changed, &probes);
                    assert_eq!(found, None, "{at}: {change:?}");
                }
            }
        }
        // Some changes decide the same (the bound of a comparison whose
        // both sides end alike, a jump between returns of one verdict).
        assert!(accepted < 100, "{accepted}");
    }

    /// A profile of random rules: syscalls from docker's lists, each in
    /// one rule, with random actions and argument comparisons, a random
    /// default, on a random choice of ABIs.
    fn random_profile(state: &mut u64) -> Profile {
        let mut names: Vec<String> = default_profile()
            .rules
            .into_iter()
            .flat_map(|r| r.names)
            .collect();
        names.sort_unstable();
        names.dedup();
        let actions = [
            Action::Allow,
            Action::Errno,
            Action::KillThread,
            Action::KillProcess,
            Action::Trap,
            Action::Log,
        ];
        let values = [
            0,
            1,
            8,
            40,
            0x20008,
            0xffff_ffff,
            1 << 32,
            u64::MAX,
            0x7e02_0000,
        ];
        let ops = [Op::Ne, Op::Lt, Op::Le, Op::Eq, Op::Ge, Op::Gt, Op::MaskedEq];
        let mut rules = Vec::new();
        let density = 1 + next(state) % 4;
        while !names.is_empty() {
            let take = (1 + next(state) as usize % 120).min(names.len());
            let mut rule_names = Vec::new();
            for _ in 0..take {
                let at = next(state) as usize % names.len();
                rule_names.push(names.swap_remove(at));
            }
            if next(state) % 4 >= density {
                continue;
            }
            let args = if next(state) % 3 == 0 {
                (0..1 + next(state) % 3)
                    .map(|_| Arg {
                        index: (next(state) % 6) as u32,
                        value: pick(state, &values),
                        value_two: pick(state, &values),
                        op: pick(state, &ops),
                    })
                    .collect()
            } else {
                vec![]
            };
            rules.push(Rule {
                names: rule_names,
                action: pick(state, &actions),
                errno: (next(state) % 2 == 0).then(|| (next(state) % 200) as u16),
                args,
                includes: Condition::default(),
                excludes: Condition::default(),
            });
        }
        let mut arches = vec!["SCMP_ARCH_X86_64".to_string()];
        for arch in ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"] {
            if next(state) % 2 == 0 {
                arches.push(arch.into());
            }
        }
        Profile {
            default_action: pick(state, &actions),
            default_errno: (next(state) % 2 == 0).then(|| (next(state) % 200) as u16),
            arches,
            rules,
        }
    }

    #[test]
    fn random_profiles_rewrite_to_programs_that_decide_as_libseccomps() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let (mut compiled, mut rewritten) = (0, 0);
        for round in 0..40 {
            let profile = random_profile(&mut state);
            let Ok(bytes) = compile_exported(&profile, &conditions()) else {
                continue;
            };
            compiled += 1;
            let old = decode(&bytes);
            let Some(new) = rewrite(&old) else { continue };
            rewritten += 1;
            if let Some(diff) = difference(&old, &new, round) {
                panic!("round {round}: {diff}\n{profile:?}");
            }
            assert!(equivalent(&old, &new), "round {round}: {profile:?}");
            let compacted = compact(&bytes);
            assert!(compacted == bytes || compacted == encode(&new));
        }
        // The rest keep libseccomp's program: comparisons shared between
        // dispatches, or jumps the longer trees put out of reach.
        assert!(compiled >= 30 && rewritten >= 10, "{compiled} {rewritten}");
    }

    #[test]
    fn a_range_ending_beyond_a_jumps_reach_goes_by_way_of_the_trees_jump() {
        // LD nr; JEQ 0, 2, 4 … 198 -> JA ALLOW, else on to 300 loads of an
        // argument, then KILL; ALLOW last. 200 ranges: the tree's
        // comparisons reach ALLOW, 300 instructions on, only by the jump
        // laid after the tree.
        let evens = 100;
        let filler = 300;
        let mut program = vec![insn(LD_W_ABS, 0, 0, NR)];
        for n in 0..evens {
            let to_ja = (evens - 1 - n) as u8;
            let jf = if n + 1 == evens { 1 } else { 0 };
            program.push(insn(JEQ_K, to_ja, jf, 2 * n));
        }
        program.push(insn(JA, 0, 0, filler + 1));
        program.extend((0..filler).map(|_| insn(LD_W_ABS, 0, 0, 16)));
        program.push(insn(RET_K, 0, 0, 0));
        program.push(insn(RET_K, 0, 0, ALLOW));
        let new = rewrite(&program).unwrap();
        assert!(
            new.iter().any(|i| i.code == JA && i.k > filler),
            "the jump to ALLOW"
        );
        for nr in (0..2 * evens + 2).chain([u32::MAX]) {
            let data = data(nr, X86_64, &[0; 14]);
            assert_eq!(run(&program, &data), run(&new, &data), "{nr}");
        }
        assert!(equivalent(&program, &new));
    }

    #[test]
    fn a_bit_test_is_proved_only_against_the_same_bit_test() {
        // LD arg0; JSET 0x10 -> KILL; ALLOW. Bits are not intervals: the
        // proof takes the same JSET, whatever jumps lead to it.
        let program = |bits: u32, hop: bool| {
            let mut p = vec![insn(LD_W_ABS, 0, 0, 16)];
            if hop {
                p.push(insn(JA, 0, 0, 0));
            }
            p.extend([
                insn(JSET_K, 0, 1, bits),
                insn(RET_K, 0, 0, 0),
                insn(RET_K, 0, 0, ALLOW),
            ]);
            p
        };
        assert!(equivalent(&program(0x10, false), &program(0x10, true)));
        assert!(!equivalent(&program(0x10, false), &program(0x30, false)));
        assert!(!equivalent(&program(0x10, false), &program(0x08, true)));
    }

    #[test]
    fn a_program_the_kernel_would_refuse_is_not_taken() {
        let ret = insn(RET_K, 0, 0, ALLOW);
        // A jump past the end, a load outside the data, no return last.
        for program in [
            vec![insn(JEQ_K, 0, 1, 0), ret],
            vec![insn(LD_W_ABS, 0, 0, 64), ret],
            vec![insn(LD_W_ABS, 0, 0, 2), ret],
            vec![ret, insn(LD_W_ABS, 0, 0, 0)],
            vec![ret; MAX_INSNS + 1],
        ] {
            assert!(!equivalent(&program, &program), "{program:?}");
        }
        assert!(equivalent(&[ret], &[ret]));
    }

    #[test]
    fn a_program_it_does_not_know_is_kept_as_it_is() {
        // LD nr; JEQ 1; RET ALLOW; TAX (unknown); RET KILL
        let program = [
            insn(LD_W_ABS, 0, 0, NR),
            insn(JEQ_K, 0, 1, 1),
            insn(RET_K, 0, 0, ALLOW),
            insn(0x07, 0, 0, 0),
            insn(RET_K, 0, 0, 0),
        ];
        let bytes = encode(&program);
        assert_eq!(compact(&bytes), bytes);
    }

    #[test]
    fn runs_of_numbers_become_one_range_each() {
        // LD nr; JEQ 1, JEQ 2, JEQ 3 -> ALLOW; else KILL
        let program = [
            insn(LD_W_ABS, 0, 0, NR),
            insn(JEQ_K, 2, 0, 1),
            insn(JEQ_K, 1, 0, 2),
            insn(JEQ_K, 0, 1, 3),
            insn(RET_K, 0, 0, ALLOW),
            insn(RET_K, 0, 0, 0),
        ];
        let dispatch = Dispatch::at(&program, 0).unwrap();
        assert_eq!(dispatch.ranges, vec![(0, 5), (1, 4), (4, 5)]);
        // Longer here (one range of one syscall each side): not kept by
        // `compact`, but it decides the same.
        let new = rewrite(&program).unwrap();
        assert_eq!(new.iter().filter(|i| is_compare(i.code)).count(), 2);
        assert_eq!(difference(&program, &new, 3), None);
        assert!(equivalent(&program, &new));
    }
}
