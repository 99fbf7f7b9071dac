//! Where the networks are remembered: a *state root* holding a lock file and one
//! JSON state file plus one hosts file per network.
//!
//! ```text
//! ROOT/lock              flock(2)ed by every change
//! ROOT/net/NAME.json     the network: subnet, gateway, hosts attached, published ports
//! ROOT/net/NAME.hosts    its hosts file (bind-mounted on /etc/hosts by `netns exec`)
//! ```
//!
//! netns-bridge's root is `$CONTLAB_RUN_DIR` or /run/contlab ([`Store::from_env`]);
//! a runtime passes its own ([`Store::new`]). Creating the directories, the lock file
//! and the state files, rewriting and removing them, are kernel requests (traced);
//! reading them back is the tool reading its own data.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kernel::{Errno, Kernel};
use crate::lock::FileLock;

use super::ipam::{self, NetState};

/// A state root: where a set of networks is remembered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The networks remembered under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// netns-bridge's own root: `$CONTLAB_RUN_DIR`, or /run/contlab.
    pub fn from_env() -> Store {
        Store::new(ipam::default_root())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state file of network `name`.
    pub fn state_path(&self, name: &str) -> PathBuf {
        ipam::state_path(&self.root, name)
    }

    /// The hosts file of network `name`.
    pub fn hosts_path(&self, name: &str) -> PathBuf {
        ipam::hosts_path(&self.root, name)
    }

    /// Every network's state, read without the lock (a snapshot: the next change
    /// re-reads under the lock).
    pub fn read(&self) -> Result<Vec<NetState>> {
        ipam::load_all(&self.root)
    }

    /// Take the lock (making the root and its `net` directory first if needed), then
    /// read every network's state. The lock is held until the value is dropped.
    pub(crate) fn lock(&self, k: &Kernel) -> Result<Locked> {
        for d in [self.root.clone(), ipam::net_dir(&self.root)] {
            if !k.exists(&d) {
                match k.mkdir(&d, 0o755) {
                    Err(e) if e.errno != Errno::EEXIST => Err(e)?,
                    _ => {}
                }
            }
        }
        let guard = crate::lock::lock(
            k.why("serialize changes of the networks' state: concurrent attaches must not take the same address"),
            &self.root.join("lock"),
            true,
            None,
        )?;
        let nets = ipam::load_all(&self.root)?;
        Ok(Locked { _guard: guard, store: self.clone(), on_disk: nets.clone(), nets })
    }
}

/// The networks' state while the lock is held.
pub(crate) struct Locked {
    _guard: FileLock,
    pub store: Store,
    /// As read or last written: what a failed save puts back.
    on_disk: Vec<NetState>,
    pub nets: Vec<NetState>,
}

impl Locked {
    pub fn get(&self, name: &str) -> Result<&NetState> {
        self.nets.iter().find(|n| n.name() == name).ok_or_else(|| no_network(name))
    }

    pub fn get_mut(&mut self, name: &str) -> Result<&mut NetState> {
        self.nets.iter_mut().find(|n| n.name() == name).ok_or_else(|| no_network(name))
    }

    /// Write network `name`'s state file and hosts file. Both are written in place,
    /// without O_TRUNC: the same inode (a bind mount of the hosts file sees the
    /// change), and no block freed then allocated again at each attach (on a
    /// filesystem mounted with `discard`, freeing a block makes the kernel discard it
    /// before the call returns). When the hosts file cannot be written, the state file
    /// is put back as it was (or removed, for a new network): a failed save changes
    /// nothing.
    pub fn save(&mut self, k: &Kernel, name: &str) -> Result<()> {
        let n = self.get(name)?.clone();
        let state = self.store.state_path(name);
        k.rewrite_file(&state, &encode(&n)?)?;
        if let Err(e) = k.rewrite_file(&self.store.hosts_path(name), &n.hosts_file()) {
            let undo = match self.on_disk.iter().find(|o| o.name() == name) {
                Some(old) => k.why("undo: the state file as it was").rewrite_file(&state, &encode(old)?).map(|_| ()),
                None => k.why("undo: the network's state file was new").unlink(&state),
            };
            if undo.is_err() {
                k.note(format!("leftover: {} may not match the network any more", state.display()));
            }
            return Err(e.into());
        }
        match self.on_disk.iter_mut().find(|o| o.name() == name) {
            Some(o) => *o = n,
            None => self.on_disk.push(n),
        }
        Ok(())
    }

    /// Forget network `name`: remove its state and hosts files.
    pub fn forget(&mut self, k: &Kernel, name: &str) -> Result<()> {
        for p in [self.store.state_path(name), self.store.hosts_path(name)] {
            match k.why("forget the network: its state files go").unlink(&p) {
                Err(e) if e.errno != Errno::ENOENT => return Err(e.into()),
                _ => {}
            }
        }
        self.nets.retain(|n| n.name() != name);
        self.on_disk.retain(|n| n.name() != name);
        Ok(())
    }
}

fn encode(n: &NetState) -> Result<String> {
    let text = serde_json::to_string_pretty(n).map_err(|e| {
        Error::failed(format!("cannot encode the state of the network {}: {e}", n.name()), "this is a bug: report it")
    })?;
    Ok(text + "\n")
}

pub(crate) fn no_network(name: &str) -> Error {
    Error::failed(
        format!("no contlab network named {name:?}"),
        format!(
            "create it first: netns-bridge bridge create {name} --subnet 10.200.0.1/24 (see `netns-bridge bridge ls`)"
        ),
    )
}
