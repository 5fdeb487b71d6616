//! The compiler and the encoder, no kernel: any input must end in a batch
//! or an error, never a panic, a write past a buffer or a wrapped length.
//!
//! The first byte picks the path:
//! - even: the input is ruleset text, run through lexer, parser, checker
//!   and compiler, which builds the whole batch through libnftnl;
//! - odd: the input drives the encoder directly, past every check the
//!   loader makes: tables, chains, sets, rules and elements with names,
//!   values and user data of any length (lengths come from the input and
//!   may reach a megabyte), so the encoder's own limits are what stands
//!   between libnftnl and memory corruption.
#![no_main]

use std::ffi::CString;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use supervisor::nftables::{
    Batch, Chain, CmpOp, ElemData, Element, Expr, Family, Hook, Mode, Reg, Rule, Set, SetRef,
    Table, Udata, Verdict,
};
use supervisor::ruleset::{self, compile, parser};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    if first % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        let dir = Path::new("/nonexistent-fuzz-include-dir");
        if let Ok(source) = parser::parse_source("fuzz.nft", &text, dir) {
            if let Ok(checked) = ruleset::check(&source) {
                let _ = compile::compile(&checked);
            }
        }
    } else {
        encode(rest);
    }
});

/// Reads the input as a little program of objects to add to one batch.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }

    /// A length: mostly small, sometimes near the limits that matter
    /// (64, 255, 256, 65,535, 65,536), sometimes up to a megabyte.
    fn len(&mut self) -> Option<usize> {
        Some(match self.byte()? {
            0..=199 => usize::from(self.byte()?),
            200..=219 => [63, 64, 65, 254, 255, 256, 257, 65_531, 65_535, 65_536, 65_538, 131_072]
                [usize::from(self.byte()?) % 12],
            _ => (self.u32()? as usize) % (1 << 20),
        })
    }

    /// Bytes of that length: input bytes, then a fill byte.
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.len()?;
        let fill = self.byte()?;
        let take = self.0.len().min(len).min(64);
        let mut out = self.0[..take].to_vec();
        self.0 = &self.0[take..];
        out.resize(len, fill);
        Some(out)
    }

    /// A C string (NULs dropped) of a chosen length.
    fn name(&mut self) -> Option<CString> {
        let mut bytes = self.bytes()?;
        bytes.retain(|&b| b != 0);
        CString::new(bytes).ok()
    }

    fn family(&mut self) -> Option<Family> {
        Some(
            [
                Family::Ip,
                Family::Ip6,
                Family::Inet,
                Family::Bridge,
                Family::Netdev,
            ][usize::from(self.byte()?) % 5],
        )
    }

    fn udata(&mut self) -> Option<Option<Udata>> {
        if self.byte()? % 2 == 0 {
            return Some(None);
        }
        let mut udata = Udata::new();
        for _ in 0..self.byte()? % 4 {
            let ty = self.byte()?;
            udata.put(ty, &self.bytes()?);
        }
        Some(Some(udata))
    }

    fn expr(&mut self) -> Option<Expr> {
        Some(match self.byte()? % 6 {
            0 => Expr::Cmp {
                op: CmpOp::Eq,
                sreg: Reg::R1,
                data: self.bytes()?,
            },
            1 => Expr::Immediate {
                dreg: Reg(self.u32()?),
                data: self.bytes()?,
            },
            2 => Expr::Bitwise {
                sreg: Reg::R1,
                dreg: Reg::R1,
                mask: self.bytes()?,
                xor: self.bytes()?,
            },
            3 => Expr::Lookup {
                set: self.name()?,
                set_id: Some(self.u32()?),
                sreg: Reg::R1,
                dreg: None,
                invert: false,
            },
            4 => Expr::Verdict(Verdict::Jump(self.name()?)),
            _ => Expr::Range {
                op: CmpOp::Eq,
                sreg: Reg::R1,
                from: self.bytes()?,
                to: self.bytes()?,
            },
        })
    }

    fn element(&mut self) -> Option<Element> {
        let mut element = Element::new(self.bytes()?);
        if self.byte()? % 2 == 0 {
            element.key_end = Some(self.bytes()?);
        }
        element.data = match self.byte()? % 3 {
            0 => None,
            1 => Some(ElemData::Value(self.bytes()?)),
            _ => Some(ElemData::Verdict(Verdict::Goto(self.name()?))),
        };
        element.udata = self.udata()?;
        Some(element)
    }
}

fn encode(data: &[u8]) {
    let mut input = Input(data);
    let mut batch = Batch::new();
    let _ = add_objects(&mut input, &mut batch);
    // Whatever was refused, the batch either says so or holds only
    // messages that fit.
    let _ = batch.error();
}

fn add_objects(input: &mut Input<'_>, batch: &mut Batch) -> Option<()> {
    for _ in 0..8 {
        let family = input.family()?;
        match input.byte()? % 6 {
            0 => {
                let mut table = Table::new(family, input.name()?);
                table.udata = input.udata()?;
                batch.add_table(&table, Mode::Add);
            }
            1 => {
                let mut chain = Chain::new(family, input.name()?, input.name()?);
                if input.byte()? % 2 == 0 {
                    chain.hook = Some(Hook {
                        chain_type: input.name()?,
                        hooknum: input.u32()?,
                        priority: input.u32()? as i32,
                        policy: Some(input.u32()?),
                        device: Some(input.name()?),
                    });
                }
                chain.udata = input.udata()?;
                batch.add_chain(&chain, Mode::Add);
            }
            2 => {
                let id = batch.next_set_id();
                let mut set = Set::new(
                    family,
                    input.name()?,
                    input.name()?,
                    id,
                    input.u32()?,
                    input.u32()?,
                );
                set.flags = input.u32()?;
                set.field_lens = (0..input.byte()? % 20)
                    .map(|_| input.u32())
                    .collect::<Option<_>>()?;
                set.timeout_ms = Some(u64::from(input.u32()?));
                set.udata = input.udata()?;
                batch.add_set(&set, Mode::Add);
            }
            3 => {
                let mut rule = Rule::new(family, input.name()?, input.name()?);
                for _ in 0..input.byte()? % 8 {
                    rule.push(input.expr()?);
                }
                rule.udata = input.udata()?;
                let _ = batch.add_rule(&rule);
            }
            4 => {
                let set = SetRef {
                    family,
                    table: input.name()?,
                    name: input.name()?,
                    id: None,
                    is_map: true,
                };
                let elements = (0..input.byte()? % 8)
                    .map(|_| input.element())
                    .collect::<Option<Vec<_>>>()?;
                let _ = batch.add_elements(&set, &elements, Mode::Add);
            }
            _ => {
                batch.delete_table(family, &input.name()?);
            }
        }
    }
    Some(())
}
