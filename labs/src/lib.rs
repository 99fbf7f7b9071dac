//! # contlab: container internals, step by step
//!
//! Each module is one lab, and one binary exposes it:
//!
//! | lab | binary | what the kernel provides |
//! |---|---|---|
//! | [`ns`] | `ns-exec` | namespaces: unshare(2), setns(2), pivot_root(2), uid_map |
//! | [`cgroup`] | `cg-limit` | control groups: cgroupfs files, v1 and v2 |
//!
//! Every lab talks to the kernel through [`kernel::Kernel`], which prints each request
//! it makes, strace-style, on stderr. Read [`kernel`] first.
#![warn(missing_docs)]

pub mod cgroup;
pub mod cli;
pub mod error;
pub mod exit;
pub mod kernel;
pub mod ns;

pub use error::{Error, Hint, Result};
pub use exit::{Exit, Role};
