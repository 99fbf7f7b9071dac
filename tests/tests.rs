//! contlab's one integration test binary: a module per tool, plus the harness.
//!
//! Tiers (see the README): unit tests live beside the code in `labs/`; here are the
//! CLI tests (any user), the privileged tier (root, on this machine), and the vm tier
//! (modules named `guest`, run inside a real kernel booted by `vm::guest_suite`).

mod harness;

mod cg_limit;
mod kernel;
mod ns_exec;
mod vm;
