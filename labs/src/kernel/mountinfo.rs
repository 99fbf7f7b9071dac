//! `/proc/self/mountinfo`, the kernel's description of this mount namespace's mounts
//! (proc(5)). Both the cgroups lab (where are the hierarchies?) and the overlay lab
//! (what are this overlay's layers?) read it.
//!
//! A line: `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
//! — mount id, parent id, device, root, mount point, mount options, optional fields,
//! ` - `, filesystem type, source, the filesystem's own (super-block) options. Spaces,
//! tabs, newlines and backslashes in paths are escaped in octal (`\040` is a space).

use std::path::Path;

use super::{Kernel, SysError};

/// One line of mountinfo, the fields contlab uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Field 1: the mount's id.
    pub mount_id: u64,
    /// Field 5: where it is mounted, unescaped.
    pub point: String,
    /// Field 6: the per-mount options (`rw,relatime`).
    pub mount_options: String,
    /// After ` - `: the filesystem type (`overlay`, `cgroup2`, `tmpfs`).
    pub fstype: String,
    /// The source (`/dev/vda`, `overlay`, `cgroup`).
    pub source: String,
    /// The super-block options, still escaped: their syntax is the filesystem's own
    /// (overlayfs escapes `:` and `,` inside its paths).
    pub super_options: String,
}

/// Undo mountinfo's octal escapes (`\040` for a space).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse a mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.splitn(3, ' ').collect();
            if l.len() < 6 || r.len() < 2 {
                return None;
            }
            Some(MountInfo {
                mount_id: l[0].parse().unwrap_or(0),
                point: unescape(l[4]),
                mount_options: l[5].to_string(),
                fstype: r[0].to_string(),
                source: unescape(r[1]),
                super_options: r.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

impl Kernel {
    /// `read(2)` of `/proc/self/mountinfo`, parsed: the mounts this process sees.
    /// <https://man7.org/linux/man-pages/man5/proc_pid_mountinfo.5.html>
    pub fn mountinfo(&self) -> Result<Vec<MountInfo>, SysError> {
        Ok(parse_mountinfo(&self.read_file(Path::new("/proc/self/mountinfo"))?))
    }

    /// Whether `path` (as mountinfo spells it: absolute, canonical) is a mount point
    /// of this process, from one read of `/proc/self/mountinfo`; `false` if it cannot
    /// be read.
    pub fn is_mount_point(&self, path: &Path) -> bool {
        self.mountinfo().is_ok_and(|m| m.iter().any(|i| Path::new(&i.point) == path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_escapes() {
        let t = "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\nbroken line\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mount_id, 36);
        assert_eq!(m[0].point, "/mnt 2");
        assert_eq!(m[0].mount_options, "rw,noatime");
        assert_eq!((m[0].fstype.as_str(), m[0].source.as_str()), ("ext3", "/dev/root"));
        assert_eq!(m[0].super_options, "rw,errors=continue");
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
    }
}
