//! # contlab: container internals, step by step
//!
//! Each module is one lab, and one binary exposes it:
//!
//! | lab | binary | what the kernel provides |
//! |---|---|---|
//! | [`ns`] | `ns-exec` | namespaces: unshare(2), setns(2), pivot_root(2), uid_map |
//! | [`cgroup`] | `cg-limit` | control groups: cgroupfs files, v1 and v2 |
//! | [`overlay`] | `ovl-mount` | overlayfs: mount(2), the new mount API, whiteouts |
//! | [`layer`] | `layer-diff` | docker diff, OCI layer tarballs |
//! | [`netns`] | `netns-bridge` | rtnetlink: netns, bridges, veth; nftables NAT |
//! | [`image`] | `img-pull` | the OCI distribution protocol and an image store |
//! | [`dm`] | `lvm-snap` | device-mapper and loop ioctls |
//! | [`runtime`] | `mini` | all of the above, composed: a container runtime |
//!
//! Every lab talks to the kernel through [`kernel::Kernel`], which prints each request
//! it makes, strace-style, on stderr. Read [`kernel`] first.
#![warn(missing_docs)]

pub mod cgroup;
pub mod cli;
pub mod dm;
pub mod error;
pub mod exit;
pub mod image;
pub mod kernel;
pub mod layer;
pub mod lock;
pub mod netns;
pub mod ns;
pub mod overlay;
pub mod runtime;
pub mod units;

pub use error::{Error, Hint, Result};
pub use exit::{Exit, Role};
