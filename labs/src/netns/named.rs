//! Named network namespaces: a namespace kept alive by a bind mount of its
//! `/proc/PID/ns/net` file on an empty file (`/run/netns/NAME` for `ip netns`).

use std::path::Path;

use crate::error::{Error, Hint, Result};
use crate::kernel::{CloneFlags, Errno, Exited, Kernel, MntFlags, MsFlags, SysError};

use super::TOOL;

/// `mount(2)` `MS_SHARED|MS_REC` on `dir`, first bind-mounting it onto itself when it
/// is not a mount point yet: namespaces bound below it then show in every mount
/// namespace that shares it (what `ip netns add` does to /run/netns).
fn make_shared_dir(k: &Kernel, dir: &Path) -> std::result::Result<(), SysError> {
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match k.mount(Some(""), dir, Some("none"), shared, None) {
        Err(e) if e.errno == Errno::EINVAL => {
            k.why("not a mount point yet: bind it onto itself to make it one").mount(
                Some(&dir.to_string_lossy()),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            k.mount(Some(""), dir, Some("none"), shared, None)
        }
        r => r,
    }
}

/// `mount(2)` `MS_BIND` of this process's network namespace (`/proc/self/ns/net`)
/// onto `target`: the namespace now lives as long as the mount, with no process in it.
fn bind_netns(k: &Kernel, target: &Path) -> std::result::Result<(), SysError> {
    k.mount(Some("/proc/self/ns/net"), target, Some("none"), MsFlags::MS_BIND, None)
}

/// The name of a namespace file, for messages: `c1` for `/run/netns/c1`.
fn name_of(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// Create a named network namespace bound on `path` (`/run/netns/NAME`), as `ip
/// netns add` does: make the directory a shared mount point (so the bind mounts
/// show in every mount namespace), create the empty file (`O_EXCL`: an existing
/// name is refused), then in a child process `unshare(CLONE_NEWNET)` and bind-mount
/// the child's namespace on the file. The child exits; the mount keeps the namespace
/// alive. On failure the file is removed again.
pub fn create(k: &Kernel, path: &Path) -> Result<()> {
    let _s = k.scope(TOOL);
    let name = name_of(path);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !k.exists(dir) {
        match k.mkdir(dir, 0o755) {
            Err(e) if e.errno != Errno::EEXIST => Err(e)?,
            _ => {}
        }
    }
    make_shared_dir(
        k.why("namespaces bound below /run/netns must show in every mount namespace, as with ip netns"),
        dir,
    )?;
    k.why("the file the namespace will be bind-mounted on").create_excl(path).hint(
        Errno::EEXIST,
        &format!("a namespace named {name:?} exists: pick another name, or `netns-bridge netns rm {name}`"),
    )?;
    // The child reports which of its two requests failed through its exit status:
    // 1..=127 the errno of unshare(2), 128 + errno that of mount(2). It prints nothing.
    let child = k.fork_with(|k| {
        let r = k.why("a new, empty network namespace: only lo, down").unshare(CloneFlags::CLONE_NEWNET);
        match r.map_err(|e| e.errno as i32) {
            Err(e) => e.clamp(1, 127),
            Ok(()) => match bind_netns(k.why("keep the namespace alive with no process in it"), path) {
                Ok(()) => 0,
                Err(e) => 128 + (e.errno as i32).clamp(1, 127),
            },
        }
    })?;
    let st = k.wait(child)?;
    if st != Exited::Code(0) {
        let _ = k.why("undo: the namespace was not created").unlink(path);
        return Err(match st {
            Exited::Code(c) if (1..128).contains(&c) => {
                SysError { call: "unshare(CLONE_NEWNET) (in the child)".into(), errno: Errno::from_raw(c) }.into()
            }
            Exited::Code(c) if c > 128 => SysError {
                call: format!("mount(\"/proc/self/ns/net\", {:?}, MS_BIND) (in the child)", path.display()),
                errno: Errno::from_raw(c - 128),
            }
            .into(),
            other => Error::failed(
                format!("could not create the namespace {name:?}: the child process ended as {other:?}"),
                "see the trace (without -q) for its last request",
            ),
        });
    }
    Ok(())
}

/// Remove a named network namespace: `umount2(2)` its bind mount (`MNT_DETACH`), then
/// `unlink(2)` the file, as `ip netns del` does. The namespace dies once nothing else
/// refers to it, and its interfaces (veth ends included, with their peers) go with
/// it: the kernel does that in its own time (a workqueue, after an RCU grace period),
/// so a veth end on the host may outlive this call by a few milliseconds. A file that
/// is not a mount point (left by an interrupted [`create`]) is removed too.
pub fn remove(k: &Kernel, path: &Path) -> Result<()> {
    let _s = k.scope(TOOL);
    match k
        .why(
            "the mount is what keeps the namespace alive; once gone, its interfaces (and their veth peers) are destroyed",
        )
        .umount2(path, MntFlags::MNT_DETACH)
    {
        Err(e) if e.errno == Errno::EINVAL => {
            k.note(format!("{} is not a mount point: a namespace that was never bound (an interrupted add)", path.display()))
        }
        Err(e) => return Err(missing(e.into(), path)),
        Ok(()) => {}
    }
    k.unlink(path)?;
    Ok(())
}

/// The names of the namespaces bound in `dir` (`/run/netns`): empty when it does not
/// exist.
pub fn list(k: &Kernel, dir: &Path) -> Result<Vec<String>> {
    let _s = k.scope(TOOL);
    match k.read_dir(dir) {
        Ok(v) => Ok(v),
        Err(e) if e.errno == Errno::ENOENT => Ok(vec![]),
        Err(e) => Err(e.into()),
    }
}

/// Move this process into the network namespace at `path` for good (`setns(2)`),
/// then set up its mounts as `ip netns exec` does: `unshare(CLONE_NEWNS)`, make `/`
/// a slave, remount /sys so it lists this namespace's interfaces, and bind `hosts`
/// (if any) onto /etc/hosts. What `netns exec` runs before its command.
pub fn enter(k: &Kernel, path: &Path, hosts: Option<&Path>) -> Result<()> {
    let _s = k.scope(TOOL);
    k.netns_open(path).map_err(|e| missing(e.into(), path))?;
    k.why("run the command in the namespace").setns_net(path)?;
    k.unshare(CloneFlags::CLONE_NEWNS)?;
    k.why("mounts made from here on must not propagate back to the host").mount(
        Some(""),
        Path::new("/"),
        Some("none"),
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )?;
    k.why("/sys shows the interfaces of the namespace that mounted it: mount it again from here")
        .umount2(Path::new("/sys"), MntFlags::MNT_DETACH)?;
    k.mount(Some("sysfs"), Path::new("/sys"), Some("sysfs"), MsFlags::empty(), None)?;
    if let Some(h) = hosts {
        k.why("give the command the network's hosts file, so peers resolve by name").mount(
            Some(&h.to_string_lossy()),
            Path::new("/etc/hosts"),
            Some("none"),
            MsFlags::MS_BIND,
            None,
        )?;
    }
    Ok(())
}

/// A namespace file that does not exist, said plainly: a process that has exited
/// (`/proc/PID/ns/net`) or a name never created.
pub(crate) fn missing(e: Error, path: &Path) -> Error {
    if e.errno() != Some(Errno::ENOENT) {
        return e;
    }
    let s = path.to_string_lossy();
    let pid = s.strip_prefix("/proc/").and_then(|r| r.strip_suffix("/ns/net")).filter(|p| p.parse::<u32>().is_ok());
    match pid {
        Some(p) => Error::failed(
            format!("no process {p}: cannot open /proc/{p}/ns/net"),
            "the process has exited; start it again and attach its new PID",
        ),
        None => Error::failed(
            format!("no network namespace named {:?} ({} does not exist)", name_of(path), path.display()),
            "list them with `netns-bridge netns ls`, create one with `netns-bridge netns add NAME`",
        ),
    }
}
