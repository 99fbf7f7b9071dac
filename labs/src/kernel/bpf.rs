//! eBPF: small programs the kernel checks, then runs at a hook. contlab loads one kind,
//! `BPF_PROG_TYPE_CGROUP_DEVICE`: attached to a cgroup v2 group, it runs at every
//! open or mknod of a device node by the group's processes and answers allow (1) or
//! deny (0). It is what cgroup v1's `devices.allow` file became.
//!
//! `bpf(2)` takes a command and a `union bpf_attr`; there is no wrapper in glibc or
//! nix, so it is called with `syscall(2)`, as runc (through cilium/ebpf) and crun do.
//! <https://docs.kernel.org/bpf/prog_cgroup_device.html> (hook)
//! <https://man7.org/linux/man-pages/man2/bpf.2.html>

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use super::trace::quote;
use super::{Call, Effect, Errno, Kernel, Kind, SysError};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// One eBPF instruction, `struct bpf_insn`: an opcode, the destination and source
/// registers (4 bits each), a signed offset and a 32-bit immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct BpfInsn {
    /// Opcode: class | operation | source (`BPF_JMP|BPF_JNE|BPF_K`).
    pub code: u8,
    /// `src << 4 | dst`.
    pub regs: u8,
    /// Jump offset, or memory offset.
    pub off: i16,
    /// Immediate operand.
    pub imm: i32,
}

/// `union bpf_attr` for BPF_PROG_LOAD, as far as contlab fills it.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// A loaded program: its descriptor (`None` in a dry run) and its number.
#[derive(Debug)]
pub struct BpfProg {
    fd: Option<OwnedFd>,
    num: i32,
}

impl Kernel {
    /// `bpf(BPF_PROG_LOAD)` of a `BPF_PROG_TYPE_CGROUP_DEVICE` program: the kernel's
    /// verifier checks it (every path ends, every read is in bounds) and answers a
    /// descriptor, or EINVAL/EACCES with its reasons in the log returned as the hint.
    #[doc(alias = "bpf")]
    pub fn bpf_load_device_program(&self, insns: &[BpfInsn], name: &str) -> Result<BpfProg, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "bpf",
            man: "bpf(2)",
            what: "load an eBPF program, after the kernel's verifier has proved it safe",
            effect: Effect::Change,
        };
        let words: Vec<String> =
            insns.iter().take(6).map(|i| format!("{{0x{:02x}, {}, {}, {}}}", i.code, i.regs, i.off, i.imm)).collect();
        let more = if insns.len() > 6 { format!(", ... {} more", insns.len() - 6) } else { String::new() };
        let args = vec![
            "BPF_PROG_LOAD".into(),
            format!(
                "{{prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt={}, insns=[{}{more}], license=\"Apache-2.0\", prog_name={}}}",
                insns.len(),
                words.join(", "),
                quote(name, 16)
            ),
            std::mem::size_of::<ProgLoad>().to_string(),
        ];
        self.perform(
            &C,
            args,
            || BpfProg { fd: None, num: 7 },
            || {
                let license = c"Apache-2.0";
                let mut attr = ProgLoad {
                    prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
                    insn_cnt: insns.len() as u32,
                    insns: insns.as_ptr() as u64,
                    license: license.as_ptr() as u64,
                    ..Default::default()
                };
                for (d, s) in attr.prog_name.iter_mut().zip(name.bytes().take(15)) {
                    *d = s;
                }
                // SAFETY: attr points to valid instructions and a NUL-terminated
                // license for the duration of the call; its size is given.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_bpf,
                        BPF_PROG_LOAD,
                        &attr as *const ProgLoad,
                        std::mem::size_of::<ProgLoad>(),
                    )
                };
                if r < 0 {
                    return Err(Errno::last());
                }
                // SAFETY: the kernel just returned this new descriptor.
                let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(r as i32) };
                Ok(BpfProg { num: fd.as_raw_fd(), fd: Some(fd) })
            },
            |p| p.num.to_string(),
        )
    }

    /// `bpf(BPF_PROG_ATTACH)` with `BPF_CGROUP_DEVICE`: the program decides, from now
    /// on, which devices the processes of the cgroup `dir` (and its children) may open
    /// or make. `BPF_F_ALLOW_MULTI`: programs attached above still run too (a device
    /// is allowed only if every one of them allows it). The attachment lives as long as
    /// the group; the descriptors may be closed.
    #[doc(alias = "bpf")]
    pub fn bpf_attach_device_program(&self, dir: &Path, prog: &BpfProg) -> Result<(), SysError> {
        const OPEN: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "open the cgroup's directory: bpf(2) names the group by a descriptor",
            effect: Effect::Change,
        };
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "bpf",
            man: "bpf(2)",
            what: "attach the program to the cgroup: it now rules the group's device access",
            effect: Effect::Change,
        };
        let shown = quote(&dir.to_string_lossy(), 256);
        let group: (Option<OwnedFd>, i32) = self.perform(
            &OPEN,
            vec!["AT_FDCWD".into(), shown.clone(), "O_RDONLY|O_DIRECTORY|O_CLOEXEC".into()],
            || (None, 8),
            || {
                let fd = nix::fcntl::open(
                    dir,
                    nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )?;
                let n = fd.as_raw_fd();
                Ok((Some(fd), n))
            },
            |g| g.1.to_string(),
        )?;
        self.perform(
            &C,
            vec![
                "BPF_PROG_ATTACH".into(),
                format!(
                    "{{target_fd={}<{}>, attach_bpf_fd={}, attach_type=BPF_CGROUP_DEVICE, attach_flags=BPF_F_ALLOW_MULTI}}",
                    group.1,
                    dir.display(),
                    prog.num
                ),
                std::mem::size_of::<ProgAttach>().to_string(),
            ],
            || (),
            || {
                let (Some(g), Some(p)) = (&group.0, &prog.fd) else { return Err(Errno::EBADF) };
                let attr = ProgAttach {
                    target_fd: g.as_raw_fd() as u32,
                    attach_bpf_fd: p.as_raw_fd() as u32,
                    attach_type: BPF_CGROUP_DEVICE,
                    attach_flags: BPF_F_ALLOW_MULTI,
                    replace_bpf_fd: 0,
                };
                // SAFETY: a valid bpf_attr of the size given.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_bpf,
                        BPF_PROG_ATTACH,
                        &attr as *const ProgAttach,
                        std::mem::size_of::<ProgAttach>(),
                    )
                };
                if r < 0 {
                    Err(Errno::last())
                } else {
                    Ok(())
                }
            },
            |_| "0".into(),
        )
    }
}
