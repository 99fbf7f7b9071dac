//! Volumes, bind mounts and tmpfs: the container's data outside its layers.
//!
//! A container's root is an overlay: what it writes lands in its own upper layer and
//! goes with `rm`. Data that must outlive the container, be shared, or be written fast
//! lives elsewhere and is mounted over a path of the root before `pivot_root(2)`:
//!
//! - a **bind mount** (`-v /host/dir:/path`, `--mount type=bind`): `mount(2)` with
//!   `MS_BIND` of a host directory or file: the same inode seen from a second place;
//! - a **volume** (`-v NAME:/path`, `--mount type=volume`): a bind mount too, of a
//!   directory mini manages, `ROOT/volumes/NAME/_data` (docker's
//!   `/var/lib/docker/volumes/NAME/_data`), or with the local driver's options a
//!   filesystem mounted there first (`type=tmpfs`, `type=none,o=bind,device=/path`);
//! - a **tmpfs** (`--tmpfs /path`, `--mount type=tmpfs`): a filesystem in memory,
//!   gone with the container.

use serde::{Deserialize, Serialize};

/// One mount of a container, as `docker inspect` shows it under `Mounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// `volume`, `bind` or `tmpfs`.
    pub kind: String,
    /// The volume's name (volumes only; 64 hex digits for an anonymous one).
    pub name: String,
    /// The host path mounted: the volume's `_data`, the bind's source; empty for tmpfs.
    pub source: String,
    /// The path inside the container.
    pub destination: String,
    /// `local` for volumes.
    pub driver: String,
    /// docker's Mode: `""`, `ro`, `z`...
    pub mode: String,
    /// Writable.
    pub rw: bool,
    /// `rprivate` for binds, empty otherwise.
    pub propagation: String,
    /// tmpfs options (`size=65536k,mode=1777`), as mount(2)'s data.
    pub options: String,
    /// A volume made for this container only (`-v /path`, the image's VOLUME):
    /// removed with `rm -v` and `run --rm`.
    pub anonymous: bool,
}
