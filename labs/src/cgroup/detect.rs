//! Which cgroup setup this machine has: detect first, then pick the implementation.
//!
//! `statfs(2)` on the cgroup root answers with the filesystem's magic number:
//!
//! * `CGROUP2_SUPER_MAGIC`: the root **is** the unified hierarchy (cgroup v2). Most
//!   distributions since 2021 (Debian 11, Ubuntu 21.10, Fedora 31).
//! * `TMPFS_MAGIC`: a tmpfs with one mount per v1 hierarchy below it (`cpu`, `memory`,
//!   ...). Which controller is where is read from `/proc/self/mountinfo` (a mount of
//!   type `cgroup` lists its controllers in its super options: `rw,cpu,cpuacct`), not
//!   guessed from directory names. If a `cgroup2` is also mounted below (usually at
//!   `unified/`), the setup is *hybrid*: systemd uses that v2 tree to track services,
//!   while the controllers stay on v1.
//!
//! For tests, `--cgroup-root` may point at a plain directory made to look like a
//! cgroup tree (a *fake tree*): a root holding `cgroup.controllers` is read as v2;
//! otherwise its sub-directories named after controllers (`memory`, `cpu,cpuacct`)
//! that hold `cgroup.procs` are read as v1 hierarchies, and `unified/` holding
//! `cgroup.controllers` makes it hybrid. The trace says when it does that.

use std::path::{Path, PathBuf};

use crate::error::{Error, Hint, Result};
use crate::kernel::{CgroupFs, Errno, Kernel};

/// The controllers Linux knows (cgroups(7)); a v1 mount's options name some of them.
pub const KNOWN: [&str; 15] = [
    "cpuset",
    "cpu",
    "cpuacct",
    "io",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// One cgroup v1 hierarchy: a mount of the `cgroup` filesystem with its controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted (`/sys/fs/cgroup/memory`).
    pub mount: PathBuf,
    /// Its controllers (`cpu`, `cpuacct` when co-mounted as `cpu,cpuacct`), and
    /// `name=systemd` for a named hierarchy without controllers.
    pub controllers: Vec<String>,
}

/// The cgroup setup found under a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setup {
    /// cgroup v2 only: one tree at `root`.
    Unified {
        /// The mount point (`/sys/fs/cgroup`).
        root: PathBuf,
        /// A plain directory standing in for cgroupfs (tests).
        fake: bool,
    },
    /// cgroup v1: one tree per hierarchy; with `unified`, hybrid.
    Legacy {
        /// The tmpfs holding the hierarchies (`/sys/fs/cgroup`).
        root: PathBuf,
        /// The v1 hierarchies, in mountinfo order.
        hierarchies: Vec<Hierarchy>,
        /// A cgroup2 mounted below the root (`/sys/fs/cgroup/unified`): hybrid.
        unified: Option<PathBuf>,
        /// Directories standing in for cgroupfs (tests).
        fake: bool,
    },
}

/// One line of /proc/self/mountinfo, the fields we need (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Field 5: where it is mounted.
    pub point: PathBuf,
    /// The field after ` - `: the filesystem type (`cgroup`, `cgroup2`, `tmpfs`).
    pub fstype: String,
    /// The last field: the filesystem's own options (for `cgroup`: its controllers).
    pub super_opts: Vec<String>,
}

/// The mounts of a mountinfo text, with the fields the cgroups lab needs.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    crate::kernel::parse_mountinfo(text)
        .into_iter()
        .map(|m| Mount {
            point: PathBuf::from(m.point),
            fstype: m.fstype,
            super_opts: m.super_options.split(',').map(str::to_string).collect(),
        })
        .collect()
}

/// The controllers named in a v1 mount's options (`rw,cpu,cpuacct` → cpu, cpuacct).
fn controllers_of(opts: &[String]) -> Vec<String> {
    opts.iter().filter(|o| KNOWN.contains(&o.as_str()) || o.starts_with("name=")).cloned().collect()
}

/// Find the cgroup setup under `root` (normally `/sys/fs/cgroup`).
pub fn detect(k: &Kernel, root: &Path) -> Result<Setup> {
    let fs = k
        .why("tell cgroup v2 (CGROUP2_SUPER_MAGIC) from a tmpfs of v1 hierarchies (TMPFS_MAGIC) by the filesystem's magic number")
        .statfs_cgroup(root)
        .hint(Errno::ENOENT, "is cgroupfs mounted? check `findmnt -t cgroup,cgroup2`, or give the right --cgroup-root")?;
    match fs {
        CgroupFs::V2 => {
            k.note(format!(
                "cgroup v2 (unified) detected: one tree at {}, controllers handed down through cgroup.subtree_control",
                root.display()
            ));
            Ok(Setup::Unified { root: root.into(), fake: false })
        }
        CgroupFs::V1 => Err(Error::failed(
            format!("{} is a single cgroup v1 hierarchy, not the cgroup root", root.display()),
            "give --cgroup-root the directory that holds the hierarchies (usually /sys/fs/cgroup)",
        )),
        CgroupFs::Tmpfs | CgroupFs::Other(_) => legacy_or_fake(k, root, fs),
    }
}

fn legacy_or_fake(k: &Kernel, root: &Path, fs: CgroupFs) -> Result<Setup> {
    // A real v1 root is a tmpfs without cgroup.controllers; a fake v2 tree has one.
    if k.why("a cgroup v2 root (or a fake one, for tests) holds cgroup.controllers; a tmpfs of v1 hierarchies does not")
        .exists(&root.join("cgroup.controllers"))
    {
        k.note(format!(
            "{} is not a cgroup2 mount but holds cgroup.controllers: using it as a fake cgroup v2 tree (--cgroup-root, for tests)",
            root.display()
        ));
        return Ok(Setup::Unified { root: root.into(), fake: true });
    }
    let info = k
        .why("find where each cgroup v1 hierarchy is mounted, and with which controllers")
        .read_file(Path::new("/proc/self/mountinfo"))?;
    let mut hierarchies = Vec::new();
    let mut unified = None;
    for m in parse_mountinfo(&info) {
        if m.point.parent() != Some(root) {
            continue;
        }
        match m.fstype.as_str() {
            "cgroup" => {
                let controllers = controllers_of(&m.super_opts);
                if !controllers.is_empty() {
                    hierarchies.push(Hierarchy { mount: m.point, controllers });
                }
            }
            "cgroup2" => unified = Some(m.point),
            _ => {}
        }
    }
    let mut fake = false;
    if hierarchies.is_empty() && unified.is_none() {
        if fs == CgroupFs::Tmpfs && root == Path::new("/sys/fs/cgroup") {
            return Err(Error::failed(
                format!("no cgroup hierarchy is mounted under {}", root.display()),
                "mount one (`mount -t cgroup2 none /sys/fs/cgroup`), or give --cgroup-root",
            ));
        }
        k.note(format!(
            "no cgroup mount under {} in /proc/self/mountinfo: reading its directories as a fake cgroup v1 tree (--cgroup-root, for tests)",
            root.display()
        ));
        fake = true;
        for name in k.read_dir(root)? {
            let dir = root.join(&name);
            if name == "unified" && k.exists(&dir.join("cgroup.controllers")) {
                unified = Some(dir);
                continue;
            }
            let controllers: Vec<String> = name.split(',').filter(|c| KNOWN.contains(c)).map(str::to_string).collect();
            if !controllers.is_empty() && k.exists(&dir.join("cgroup.procs")) {
                hierarchies.push(Hierarchy { mount: dir, controllers });
            }
        }
        if hierarchies.is_empty() {
            return Err(Error::failed(
                format!(
                    "{} holds no cgroup hierarchy (no cgroup.controllers, no controller directories)",
                    root.display()
                ),
                "give --cgroup-root a cgroup mount, usually /sys/fs/cgroup",
            ));
        }
    }
    let listed: Vec<String> =
        hierarchies.iter().map(|h| format!("{} at {}", h.controllers.join(","), h.mount.display())).collect();
    match &unified {
        Some(u) => {
            let holds = k
                .why("see which controllers the hybrid setup left to cgroup v2")
                .read_file(&u.join("cgroup.controllers"))
                .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            let holds = if holds.is_empty() { "none".to_string() } else { holds };
            k.note(format!(
                "cgroup v1/hybrid detected: v1 hierarchies {}; a cgroup2 at {} holds only [{holds}]: contlab uses the v1 hierarchies",
                listed.join(", "),
                u.display()
            ));
        }
        None => k.note(format!("cgroup v1 (legacy) detected: one tree per hierarchy: {}", listed.join(", "))),
    }
    if hierarchies.is_empty() {
        return Err(Error::failed(
            format!("only a cgroup2 at {} and no v1 hierarchy: nothing to limit with", root.display()),
            "give --cgroup-root the cgroup2 mount itself",
        ));
    }
    Ok(Setup::Legacy { root: root.into(), hierarchies, unified, fake })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::testing::{fake_v1, fake_v2};

    const HERE: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/net\\040cls rw,relatime shared:9 - cgroup cgroup rw,net_cls,net_prio,xattr
";

    #[test]
    fn mountinfo_lines() {
        let m = parse_mountinfo(HERE);
        assert_eq!(m.len(), 7);
        assert_eq!(m[0].fstype, "tmpfs");
        assert_eq!(m[1].point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(controllers_of(&m[1].super_opts), vec!["cpu"]);
        assert_eq!(controllers_of(&m[4].super_opts), vec!["name=systemd"]);
        assert_eq!(m[5].fstype, "cgroup2");
        assert_eq!(m[6].point, PathBuf::from("/sys/fs/cgroup/net cls"), "octal escapes are undone");
        assert_eq!(controllers_of(&m[6].super_opts), vec!["net_cls", "net_prio"]);
    }

    #[test]
    fn detects_a_fake_v2_tree() {
        let t = fake_v2();
        let k = Kernel::recording("cg-limit");
        let s = detect(&k, t.path()).unwrap();
        assert_eq!(s, Setup::Unified { root: t.path().into(), fake: true });
        let notes: Vec<_> = k.events().into_iter().filter(|e| e.call == "note").collect();
        assert!(notes[0].args[0].contains("fake cgroup v2 tree"), "{notes:?}");
    }

    #[test]
    fn detects_a_fake_v1_tree_and_hybrid() {
        for hybrid in [false, true] {
            let t = fake_v1(hybrid);
            let k = Kernel::recording("cg-limit");
            let Setup::Legacy { hierarchies, unified, fake, .. } = detect(&k, t.path()).unwrap() else {
                panic!("not legacy")
            };
            assert!(fake);
            let names: Vec<String> = hierarchies.iter().map(|h| h.controllers.join(",")).collect();
            assert_eq!(names, ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"]);
            assert_eq!(unified.is_some(), hybrid);
            let note = k.events().into_iter().rfind(|e| e.call == "note").unwrap().args[0].clone();
            let want = if hybrid { "cgroup v1/hybrid detected" } else { "cgroup v1 (legacy) detected" };
            assert!(note.contains(want), "{note}");
            assert!(note.contains(&format!("memory at {}/memory", t.path().display())), "{note}");
        }
    }

    #[test]
    fn an_empty_directory_is_no_cgroup_tree() {
        let t = tempfile::tempdir().unwrap();
        let k = Kernel::recording("cg-limit");
        let e = detect(&k, t.path()).unwrap_err().to_string();
        assert!(e.contains("holds no cgroup hierarchy"), "{e}");
        let e = detect(&k, &t.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("ENOENT") && e.contains("--cgroup-root"), "{e}");
    }

    #[test]
    fn detects_this_machine() {
        // Whatever the host has, detection must end in a known setup and say so.
        let k = Kernel::recording("cg-limit");
        if let Ok(s) = detect(&k, Path::new("/sys/fs/cgroup")) {
            let notes: Vec<_> = k.events().into_iter().filter(|e| e.call == "note").collect();
            assert!(notes.iter().any(|n| n.args[0].contains("detected")), "{notes:?}");
            match s {
                Setup::Unified { fake, .. } => assert!(!fake),
                Setup::Legacy { fake, hierarchies, .. } => {
                    assert!(!fake);
                    assert!(!hierarchies.is_empty());
                }
            }
        } else {
            // No cgroupfs at all (a minimal container): the error must name the path.
            let e = detect(&k, Path::new("/sys/fs/cgroup")).unwrap_err().to_string();
            assert!(e.contains("/sys/fs/cgroup"), "{e}");
        }
    }
}
