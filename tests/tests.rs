//! contlab's one integration test binary: a module per tool, plus the harness.
//!
//! Tiers (see the README): unit tests live beside the code in `labs/`; here are the
//! CLI tests (any user), the privileged tier (root, on this machine), and the vm tier
//! (modules named `guest`, run inside a real kernel booted by `vm::guest_suite`).

mod harness;

mod book;
mod cg_limit;
mod img_pull;
mod kernel;
mod layer_diff;
mod lvm_snap;
mod mini;
mod mini_build;
mod mini_changes;
mod mini_confine;
mod mini_devmapper;
mod mini_images;
mod mini_net;
mod mini_volumes;
mod netns_bridge;
mod ns_exec;
mod ovl_mount;
mod strace;
mod vm;
