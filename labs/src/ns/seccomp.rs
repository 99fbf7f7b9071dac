//! # seccomp: which system calls a container may make
//!
//! Namespaces change what a process *sees*; capabilities what it may do to what it
//! sees. Neither shrinks the kernel's own surface: a container's root still reaches
//! every system call the kernel has, and a bug in one of them (`keyctl`, `bpf`, `vmsplice`,
//! `userfaultfd`...) is a way out for any process that can make it. seccomp ("secure
//! computing") closes that door: a process hands the kernel a small program in the
//! classic BPF language, `seccomp(SECCOMP_SET_MODE_FILTER, ...)`, and from then on the
//! kernel runs that program at the entry of *every* system call of the process (and of
//! all it forks and executes), with the call's number, architecture and arguments as
//! input. The program answers ALLOW, ERRNO(n) (the call fails with that errno, never
//! reaching its code), KILL, TRAP... A filter can never be removed or widened:
//! another one can only be added, and the strictest answer wins.
//!
//! ## docker's default profile
//!
//! docker (and podman, and mini) load an **allow-list**: about 300 calls that ordinary
//! programs make are allowed; every other call fails with `EPERM`. Around it:
//!
//! - calls that only a capability makes useful are allowed only when the container has
//!   that capability (`mount`, `unshare`, `setns` with `CAP_SYS_ADMIN`; `reboot` with
//!   `CAP_SYS_BOOT`; `init_module` with `CAP_SYS_MODULE`; `settimeofday` with
//!   `CAP_SYS_TIME`...): `--cap-add SYS_ADMIN` widens the filter too;
//! - `clone` is allowed, but without CAP_SYS_ADMIN only when its flags ask for no new
//!   namespace (the filter reads the first argument: `flags & CLONE_NEW* == 0`);
//! - `clone3` passes its flags in memory, which a seccomp filter cannot read: it is
//!   answered `ENOSYS` ("no such call"), and the C library falls back to `clone`;
//! - `personality` only with the values programs use.
//!
//! `--security-opt seccomp=unconfined` loads nothing; `--privileged` neither;
//! `--security-opt seccomp=PROFILE.json` loads a profile in docker's JSON format
//! (`defaultAction`, `syscalls: [{names, action, args, includes, excludes}]`).
//!
//! ## How the program is made
//!
//! The profile is turned into BPF by the `seccompiler` crate (rust-vmm's, used by
//! Firecracker): one filter for the allowed calls (anything else: the default action),
//! then one per other action of the profile (ERRNO(ENOSYS) for clone3), each loaded with
//! its own `seccomp(2)`. The kernel runs them all and keeps the strictest answer, and
//! between two ERRNOs the newest filter's errno. mini loads them last before the
//! capabilities are dropped (loading a filter needs CAP_SYS_ADMIN, or no-new-privileges).
//!
//! Reference: <https://man7.org/linux/man-pages/man2/seccomp.2.html>,
//! <https://docs.docker.com/engine/security/seccomp/>.

use std::collections::{BTreeMap, BTreeSet};

use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use seccompiler::sock_filter;

/// A profile in docker's JSON format (the parts mini reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// `SCMP_ACT_ERRNO`, `SCMP_ACT_ALLOW`, `SCMP_ACT_KILL`...
    pub default_action: String,
    /// The errno of a default `SCMP_ACT_ERRNO` (EPERM when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

/// One rule: these calls get this action (when the conditions hold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The calls, by name (names this architecture does not have are skipped).
    pub names: Vec<String>,
    /// The action.
    pub action: String,
    /// The errno of `SCMP_ACT_ERRNO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Conditions on the arguments (all must hold).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
    /// The rule applies only if the container has all these capabilities / runs on
    /// one of these architectures.
    #[serde(default, skip_serializing_if = "Scope::is_empty")]
    pub includes: Scope,
    /// The rule does not apply if the container has one of these capabilities.
    #[serde(default, skip_serializing_if = "Scope::is_empty")]
    pub excludes: Scope,
}

/// `includes` / `excludes` of a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// Capabilities (`CAP_SYS_ADMIN`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// Architectures (`amd64`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
}

impl Scope {
    fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty()
    }
}

/// A condition on argument `index`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    /// Which argument (0..5).
    pub index: u8,
    /// The value compared with.
    pub value: u64,
    /// For `SCMP_CMP_MASKED_EQ`: the value the masked argument must equal.
    #[serde(default)]
    pub value_two: u64,
    /// `SCMP_CMP_EQ`, `SCMP_CMP_NE`, `SCMP_CMP_MASKED_EQ`, `SCMP_CMP_GE`...
    pub op: String,
}

/// The namespace flags of clone(2): what `clone` may not ask for without CAP_SYS_ADMIN.
const CLONE_NAMESPACES: u64 = 0x7E02_0000;

/// The calls docker's default profile allows every container (those this architecture
/// has; the 32-bit and other architectures' names are left out).
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "modify_ldt",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socket",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// Calls allowed only with a capability: (capability, calls).
const WITH_CAP: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_PTRACE", &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev"]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "clock_settime"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

fn allow(names: &[&str]) -> Rule {
    Rule { names: names.iter().map(|n| n.to_string()).collect(), action: "SCMP_ACT_ALLOW".into(), ..Rule::default() }
}

/// docker's default profile, as data (the same rules, written for mini).
pub fn docker_default() -> Profile {
    let mut syscalls = vec![allow(ALLOWED)];
    // personality(2): only the values programs use (Linux, 32-bit personality, their
    // "query" value).
    for v in [0x0u64, 0x0008, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(Rule {
            args: vec![Arg { index: 0, value: v, value_two: 0, op: "SCMP_CMP_EQ".into() }],
            ..allow(&["personality"])
        });
    }
    // clone(2) without a new namespace; clone3(2) answered "no such call".
    syscalls.push(Rule {
        args: vec![Arg { index: 0, value: CLONE_NAMESPACES, value_two: 0, op: "SCMP_CMP_MASKED_EQ".into() }],
        excludes: Scope { caps: vec!["CAP_SYS_ADMIN".into()], arches: vec![] },
        ..allow(&["clone"])
    });
    syscalls.push(Rule {
        names: vec!["clone3".into()],
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: Scope { caps: vec!["CAP_SYS_ADMIN".into()], arches: vec![] },
        ..Rule::default()
    });
    for (cap, names) in WITH_CAP {
        syscalls.push(Rule { includes: Scope { caps: vec![cap.to_string()], arches: vec![] }, ..allow(names) });
    }
    Profile { default_action: "SCMP_ACT_ERRNO".into(), default_errno_ret: Some(libc::EPERM as u32), syscalls }
}

/// Read a profile in docker's JSON format.
pub fn parse(text: &str, path: &str) -> Result<Profile> {
    serde_json::from_str(text).map_err(|e| Error::Failed {
        what: format!("Error response from daemon: Decoding seccomp profile failed: {e} ({path})"),
        hint: Some("give a profile in docker's format: {\"defaultAction\": ..., \"syscalls\": [...]}".into()),
    })
}

fn action(name: &str, errno: Option<u32>) -> Result<SeccompAction> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(errno.unwrap_or(0)),
        other => {
            return Err(Error::Failed {
                what: format!("Error response from daemon: unknown seccomp action {other:?}"),
                hint: Some("SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_TRAP, SCMP_ACT_LOG".into()),
            })
        }
    })
}

fn condition(a: &Arg) -> Result<SeccompCondition> {
    let op = match a.op.as_str() {
        "SCMP_CMP_EQ" => SeccompCmpOp::Eq,
        "SCMP_CMP_NE" => SeccompCmpOp::Ne,
        "SCMP_CMP_GE" => SeccompCmpOp::Ge,
        "SCMP_CMP_GT" => SeccompCmpOp::Gt,
        "SCMP_CMP_LE" => SeccompCmpOp::Le,
        "SCMP_CMP_LT" => SeccompCmpOp::Lt,
        "SCMP_CMP_MASKED_EQ" => SeccompCmpOp::MaskedEq(a.value),
        other => {
            return Err(Error::Failed {
                what: format!("Error response from daemon: unknown seccomp operator {other:?}"),
                hint: None,
            })
        }
    };
    // docker's MASKED_EQ: (arg & value) == valueTwo.
    let value = if a.op == "SCMP_CMP_MASKED_EQ" { a.value_two } else { a.value };
    SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| Error::failed(format!("seccomp condition on argument {}: {e}", a.index), "arguments are 0 to 5"))
}

/// A program as the kernel layer takes it: `(code, jt, jf, k)` per instruction.
pub type Program = Vec<(u16, u8, u8, u32)>;

/// The BPF programs of `profile` for a container with `caps`, in the order to load
/// them; and how many names this architecture does not have (skipped).
pub fn compile(profile: &Profile, caps: &[String]) -> Result<(Vec<Program>, usize)> {
    let default = action(&profile.default_action, profile.default_errno_ret)?;
    // Each action's calls: syscall number → rules (empty: unconditional).
    // Per action: syscall number → its rules (`None`: unconditional).
    type Calls = BTreeMap<i64, Option<Vec<SeccompRule>>>;
    let mut by_action: Vec<(SeccompAction, Calls)> = vec![];
    let mut unknown = BTreeSet::new();
    for r in &profile.syscalls {
        let applies = r.includes.caps.iter().all(|c| caps.contains(c))
            && !r.excludes.caps.iter().any(|c| caps.contains(c))
            && (r.includes.arches.is_empty() || r.includes.arches.iter().any(|a| a == "amd64" || a == "x86_64"))
            && !r.excludes.arches.iter().any(|a| a == "amd64" || a == "x86_64");
        if !applies {
            continue;
        }
        let act = action(&r.action, r.errno_ret)?;
        if act == default {
            continue;
        }
        let conds = r.args.iter().map(condition).collect::<Result<Vec<_>>>()?;
        let idx = match by_action.iter().position(|(a, _)| *a == act) {
            Some(i) => i,
            None => {
                by_action.push((act.clone(), BTreeMap::new()));
                by_action.len() - 1
            }
        };
        for name in &r.names {
            let Some(nr) = number(name) else {
                unknown.insert(name.clone());
                continue;
            };
            let entry = by_action[idx].1.entry(nr).or_insert_with(|| Some(vec![]));
            match (conds.is_empty(), entry.as_mut()) {
                // Unconditional: every use of the call (conditions elsewhere do not matter).
                (true, _) => *entry = None,
                (false, Some(list)) => list.push(
                    SeccompRule::new(conds.clone())
                        .map_err(|e| Error::failed(format!("seccomp rule for {name}: {e}"), "check its args"))?,
                ),
                (false, None) => {}
            }
        }
    }
    // The allowed calls first (anything else: the default action), then each other
    // action's calls (anything else allowed: the first filter decides).
    by_action.sort_by_key(|(a, _)| *a != SeccompAction::Allow);
    let mut programs = vec![];
    for (act, rules) in by_action {
        let rules: BTreeMap<i64, Vec<SeccompRule>> =
            rules.into_iter().map(|(n, r)| (n, r.unwrap_or_default())).collect();
        let (mismatch, matched) = match act {
            SeccompAction::Allow => (default.clone(), SeccompAction::Allow),
            other => (SeccompAction::Allow, other),
        };
        if mismatch == matched {
            continue;
        }
        let f = SeccompFilter::new(rules, mismatch, matched, seccompiler::TargetArch::x86_64)
            .map_err(|e| Error::failed(format!("seccomp filter: {e}"), "check the profile"))?;
        let prog: Vec<sock_filter> = f.try_into().map_err(|e: seccompiler::BackendError| {
            Error::failed(format!("seccomp program: {e}"), "check the profile")
        })?;
        programs.push(prog.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect());
    }
    if programs.is_empty() && default != SeccompAction::Allow {
        // Nothing allowed at all: one filter of the default action.
        let f = SeccompFilter::new(BTreeMap::new(), default, SeccompAction::Allow, seccompiler::TargetArch::x86_64)
            .map_err(|e| Error::failed(format!("seccomp filter: {e}"), "check the profile"))?;
        let prog: Vec<sock_filter> = f.try_into().map_err(|e: seccompiler::BackendError| {
            Error::failed(format!("seccomp program: {e}"), "check the profile")
        })?;
        programs.push(prog.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect());
    }
    Ok((programs, unknown.len()))
}

/// The number of a system call of this architecture (x86_64), by name; `None` for
/// a name it does not have (a 32-bit call, another architecture's).
pub fn number(name: &str) -> Option<i64> {
    const TABLE: &[(&str, i64)] = &[
        ("_sysctl", libc::SYS__sysctl),
        ("accept", libc::SYS_accept),
        ("accept4", libc::SYS_accept4),
        ("access", libc::SYS_access),
        ("acct", libc::SYS_acct),
        ("add_key", libc::SYS_add_key),
        ("adjtimex", libc::SYS_adjtimex),
        ("afs_syscall", libc::SYS_afs_syscall),
        ("alarm", libc::SYS_alarm),
        ("arch_prctl", libc::SYS_arch_prctl),
        ("bind", libc::SYS_bind),
        ("bpf", libc::SYS_bpf),
        ("brk", libc::SYS_brk),
        ("capget", libc::SYS_capget),
        ("capset", libc::SYS_capset),
        ("chdir", libc::SYS_chdir),
        ("chmod", libc::SYS_chmod),
        ("chown", libc::SYS_chown),
        ("chroot", libc::SYS_chroot),
        ("clock_adjtime", libc::SYS_clock_adjtime),
        ("clock_getres", libc::SYS_clock_getres),
        ("clock_gettime", libc::SYS_clock_gettime),
        ("clock_nanosleep", libc::SYS_clock_nanosleep),
        ("clock_settime", libc::SYS_clock_settime),
        ("clone", libc::SYS_clone),
        ("clone3", libc::SYS_clone3),
        ("close", libc::SYS_close),
        ("close_range", libc::SYS_close_range),
        ("connect", libc::SYS_connect),
        ("copy_file_range", libc::SYS_copy_file_range),
        ("creat", libc::SYS_creat),
        ("delete_module", libc::SYS_delete_module),
        ("dup", libc::SYS_dup),
        ("dup2", libc::SYS_dup2),
        ("dup3", libc::SYS_dup3),
        ("epoll_create", libc::SYS_epoll_create),
        ("epoll_create1", libc::SYS_epoll_create1),
        ("epoll_ctl", libc::SYS_epoll_ctl),
        ("epoll_ctl_old", libc::SYS_epoll_ctl_old),
        ("epoll_pwait", libc::SYS_epoll_pwait),
        ("epoll_pwait2", libc::SYS_epoll_pwait2),
        ("epoll_wait", libc::SYS_epoll_wait),
        ("epoll_wait_old", libc::SYS_epoll_wait_old),
        ("eventfd", libc::SYS_eventfd),
        ("eventfd2", libc::SYS_eventfd2),
        ("execve", libc::SYS_execve),
        ("execveat", libc::SYS_execveat),
        ("exit", libc::SYS_exit),
        ("exit_group", libc::SYS_exit_group),
        ("faccessat", libc::SYS_faccessat),
        ("faccessat2", libc::SYS_faccessat2),
        ("fadvise64", libc::SYS_fadvise64),
        ("fallocate", libc::SYS_fallocate),
        ("fanotify_init", libc::SYS_fanotify_init),
        ("fanotify_mark", libc::SYS_fanotify_mark),
        ("fchdir", libc::SYS_fchdir),
        ("fchmod", libc::SYS_fchmod),
        ("fchmodat", libc::SYS_fchmodat),
        ("fchown", libc::SYS_fchown),
        ("fchownat", libc::SYS_fchownat),
        ("fcntl", libc::SYS_fcntl),
        ("fdatasync", libc::SYS_fdatasync),
        ("fgetxattr", libc::SYS_fgetxattr),
        ("finit_module", libc::SYS_finit_module),
        ("flistxattr", libc::SYS_flistxattr),
        ("flock", libc::SYS_flock),
        ("fork", libc::SYS_fork),
        ("fremovexattr", libc::SYS_fremovexattr),
        ("fsconfig", libc::SYS_fsconfig),
        ("fsetxattr", libc::SYS_fsetxattr),
        ("fsmount", libc::SYS_fsmount),
        ("fsopen", libc::SYS_fsopen),
        ("fspick", libc::SYS_fspick),
        ("fstat", libc::SYS_fstat),
        ("fstatfs", libc::SYS_fstatfs),
        ("fsync", libc::SYS_fsync),
        ("ftruncate", libc::SYS_ftruncate),
        ("futex", libc::SYS_futex),
        ("futex_waitv", libc::SYS_futex_waitv),
        ("futimesat", libc::SYS_futimesat),
        ("get_mempolicy", libc::SYS_get_mempolicy),
        ("get_robust_list", libc::SYS_get_robust_list),
        ("get_thread_area", libc::SYS_get_thread_area),
        ("getcpu", libc::SYS_getcpu),
        ("getcwd", libc::SYS_getcwd),
        ("getdents", libc::SYS_getdents),
        ("getdents64", libc::SYS_getdents64),
        ("getegid", libc::SYS_getegid),
        ("geteuid", libc::SYS_geteuid),
        ("getgid", libc::SYS_getgid),
        ("getgroups", libc::SYS_getgroups),
        ("getitimer", libc::SYS_getitimer),
        ("getpeername", libc::SYS_getpeername),
        ("getpgid", libc::SYS_getpgid),
        ("getpgrp", libc::SYS_getpgrp),
        ("getpid", libc::SYS_getpid),
        ("getpmsg", libc::SYS_getpmsg),
        ("getppid", libc::SYS_getppid),
        ("getpriority", libc::SYS_getpriority),
        ("getrandom", libc::SYS_getrandom),
        ("getresgid", libc::SYS_getresgid),
        ("getresuid", libc::SYS_getresuid),
        ("getrlimit", libc::SYS_getrlimit),
        ("getrusage", libc::SYS_getrusage),
        ("getsid", libc::SYS_getsid),
        ("getsockname", libc::SYS_getsockname),
        ("getsockopt", libc::SYS_getsockopt),
        ("gettid", libc::SYS_gettid),
        ("gettimeofday", libc::SYS_gettimeofday),
        ("getuid", libc::SYS_getuid),
        ("getxattr", libc::SYS_getxattr),
        ("init_module", libc::SYS_init_module),
        ("inotify_add_watch", libc::SYS_inotify_add_watch),
        ("inotify_init", libc::SYS_inotify_init),
        ("inotify_init1", libc::SYS_inotify_init1),
        ("inotify_rm_watch", libc::SYS_inotify_rm_watch),
        ("io_cancel", libc::SYS_io_cancel),
        ("io_destroy", libc::SYS_io_destroy),
        ("io_getevents", libc::SYS_io_getevents),
        // Not among libc's constants: x86_64's number.
        ("io_pgetevents", 333),
        ("io_setup", libc::SYS_io_setup),
        ("io_submit", libc::SYS_io_submit),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("ioctl", libc::SYS_ioctl),
        ("ioperm", libc::SYS_ioperm),
        ("iopl", libc::SYS_iopl),
        ("ioprio_get", libc::SYS_ioprio_get),
        ("ioprio_set", libc::SYS_ioprio_set),
        ("kcmp", libc::SYS_kcmp),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("kexec_load", libc::SYS_kexec_load),
        ("keyctl", libc::SYS_keyctl),
        ("kill", libc::SYS_kill),
        ("landlock_add_rule", libc::SYS_landlock_add_rule),
        ("landlock_create_ruleset", libc::SYS_landlock_create_ruleset),
        ("landlock_restrict_self", libc::SYS_landlock_restrict_self),
        ("lchown", libc::SYS_lchown),
        ("lgetxattr", libc::SYS_lgetxattr),
        ("link", libc::SYS_link),
        ("linkat", libc::SYS_linkat),
        ("listen", libc::SYS_listen),
        ("listxattr", libc::SYS_listxattr),
        ("llistxattr", libc::SYS_llistxattr),
        ("lookup_dcookie", libc::SYS_lookup_dcookie),
        ("lremovexattr", libc::SYS_lremovexattr),
        ("lseek", libc::SYS_lseek),
        ("lsetxattr", libc::SYS_lsetxattr),
        ("lstat", libc::SYS_lstat),
        ("madvise", libc::SYS_madvise),
        ("mbind", libc::SYS_mbind),
        ("membarrier", libc::SYS_membarrier),
        ("memfd_create", libc::SYS_memfd_create),
        ("memfd_secret", libc::SYS_memfd_secret),
        ("mincore", libc::SYS_mincore),
        ("mkdir", libc::SYS_mkdir),
        ("mkdirat", libc::SYS_mkdirat),
        ("mknod", libc::SYS_mknod),
        ("mknodat", libc::SYS_mknodat),
        ("mlock", libc::SYS_mlock),
        ("mlock2", libc::SYS_mlock2),
        ("mlockall", libc::SYS_mlockall),
        ("mmap", libc::SYS_mmap),
        ("modify_ldt", libc::SYS_modify_ldt),
        ("mount", libc::SYS_mount),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("move_mount", libc::SYS_move_mount),
        ("mprotect", libc::SYS_mprotect),
        ("mq_getsetattr", libc::SYS_mq_getsetattr),
        ("mq_notify", libc::SYS_mq_notify),
        ("mq_open", libc::SYS_mq_open),
        ("mq_timedreceive", libc::SYS_mq_timedreceive),
        ("mq_timedsend", libc::SYS_mq_timedsend),
        ("mq_unlink", libc::SYS_mq_unlink),
        ("mremap", libc::SYS_mremap),
        ("msgctl", libc::SYS_msgctl),
        ("msgget", libc::SYS_msgget),
        ("msgrcv", libc::SYS_msgrcv),
        ("msgsnd", libc::SYS_msgsnd),
        ("msync", libc::SYS_msync),
        ("munlock", libc::SYS_munlock),
        ("munlockall", libc::SYS_munlockall),
        ("munmap", libc::SYS_munmap),
        ("name_to_handle_at", libc::SYS_name_to_handle_at),
        ("nanosleep", libc::SYS_nanosleep),
        ("newfstatat", libc::SYS_newfstatat),
        ("nfsservctl", libc::SYS_nfsservctl),
        ("open", libc::SYS_open),
        ("open_tree", libc::SYS_open_tree),
        ("openat", libc::SYS_openat),
        ("openat2", libc::SYS_openat2),
        ("pause", libc::SYS_pause),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("personality", libc::SYS_personality),
        ("pidfd_getfd", libc::SYS_pidfd_getfd),
        ("pidfd_open", libc::SYS_pidfd_open),
        ("pidfd_send_signal", libc::SYS_pidfd_send_signal),
        ("pipe", libc::SYS_pipe),
        ("pipe2", libc::SYS_pipe2),
        ("pivot_root", libc::SYS_pivot_root),
        ("pkey_alloc", libc::SYS_pkey_alloc),
        ("pkey_free", libc::SYS_pkey_free),
        ("pkey_mprotect", libc::SYS_pkey_mprotect),
        ("poll", libc::SYS_poll),
        ("ppoll", libc::SYS_ppoll),
        ("prctl", libc::SYS_prctl),
        ("pread64", libc::SYS_pread64),
        ("preadv", libc::SYS_preadv),
        ("preadv2", libc::SYS_preadv2),
        ("prlimit64", libc::SYS_prlimit64),
        ("process_madvise", libc::SYS_process_madvise),
        ("process_mrelease", libc::SYS_process_mrelease),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("pselect6", libc::SYS_pselect6),
        ("ptrace", libc::SYS_ptrace),
        ("putpmsg", libc::SYS_putpmsg),
        ("pwrite64", libc::SYS_pwrite64),
        ("pwritev", libc::SYS_pwritev),
        ("pwritev2", libc::SYS_pwritev2),
        ("quotactl", libc::SYS_quotactl),
        ("quotactl_fd", libc::SYS_quotactl_fd),
        ("read", libc::SYS_read),
        ("readahead", libc::SYS_readahead),
        ("readlink", libc::SYS_readlink),
        ("readlinkat", libc::SYS_readlinkat),
        ("readv", libc::SYS_readv),
        ("reboot", libc::SYS_reboot),
        ("recvfrom", libc::SYS_recvfrom),
        ("recvmmsg", libc::SYS_recvmmsg),
        ("recvmsg", libc::SYS_recvmsg),
        ("remap_file_pages", libc::SYS_remap_file_pages),
        ("removexattr", libc::SYS_removexattr),
        ("rename", libc::SYS_rename),
        ("renameat", libc::SYS_renameat),
        ("renameat2", libc::SYS_renameat2),
        ("request_key", libc::SYS_request_key),
        ("restart_syscall", libc::SYS_restart_syscall),
        ("rmdir", libc::SYS_rmdir),
        ("rseq", libc::SYS_rseq),
        ("rt_sigaction", libc::SYS_rt_sigaction),
        ("rt_sigpending", libc::SYS_rt_sigpending),
        ("rt_sigprocmask", libc::SYS_rt_sigprocmask),
        ("rt_sigqueueinfo", libc::SYS_rt_sigqueueinfo),
        ("rt_sigreturn", libc::SYS_rt_sigreturn),
        ("rt_sigsuspend", libc::SYS_rt_sigsuspend),
        ("rt_sigtimedwait", libc::SYS_rt_sigtimedwait),
        ("rt_tgsigqueueinfo", libc::SYS_rt_tgsigqueueinfo),
        ("sched_get_priority_max", libc::SYS_sched_get_priority_max),
        ("sched_get_priority_min", libc::SYS_sched_get_priority_min),
        ("sched_getaffinity", libc::SYS_sched_getaffinity),
        ("sched_getattr", libc::SYS_sched_getattr),
        ("sched_getparam", libc::SYS_sched_getparam),
        ("sched_getscheduler", libc::SYS_sched_getscheduler),
        ("sched_rr_get_interval", libc::SYS_sched_rr_get_interval),
        ("sched_setaffinity", libc::SYS_sched_setaffinity),
        ("sched_setattr", libc::SYS_sched_setattr),
        ("sched_setparam", libc::SYS_sched_setparam),
        ("sched_setscheduler", libc::SYS_sched_setscheduler),
        ("sched_yield", libc::SYS_sched_yield),
        ("seccomp", libc::SYS_seccomp),
        ("security", libc::SYS_security),
        ("select", libc::SYS_select),
        ("semctl", libc::SYS_semctl),
        ("semget", libc::SYS_semget),
        ("semop", libc::SYS_semop),
        ("semtimedop", libc::SYS_semtimedop),
        ("sendfile", libc::SYS_sendfile),
        ("sendmmsg", libc::SYS_sendmmsg),
        ("sendmsg", libc::SYS_sendmsg),
        ("sendto", libc::SYS_sendto),
        ("set_mempolicy", libc::SYS_set_mempolicy),
        ("set_robust_list", libc::SYS_set_robust_list),
        ("set_thread_area", libc::SYS_set_thread_area),
        ("set_tid_address", libc::SYS_set_tid_address),
        ("setdomainname", libc::SYS_setdomainname),
        ("setfsgid", libc::SYS_setfsgid),
        ("setfsuid", libc::SYS_setfsuid),
        ("setgid", libc::SYS_setgid),
        ("setgroups", libc::SYS_setgroups),
        ("sethostname", libc::SYS_sethostname),
        ("setitimer", libc::SYS_setitimer),
        ("setns", libc::SYS_setns),
        ("setpgid", libc::SYS_setpgid),
        ("setpriority", libc::SYS_setpriority),
        ("setregid", libc::SYS_setregid),
        ("setresgid", libc::SYS_setresgid),
        ("setresuid", libc::SYS_setresuid),
        ("setreuid", libc::SYS_setreuid),
        ("setrlimit", libc::SYS_setrlimit),
        ("setsid", libc::SYS_setsid),
        ("setsockopt", libc::SYS_setsockopt),
        ("settimeofday", libc::SYS_settimeofday),
        ("setuid", libc::SYS_setuid),
        ("setxattr", libc::SYS_setxattr),
        ("shmat", libc::SYS_shmat),
        ("shmctl", libc::SYS_shmctl),
        ("shmdt", libc::SYS_shmdt),
        ("shmget", libc::SYS_shmget),
        ("shutdown", libc::SYS_shutdown),
        ("sigaltstack", libc::SYS_sigaltstack),
        ("signalfd", libc::SYS_signalfd),
        ("signalfd4", libc::SYS_signalfd4),
        ("socket", libc::SYS_socket),
        ("socketpair", libc::SYS_socketpair),
        ("splice", libc::SYS_splice),
        ("stat", libc::SYS_stat),
        ("statfs", libc::SYS_statfs),
        ("statx", libc::SYS_statx),
        ("swapoff", libc::SYS_swapoff),
        ("swapon", libc::SYS_swapon),
        ("symlink", libc::SYS_symlink),
        ("symlinkat", libc::SYS_symlinkat),
        ("sync", libc::SYS_sync),
        ("sync_file_range", libc::SYS_sync_file_range),
        ("syncfs", libc::SYS_syncfs),
        ("sysfs", libc::SYS_sysfs),
        ("sysinfo", libc::SYS_sysinfo),
        ("syslog", libc::SYS_syslog),
        ("tee", libc::SYS_tee),
        ("tgkill", libc::SYS_tgkill),
        ("time", libc::SYS_time),
        ("timer_create", libc::SYS_timer_create),
        ("timer_delete", libc::SYS_timer_delete),
        ("timer_getoverrun", libc::SYS_timer_getoverrun),
        ("timer_gettime", libc::SYS_timer_gettime),
        ("timer_settime", libc::SYS_timer_settime),
        ("timerfd_create", libc::SYS_timerfd_create),
        ("timerfd_gettime", libc::SYS_timerfd_gettime),
        ("timerfd_settime", libc::SYS_timerfd_settime),
        ("times", libc::SYS_times),
        ("tkill", libc::SYS_tkill),
        ("truncate", libc::SYS_truncate),
        ("tuxcall", libc::SYS_tuxcall),
        ("umask", libc::SYS_umask),
        ("umount2", libc::SYS_umount2),
        ("uname", libc::SYS_uname),
        ("unlink", libc::SYS_unlink),
        ("unlinkat", libc::SYS_unlinkat),
        ("unshare", libc::SYS_unshare),
        ("uselib", libc::SYS_uselib),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("ustat", libc::SYS_ustat),
        ("utime", libc::SYS_utime),
        ("utimensat", libc::SYS_utimensat),
        ("utimes", libc::SYS_utimes),
        ("vfork", libc::SYS_vfork),
        ("vhangup", libc::SYS_vhangup),
        ("vmsplice", libc::SYS_vmsplice),
        ("vserver", libc::SYS_vserver),
        ("wait4", libc::SYS_wait4),
        ("waitid", libc::SYS_waitid),
        ("write", libc::SYS_write),
        ("writev", libc::SYS_writev),
    ];
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(v: &[&str]) -> Vec<String> {
        v.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn the_default_profile_is_an_allow_list_and_a_clone3_answer() {
        let (programs, unknown) = compile(&docker_default(), &caps(&["CAP_CHOWN", "CAP_KILL"])).unwrap();
        assert_eq!(programs.len(), 2, "the allowed calls, then clone3's ENOSYS");
        assert_eq!(unknown, 0, "every name of the default profile is x86_64's");
        assert!(programs[0].len() > 300, "{}", programs[0].len());
        // The last instruction of the second program: ALLOW (everything but clone3).
        assert_eq!(programs[1].last().unwrap().3, libc::SECCOMP_RET_ALLOW);
        // With CAP_SYS_ADMIN, clone3 and clone are allowed like the rest: one program.
        let (programs, _) = compile(&docker_default(), &caps(&["CAP_SYS_ADMIN"])).unwrap();
        assert_eq!(programs.len(), 1);
    }

    #[test]
    fn dockers_json_format_is_read_and_unknown_names_are_skipped() {
        let p = parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","chown32"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                {"names":["personality"],"action":"SCMP_ACT_KILL","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#,
            "p.json",
        )
        .unwrap();
        let (programs, unknown) = compile(&p, &[]).unwrap();
        assert_eq!((programs.len(), unknown), (2, 1), "two actions; chown32 is not x86_64's");
        assert_eq!(number("read"), Some(0));
        assert_eq!(number("chown32"), None);
        let e = parse("{", "bad.json").unwrap_err().to_string();
        assert!(e.starts_with("Error response from daemon: Decoding seccomp profile failed"), "{e}");
        let e = compile(&Profile { default_action: "SCMP_ACT_BOGUS".into(), ..Profile::default() }, &[]).unwrap_err();
        assert!(e.to_string().contains("unknown seccomp action"), "{e}");
    }
}
