//! Device rules on cgroup v2: an eBPF program instead of `devices.allow`.
//!
//! cgroup v1 keeps a device allow-list per group in two files. cgroup v2 has no such
//! file: at every `open(2)` or `mknod(2)` of a device node, the kernel runs the
//! `BPF_PROG_TYPE_CGROUP_DEVICE` programs attached to the process's group (and its
//! ancestors), with a context of three 32-bit words
//! (`struct bpf_cgroup_dev_ctx`):
//!
//! | offset | word | here |
//! |---|---|---|
//! | 0 | `access_type`: `type \| access << 16` | type 1 block, 2 char; access 1 mknod, 2 read, 4 write |
//! | 4 | `major` | |
//! | 8 | `minor` | |
//!
//! The program answers 1 (allowed) or 0 (`EPERM`). runc and crun generate one from the
//! container's rules; so does [`program`], the same rules cgroup v1 gets, in the same
//! order, first match wins, nothing matched denied:
//!
//! ```text
//!   r2 = *(u32 *)(r1 + 0)   ; access_type
//!   r2 &= 0xffff            ; the type
//!   r3 = *(u32 *)(r1 + 0)
//!   r3 >>= 16               ; the access asked for
//!   r4 = *(u32 *)(r1 + 4)   ; major
//!   r5 = *(u32 *)(r1 + 8)   ; minor
//!   ; one block per rule ("c 1:3 rwm"):
//!   if r2 != 2 goto next    ; a character device...
//!   r6 = r3; r6 &= 7        ; ...asking only for access the rule gives
//!   if r6 != r3 goto next
//!   if r4 != 1 goto next    ; major 1
//!   if r5 != 3 goto next    ; minor 3
//!   r0 = 1; exit            ; allowed
//! next:
//!   ...
//!   r0 = 0; exit            ; no rule matched
//! ```
//!
//! The instructions are encoded here by hand: ten kinds of them, `struct bpf_insn`'s
//! eight bytes each. (A crate such as aya brings a loader and an ELF toolchain for
//! programs written in C or Rust; this one is smaller than its build.)
//! <https://docs.kernel.org/bpf/prog_cgroup_device.html>

use super::limits::{DeviceKind, DeviceRule};
use crate::kernel::BpfInsn;

// Opcodes: class | size/operation | source.
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn { code, regs: (src << 4) | dst, off, imm }
}

/// The program for `rules` (see the module documentation).
pub fn program(rules: &[DeviceRule]) -> Vec<BpfInsn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules {
        // The block's tests, each a jump over the rest of the block when it fails.
        let mut tests: Vec<Vec<BpfInsn>> = Vec::new();
        match r.kind {
            DeviceKind::Char => tests.push(vec![insn(JNE_K, 2, 0, 0, 2)]),
            DeviceKind::Block => tests.push(vec![insn(JNE_K, 2, 0, 0, 1)]),
            DeviceKind::All => {}
        }
        let mask = r.access.chars().fold(0, |m, c| {
            m | match c {
                'm' => 1,
                'r' => 2,
                'w' => 4,
                _ => 0,
            }
        });
        if mask != 7 {
            tests.push(vec![insn(MOV32_X, 6, 3, 0, 0), insn(AND32_K, 6, 0, 0, mask), insn(JNE_X, 6, 3, 0, 0)]);
        }
        if let Some(m) = r.major {
            tests.push(vec![insn(JNE_K, 4, 0, 0, m as i32)]);
        }
        if let Some(m) = r.minor {
            tests.push(vec![insn(JNE_K, 5, 0, 0, m as i32)]);
        }
        let allow = [insn(MOV64_K, 0, 0, 0, 1), insn(EXIT, 0, 0, 0, 0)];
        if tests.is_empty() {
            // `a` (or `c *:* rwm`...): everything matches. The verifier refuses code
            // that no path reaches, so nothing may follow.
            p.extend(allow);
            return p;
        }
        let mut block: Vec<BpfInsn> = tests.concat();
        block.extend(allow);
        // Each test's jump lands just past the block: its offset counts the
        // instructions after it.
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K || ins.code == JNE_X {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::limits::parse_device_rule;

    /// What the kernel would answer: the program run on a context, by a tiny
    /// interpreter of the instructions [`program`] emits.
    fn run(p: &[BpfInsn], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [kind | access << 16, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = ctx[(i.off / 4) as usize] as u64,
                AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                MOV32_X => r[dst] = r[src] as u32 as u64,
                MOV64_K => r[dst] = i.imm as u64,
                JNE_K if r[dst] != i.imm as u32 as u64 => pc += i.off as usize,
                JNE_X if r[dst] != r[src] => pc += i.off as usize,
                JNE_K | JNE_X => {}
                EXIT => return r[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn the_rules_allow_what_they_name_and_nothing_else() {
        let rules: Vec<DeviceRule> =
            ["c 1:3 rwm", "c 136:* rw", "b 7:0 r"].iter().map(|r| parse_device_rule(r).unwrap()).collect();
        let p = program(&rules);
        let (c, b, read, write, mknod) = (2, 1, 2, 4, 1);
        assert_eq!(run(&p, c, read | write, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, c, mknod, 1, 3), 1, "mknod of /dev/null");
        assert_eq!(run(&p, c, read, 1, 5), 0, "/dev/zero: no rule");
        assert_eq!(run(&p, c, write, 136, 42), 1, "any pts");
        assert_eq!(run(&p, c, mknod, 136, 42), 0, "pts without m");
        assert_eq!(run(&p, b, read, 7, 0), 1, "loop0 read");
        assert_eq!(run(&p, b, write, 7, 0), 0, "loop0 write");
        assert_eq!(run(&p, c, read, 7, 0), 0, "a char device of the block's numbers");
        let all = program(&[parse_device_rule("a").unwrap(), parse_device_rule("c 1:3 r").unwrap()]);
        assert_eq!(run(&all, b, read | write | mknod, 8, 0), 1, "a: everything");
        assert_eq!(all.len(), 8, "nothing after a rule that matches everything (the verifier refuses dead code)");
        assert_eq!(run(&program(&[]), c, read, 1, 3), 0, "no rule: nothing");
    }
}
