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
//! checks it all the same, running both programs over every architecture
//! the program names and every range boundary, and keeps the original on
//! any difference, or on anything it does not know.

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
const ARCH: u32 = 4;
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
        Some(new) if new.len() < program.len() && same_decisions(&program, &new) => encode(&new),
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

/// What `program` returns for `data`; None for an instruction this module
/// does not know, or a jump out of the program.
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

/// Whether `old` and `new` return the same for every architecture either
/// names and every number at a boundary of their comparisons, with the
/// arguments at each of a few patterns.
fn same_decisions(old: &[Insn], new: &[Insn]) -> bool {
    let constants: BTreeSet<u32> = old
        .iter()
        .chain(new)
        .filter(|i| is_compare(i.code))
        .flat_map(|i| [i.k.wrapping_sub(1), i.k, i.k.wrapping_add(1)])
        .chain([0, u32::MAX])
        .collect();
    // The constants compared right after a load of the architecture.
    let arches: BTreeSet<u32> = old
        .iter()
        .enumerate()
        .filter(|(_, i)| i.code == LD_W_ABS && i.k == ARCH)
        .flat_map(|(pc, _)| old[pc + 1..].iter().take_while(|i| is_compare(i.code)))
        .map(|i| i.k)
        .chain([0])
        .collect();
    let patterns: [u64; 3] = [0, u64::MAX, 0x7e02_0000];
    for &arch in &arches {
        for &nr in &constants {
            for &pattern in &patterns {
                let mut data = [0u8; DATA_LEN];
                data[NR as usize..4].copy_from_slice(&nr.to_ne_bytes());
                data[ARCH as usize..8].copy_from_slice(&arch.to_ne_bytes());
                for arg in 0..6 {
                    let at = 16 + arg * 8;
                    data[at..at + 8].copy_from_slice(&pattern.to_ne_bytes());
                }
                match (run(old, &data), run(new, &data)) {
                    (Some(a), Some(b)) if a == b => {}
                    _ => return false,
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::{Target as Conditions, compile_exported, default_profile};

    fn docker_default() -> Vec<u8> {
        let target = Conditions {
            caps: vec!["CAP_CHOWN".into(), "CAP_NET_BIND_SERVICE".into()],
            kernel: (6, 18),
        };
        compile_exported(&default_profile(), &target).unwrap()
    }

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// A small deterministic generator, for arguments.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn dockers_default_becomes_a_third_as_long_and_decides_the_same_for_any_arguments() {
        let old = decode(&docker_default());
        let new = decode(&compact(&encode(&old)));
        assert!(new.len() * 3 < old.len(), "{} -> {}", old.len(), new.len());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let arches: [u32; 4] = [0xc000_003e, 0x4000_0003, 0, 0x1234];
        for nr in (0..1100).chain(0x4000_0000..0x4000_0400).chain([u32::MAX]) {
            for arch in arches {
                for _ in 0..3 {
                    let mut data = [0u8; DATA_LEN];
                    data[..4].copy_from_slice(&nr.to_ne_bytes());
                    data[4..8].copy_from_slice(&arch.to_ne_bytes());
                    for byte in data[8..].chunks_mut(8) {
                        // Small values, flags and anything: what the
                        // argument comparisons tell apart.
                        let value = match next(&mut state) % 3 {
                            0 => next(&mut state) % 64,
                            1 => 1 << (next(&mut state) % 64),
                            _ => next(&mut state),
                        };
                        byte.copy_from_slice(&value.to_ne_bytes());
                    }
                    assert_eq!(run(&old, &data), run(&new, &data), "nr {nr} arch {arch:#x}");
                }
            }
        }
    }

    #[test]
    fn a_program_it_does_not_know_is_kept_as_it_is() {
        // LD nr; JEQ 1; RET ALLOW; TAX (unknown); RET KILL
        let program = [
            insn(LD_W_ABS, 0, 0, NR),
            insn(JEQ_K, 0, 1, 1),
            insn(RET_K, 0, 0, 0x7fff_0000),
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
            insn(RET_K, 0, 0, 0x7fff_0000),
            insn(RET_K, 0, 0, 0),
        ];
        let dispatch = Dispatch::at(&program, 0).unwrap();
        assert_eq!(dispatch.ranges, vec![(0, 5), (1, 4), (4, 5)]);
        // Longer here (one range of one syscall each side): not kept by
        // `compact`, but it decides the same.
        let new = rewrite(&program).unwrap();
        assert_eq!(new.iter().filter(|i| is_compare(i.code)).count(), 2);
        for nr in 0..6u32 {
            let mut data = [0u8; DATA_LEN];
            data[..4].copy_from_slice(&nr.to_ne_bytes());
            assert_eq!(run(&new, &data), run(&program, &data), "{nr}");
        }
    }
}
