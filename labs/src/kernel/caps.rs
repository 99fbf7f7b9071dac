//! Process attributes a runtime sets before exec: capabilities (`capset(2)`, the
//! bounding set with `prctl(PR_CAPBSET_DROP)`, the ambient set), `no_new_privs`,
//! resource limits (`prlimit(2)`), and the process-tree attributes a monitor needs
//! (`PR_SET_CHILD_SUBREAPER`, `PR_SET_PDEATHSIG`, `PR_SET_KEEPCAPS`).
//!
//! Root's power is split into some forty *capabilities* (capabilities(7)): CAP_CHOWN to
//! change any file's owner, CAP_NET_ADMIN to configure the network, CAP_SYS_ADMIN for
//! most of the rest (mount, namespaces...). A process has five sets: *permitted* (what
//! it may use), *effective* (what it uses now), *inheritable*, *ambient* (what survives
//! exec for a non-root program), and the *bounding* set, a ceiling: no exec can ever
//! give back a capability dropped from it. A root process execs with permitted =
//! bounding, so dropping the bounding set to docker's 14 capabilities is what makes
//! root in a container less than root on the host. The `caps` crate makes the calls.
//! <https://man7.org/linux/man-pages/man7/capabilities.7.html>

use caps::{CapSet, Capability, CapsHashSet};

use super::{Call, Effect, Errno, Kernel, Kind, SysError};

pub use caps::Capability as Cap;

fn caps_errno(e: caps::errors::CapsError) -> Errno {
    // The crate's errors wrap the errno of the failed prctl/capset in their text.
    let s = e.to_string();
    if s.contains("Operation not permitted") {
        Errno::EPERM
    } else if s.contains("Invalid argument") {
        Errno::EINVAL
    } else {
        Errno::EIO
    }
}

/// Every capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub fn all_caps() -> Vec<Capability> {
    let mut v: Vec<Capability> =
        caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all()).into_iter().collect();
    v.sort_by_key(|c| c.index());
    v
}

/// The capabilities this process may still hold: its bounding set, each read with
/// `prctl(PR_CAPBSET_READ)` (a runtime cannot give a container more than it has:
/// "every capability" means these).
/// <https://man7.org/linux/man-pages/man2/PR_CAPBSET_READ.2const.html>
pub fn bounding_caps() -> Vec<Capability> {
    let mut v: Vec<Capability> =
        all_caps().into_iter().filter(|c| caps::has_cap(None, caps::CapSet::Bounding, *c).unwrap_or(false)).collect();
    v.sort_by_key(|c| c.index());
    v
}

fn names(set: &[Capability]) -> String {
    let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    v.sort();
    if v.is_empty() {
        "0".into()
    } else {
        v.join("|")
    }
}

/// A capability set as the hex mask `/proc/PID/status` shows (`CapEff: 00000000a80425fb`).
pub fn cap_mask(set: &[Capability]) -> u64 {
    set.iter().fold(0u64, |m, c| m | c.bitmask())
}

impl Kernel {
    /// `prctl(PR_CAPBSET_DROP, CAP)` for every capability not in `keep`: no later
    /// exec can give them back. Each drop is one (counted) request.
    /// <https://man7.org/linux/man-pages/man2/PR_CAPBSET_DROP.2const.html>
    #[doc(alias = "PR_CAPBSET_DROP")]
    pub fn drop_bounding(&self, keep: &[Capability]) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "prctl",
            man: "prctl(2)",
            what: "drop a capability from the bounding set: no exec can ever give it back",
            effect: Effect::Change,
        };
        for cap in all_caps().into_iter().filter(|c| !keep.contains(c)) {
            self.perform_bulk(
                &C,
                vec!["PR_CAPBSET_DROP".into(), cap.to_string()],
                || (),
                || caps::drop(None, CapSet::Bounding, cap).map_err(caps_errno),
                |_| "0".into(),
            )?;
        }
        Ok(())
    }

    /// `capset(2)` — set the permitted and effective sets to `set`, empty the
    /// inheritable set, and clear the ambient set. <https://man7.org/linux/man-pages/man2/capset.2.html>
    #[doc(alias = "capset")]
    pub fn set_caps(&self, set: &[Capability]) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "capset",
            man: "capset(2)",
            what: "set this process's permitted and effective capabilities, and empty its inheritable set",
            effect: Effect::Change,
        };
        let hs: CapsHashSet = set.iter().copied().collect();
        let shown = names(set);
        let none = names(&[]);
        self.perform(
            &C,
            vec![format!("{{effective={shown}, permitted={shown}, inheritable={none}}}")],
            || (),
            || {
                // Effective must stay within permitted: shrink it last. Inheritable
                // empty, as runc and docker since CVE-2022-24769: a program run later
                // with file capabilities gets no more than its own.
                caps::set(None, CapSet::Effective, &hs).map_err(caps_errno)?;
                caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(caps_errno)?;
                caps::set(None, CapSet::Permitted, &hs).map_err(caps_errno)?;
                caps::clear(None, CapSet::Ambient).map_err(caps_errno)
            },
            |_| "0".into(),
        )
    }

    /// `capset(2)` — the effective set made the permitted set again (what a change of
    /// the filesystem uid away from 0 took out of it: CAP_CHOWN, CAP_DAC_OVERRIDE...).
    /// <https://man7.org/linux/man-pages/man2/capset.2.html>
    #[doc(alias = "capset")]
    pub fn raise_effective(&self) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "capset",
            man: "capset(2)",
            what: "make every permitted capability effective again",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec!["{effective=permitted}".into()],
            || (),
            || {
                let p = caps::read(None, CapSet::Permitted).map_err(caps_errno)?;
                caps::set(None, CapSet::Effective, &p).map_err(caps_errno)
            },
            |_| "0".into(),
        )
    }

    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)` — no exec of this process or its children can
    /// gain privileges (set-user-ID bits and file capabilities are ignored).
    /// <https://man7.org/linux/man-pages/man2/PR_SET_NO_NEW_PRIVS.2const.html>
    #[doc(alias = "PR_SET_NO_NEW_PRIVS")]
    pub fn no_new_privs(&self) -> Result<(), SysError> {
        self.prctl(
            "PR_SET_NO_NEW_PRIVS",
            libc::PR_SET_NO_NEW_PRIVS,
            1,
            "1",
            "exec can no longer gain privileges (setuid bits, file capabilities)",
        )
    }

    /// `prctl(PR_SET_DUMPABLE, 0)` — until the next execve(2), this process's
    /// `/proc/PID` files belong to the host's root and no process without
    /// CAP_SYS_PTRACE there may ptrace it or open its `/proc/PID/exe` or `fd/`: what a
    /// runtime's child is between joining a container's namespaces and exec'ing
    /// (runc's fix of CVE-2016-9962). <https://man7.org/linux/man-pages/man2/PR_SET_DUMPABLE.2const.html>
    #[doc(alias = "PR_SET_DUMPABLE")]
    pub fn set_undumpable(&self) -> Result<(), SysError> {
        self.prctl(
            "PR_SET_DUMPABLE",
            libc::PR_SET_DUMPABLE,
            0,
            "0",
            "no one in the container may ptrace this process or open its /proc files until it execs",
        )
    }

    /// `prctl(PR_SET_CHILD_SUBREAPER, 1)` — orphaned descendants are re-parented to
    /// this process instead of the host's init, so a monitor reaps all of a
    /// container's processes. <https://man7.org/linux/man-pages/man2/PR_SET_CHILD_SUBREAPER.2const.html>
    #[doc(alias = "PR_SET_CHILD_SUBREAPER")]
    pub fn set_child_subreaper(&self) -> Result<(), SysError> {
        self.prctl(
            "PR_SET_CHILD_SUBREAPER",
            libc::PR_SET_CHILD_SUBREAPER,
            1,
            "1",
            "orphaned descendants become this process's children, so it reaps them",
        )
    }

    /// `prctl(PR_SET_PDEATHSIG, SIG)` — get `sig` when the parent dies.
    /// <https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html>
    #[doc(alias = "PR_SET_PDEATHSIG")]
    pub fn set_parent_death_signal(&self, sig: super::Signal) -> Result<(), SysError> {
        self.prctl(
            "PR_SET_PDEATHSIG",
            libc::PR_SET_PDEATHSIG,
            sig as libc::c_ulong,
            sig.as_str(),
            "get this signal when the parent process dies",
        )
    }

    /// `prctl(PR_SET_KEEPCAPS, on)` — keep the permitted capabilities across the
    /// setuid(2) that makes a container's process a non-root user.
    #[doc(alias = "PR_SET_KEEPCAPS")]
    pub fn keep_caps(&self, on: bool) -> Result<(), SysError> {
        let v = if on { 1 } else { 0 };
        self.prctl(
            "PR_SET_KEEPCAPS",
            libc::PR_SET_KEEPCAPS,
            v,
            if on { "1" } else { "0" },
            "keep (or not) the permitted capabilities across setuid(2)",
        )
    }

    fn prctl(
        &self,
        opt: &'static str,
        op: libc::c_int,
        arg: libc::c_ulong,
        shown: &str,
        what: &'static str,
    ) -> Result<(), SysError> {
        let call = Call { kind: Kind::Syscall, name: "prctl", man: "prctl(2)", what, effect: Effect::Change };
        self.perform(
            &call,
            vec![opt.into(), shown.into()],
            || (),
            // SAFETY: prctl with integer arguments only.
            || match unsafe { libc::prctl(op, arg, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) } {
                -1 => Err(Errno::last()),
                _ => Ok(()),
            },
            |_| "0".into(),
        )
    }

    /// `prlimit(2)` on this process — set a resource limit (`--ulimit nofile=1024:2048`).
    /// A hard limit can be raised only with CAP_SYS_RESOURCE.
    /// <https://man7.org/linux/man-pages/man2/prlimit.2.html>
    #[doc(alias = "prlimit")]
    #[doc(alias = "setrlimit")]
    pub fn set_rlimit(&self, name: &str, soft: u64, hard: u64) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "prlimit64",
            man: "prlimit(2)",
            what: "set a resource limit of this process (kept across exec, inherited by children)",
            effect: Effect::Change,
        };
        let res = rlimit_named(name);
        self.perform(
            &C,
            vec![
                "0".into(),
                format!("RLIMIT_{}", name.to_uppercase()),
                format!("{{rlim_cur={soft}, rlim_max={hard}}}"),
                "NULL".into(),
            ],
            || (),
            || {
                let r = res.ok_or(Errno::EINVAL)?;
                nix::sys::resource::setrlimit(r, soft, hard)
            },
            |_| "0".into(),
        )
    }
}

/// The resource called `name` in docker's `--ulimit` (`nofile`, `nproc`, `core`...).
pub fn rlimit_named(name: &str) -> Option<nix::sys::resource::Resource> {
    use nix::sys::resource::Resource::*;
    Some(match name {
        "core" => RLIMIT_CORE,
        "cpu" => RLIMIT_CPU,
        "data" => RLIMIT_DATA,
        "fsize" => RLIMIT_FSIZE,
        "locks" => RLIMIT_LOCKS,
        "memlock" => RLIMIT_MEMLOCK,
        "msgqueue" => RLIMIT_MSGQUEUE,
        "nice" => RLIMIT_NICE,
        "nofile" => RLIMIT_NOFILE,
        "nproc" => RLIMIT_NPROC,
        "rss" => RLIMIT_RSS,
        "rtprio" => RLIMIT_RTPRIO,
        "rttime" => RLIMIT_RTTIME,
        "sigpending" => RLIMIT_SIGPENDING,
        "stack" => RLIMIT_STACK,
        "as" => RLIMIT_AS,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_set_is_a80425fb() {
        use Capability::*;
        let d = [
            CAP_CHOWN,
            CAP_DAC_OVERRIDE,
            CAP_FSETID,
            CAP_FOWNER,
            CAP_MKNOD,
            CAP_NET_RAW,
            CAP_SETGID,
            CAP_SETUID,
            CAP_SETFCAP,
            CAP_SETPCAP,
            CAP_NET_BIND_SERVICE,
            CAP_SYS_CHROOT,
            CAP_KILL,
            CAP_AUDIT_WRITE,
        ];
        assert_eq!(cap_mask(&d), 0xa80425fb);
    }

    #[test]
    fn dry_run_records_every_bounding_drop() {
        let k = Kernel::recording("mini");
        k.drop_bounding(&[Capability::CAP_CHOWN]).unwrap();
        let ev = k.events();
        assert_eq!(ev.len(), all_caps().len() - 1);
        assert!(ev.iter().all(|e| e.bulk && e.call == "prctl"));
    }
}
