//! Flag words printed by name, as strace prints them: `CLONE_NEWPID|CLONE_NEWNS`,
//! `MS_REC|MS_PRIVATE`. Unknown bits are kept, in hex, so nothing is hidden.

/// Render `bits` as `NAME|NAME|0x...` using `table`, in table order; `0` when empty.
pub fn render(bits: u64, table: &[(u64, &str)]) -> String {
    let mut names = Vec::new();
    let mut rest = bits;
    for &(bit, name) in table {
        if bit != 0 && rest & bit == bit {
            names.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}

/// Namespace flags of clone(2)/unshare(2)/setns(2), in the order the kernel creates
/// them for unshare (user first).
pub const CLONE: &[(u64, &str)] = &[
    (libc::CLONE_NEWUSER as u64, "CLONE_NEWUSER"),
    (libc::CLONE_NEWNS as u64, "CLONE_NEWNS"),
    (libc::CLONE_NEWUTS as u64, "CLONE_NEWUTS"),
    (libc::CLONE_NEWIPC as u64, "CLONE_NEWIPC"),
    (libc::CLONE_NEWPID as u64, "CLONE_NEWPID"),
    (libc::CLONE_NEWNET as u64, "CLONE_NEWNET"),
    (libc::CLONE_NEWCGROUP as u64, "CLONE_NEWCGROUP"),
    (libc::CLONE_NEWTIME as u64, "CLONE_NEWTIME"),
];

/// mount(2) flags.
pub const MS: &[(u64, &str)] = &[
    (libc::MS_RDONLY, "MS_RDONLY"),
    (libc::MS_NOSUID, "MS_NOSUID"),
    (libc::MS_NODEV, "MS_NODEV"),
    (libc::MS_NOEXEC, "MS_NOEXEC"),
    (libc::MS_SYNCHRONOUS, "MS_SYNCHRONOUS"),
    (libc::MS_REMOUNT, "MS_REMOUNT"),
    (libc::MS_MANDLOCK, "MS_MANDLOCK"),
    (libc::MS_DIRSYNC, "MS_DIRSYNC"),
    (libc::MS_NOATIME, "MS_NOATIME"),
    (libc::MS_NODIRATIME, "MS_NODIRATIME"),
    (libc::MS_BIND, "MS_BIND"),
    (libc::MS_MOVE, "MS_MOVE"),
    (libc::MS_REC, "MS_REC"),
    (libc::MS_SILENT, "MS_SILENT"),
    (libc::MS_UNBINDABLE, "MS_UNBINDABLE"),
    (libc::MS_PRIVATE, "MS_PRIVATE"),
    (libc::MS_SLAVE, "MS_SLAVE"),
    (libc::MS_SHARED, "MS_SHARED"),
    (libc::MS_RELATIME, "MS_RELATIME"),
    (libc::MS_STRICTATIME, "MS_STRICTATIME"),
    (libc::MS_LAZYTIME, "MS_LAZYTIME"),
];

/// umount2(2) flags.
pub const MNT: &[(u64, &str)] = &[
    (libc::MNT_FORCE as u64, "MNT_FORCE"),
    (libc::MNT_DETACH as u64, "MNT_DETACH"),
    (libc::MNT_EXPIRE as u64, "MNT_EXPIRE"),
    (libc::UMOUNT_NOFOLLOW as u64, "UMOUNT_NOFOLLOW"),
];

/// open(2) flags (the access mode is printed separately, as strace does).
pub const O: &[(u64, &str)] = &[
    (libc::O_CREAT as u64, "O_CREAT"),
    (libc::O_EXCL as u64, "O_EXCL"),
    (libc::O_TRUNC as u64, "O_TRUNC"),
    (libc::O_APPEND as u64, "O_APPEND"),
    (libc::O_NONBLOCK as u64, "O_NONBLOCK"),
    (libc::O_DIRECTORY as u64, "O_DIRECTORY"),
    (libc::O_NOFOLLOW as u64, "O_NOFOLLOW"),
    (libc::O_CLOEXEC as u64, "O_CLOEXEC"),
];

/// wait4(2) options.
pub const WAIT: &[(u64, &str)] =
    &[(libc::WNOHANG as u64, "WNOHANG"), (libc::WUNTRACED as u64, "WUNTRACED"), (libc::__WALL as u64, "__WALL")];

/// Render open(2) flags: access mode first, then the others.
pub fn open_flags(flags: i32) -> String {
    let mode = match flags & libc::O_ACCMODE {
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    };
    let rest = (flags & !libc::O_ACCMODE) as u64;
    if rest == 0 {
        mode.to_string()
    } else {
        format!("{mode}|{}", render(rest, O))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_order_and_unknown_bits_in_hex() {
        let bits = (libc::CLONE_NEWPID | libc::CLONE_NEWNS) as u64;
        assert_eq!(render(bits, CLONE), "CLONE_NEWNS|CLONE_NEWPID");
        assert_eq!(render(libc::MS_REC | libc::MS_PRIVATE, MS), "MS_REC|MS_PRIVATE");
        assert_eq!(render(0, MS), "0");
        assert_eq!(render(1 << 40, MS), "0x10000000000");
        assert_eq!(open_flags(libc::O_RDONLY | libc::O_CLOEXEC), "O_RDONLY|O_CLOEXEC");
    }
}
