//! eBPF instructions, encoded by hand: the few forms the connect6 hook
//! uses, each named for what it does, and forward jumps to labels resolved
//! when the program is finished.

/// One instruction as the kernel reads it (`struct bpf_insn`): opcode,
/// destination and source registers (4 bits each), offset, immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

/// A register: r0 (return value), r1-r5 (arguments, clobbered by calls),
/// r6-r9 (kept across calls), r10 (frame pointer, read only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u8);

pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R6: Reg = Reg(6);
pub const R10: Reg = Reg(10);

// Opcodes: class | size or operation | source.
const LDX_MEM_W: u8 = 0x61;
const LDX_MEM_DW: u8 = 0x79;
const STX_MEM_W: u8 = 0x63;
const ALU64_MOV_X: u8 = 0xbf;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_ADD_K: u8 = 0x07;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_K: u8 = 0x55;
const JMP_JNE_X: u8 = 0x5d;
const JMP_CALL: u8 = 0x85;
const JMP_EXIT: u8 = 0x95;
const LD_IMM_DW: u8 = 0x18;
/// In `LD_IMM_DW`'s source register: the immediate is a map's fd, which
/// the kernel replaces with the map's address (BPF_PSEUDO_MAP_FD).
const PSEUDO_MAP_FD: u8 = 1;

fn insn(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst.0 | (src.0 << 4),
        off,
        imm,
    }
}

/// A place to jump to, bound once with [`Program::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// A program being written: instructions and the jumps still to resolve.
#[derive(Debug, Default)]
pub struct Program {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    /// (the jump's index, its label)
    jumps: Vec<(usize, Label)>,
}

impl Program {
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// The next instruction is where `label` jumps to.
    pub fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    /// `dst = *(u32 *)(src + off)`, zero-extended.
    pub fn load32(&mut self, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(insn(LDX_MEM_W, dst, src, off, 0))
    }

    /// `dst = *(u64 *)(src + off)`.
    pub fn load64(&mut self, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(insn(LDX_MEM_DW, dst, src, off, 0))
    }

    /// `*(u32 *)(dst + off) = src`.
    pub fn store32(&mut self, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(insn(STX_MEM_W, dst, src, off, 0))
    }

    /// `dst = src`.
    pub fn mov(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(insn(ALU64_MOV_X, dst, src, 0, 0))
    }

    /// `dst = imm` (sign-extended).
    pub fn mov_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(insn(ALU64_MOV_K, dst, Reg(0), 0, imm))
    }

    /// `dst += imm`.
    pub fn add_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(insn(ALU64_ADD_K, dst, Reg(0), 0, imm))
    }

    /// `dst = imm`, all 64 bits (two instruction slots).
    pub fn mov_imm64(&mut self, dst: Reg, imm: u64) -> &mut Self {
        self.wide(dst, Reg(0), imm)
    }

    /// `dst = the map whose fd is map_fd`, for a helper's map argument.
    pub fn map(&mut self, dst: Reg, map_fd: i32) -> &mut Self {
        self.wide(dst, Reg(PSEUDO_MAP_FD), map_fd as u32 as u64)
    }

    fn wide(&mut self, dst: Reg, src: Reg, imm: u64) -> &mut Self {
        self.push(insn(LD_IMM_DW, dst, src, 0, imm as u32 as i32));
        self.push(insn(0, Reg(0), Reg(0), 0, (imm >> 32) as u32 as i32))
    }

    /// `if dst != imm goto to` (imm sign-extended to 64 bits).
    pub fn jne_imm(&mut self, dst: Reg, imm: i32, to: Label) -> &mut Self {
        self.jump(insn(JMP_JNE_K, dst, Reg(0), 0, imm), to)
    }

    /// `if dst == imm goto to`.
    pub fn jeq_imm(&mut self, dst: Reg, imm: i32, to: Label) -> &mut Self {
        self.jump(insn(JMP_JEQ_K, dst, Reg(0), 0, imm), to)
    }

    /// `if dst != src goto to`.
    pub fn jne(&mut self, dst: Reg, src: Reg, to: Label) -> &mut Self {
        self.jump(insn(JMP_JNE_X, dst, src, 0, 0), to)
    }

    /// Calls helper `helper` (BPF_FUNC_*): arguments in r1-r5, result in r0.
    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.push(insn(JMP_CALL, Reg(0), Reg(0), 0, helper))
    }

    pub fn exit(&mut self) -> &mut Self {
        self.push(insn(JMP_EXIT, Reg(0), Reg(0), 0, 0))
    }

    fn push(&mut self, insn: Insn) -> &mut Self {
        self.insns.push(insn);
        self
    }

    fn jump(&mut self, insn: Insn, to: Label) -> &mut Self {
        self.jumps.push((self.insns.len(), to));
        self.push(insn)
    }

    /// The instructions, every jump resolved.
    ///
    /// # Panics
    /// When a label was jumped to but never bound, or a jump goes further
    /// than an offset holds: a mistake in the program's code, not in input.
    pub fn finish(mut self) -> Vec<Insn> {
        for (at, label) in &self.jumps {
            let target = self.labels[label.0].expect("every label jumped to is bound");
            // Relative to the instruction after the jump.
            let off = target as isize - *at as isize - 1;
            self.insns[*at].off = i16::try_from(off).expect("a jump within an offset's range");
        }
        self.insns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_jump_counts_from_the_instruction_after_it() {
        let mut p = Program::default();
        let out = p.label();
        p.jne_imm(R2, 6, out).mov_imm(R0, 0).exit();
        p.bind(out);
        p.mov_imm(R0, 1).exit();
        let insns = p.finish();
        assert_eq!(insns[0], insn(JMP_JNE_K, R2, Reg(0), 2, 6));
    }

    #[test]
    fn a_wide_immediate_takes_two_slots_low_half_first() {
        let mut p = Program::default();
        p.mov_imm64(R2, 0x1122_3344_5566_7788).map(R1, 7);
        let insns = p.finish();
        assert_eq!(insns.len(), 4);
        assert_eq!(insns[0].imm as u32, 0x5566_7788);
        assert_eq!(insns[1].imm as u32, 0x1122_3344);
        assert_eq!((insns[2].regs, insns[2].imm), (1 | (1 << 4), 7));
    }
}
