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
use crate::kernel::{syscall_number as number, Errno};

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
        errno_ret: Some(Errno::ENOSYS as u32),
        excludes: Scope { caps: vec!["CAP_SYS_ADMIN".into()], arches: vec![] },
        ..Rule::default()
    });
    for (cap, names) in WITH_CAP {
        syscalls.push(Rule { includes: Scope { caps: vec![cap.to_string()], arches: vec![] }, ..allow(names) });
    }
    Profile { default_action: "SCMP_ACT_ERRNO".into(), default_errno_ret: Some(Errno::EPERM as u32), syscalls }
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
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(Errno::EPERM as u32)),
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
        assert_eq!(programs[1].last().unwrap().3, 0x7fff_0000, "SECCOMP_RET_ALLOW");
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
