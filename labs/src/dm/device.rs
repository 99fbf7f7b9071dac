//! What the device-mapper and loop interfaces exchange with the kernel: a table line,
//! what the kernel says about a mapped device, an open device. The ioctls and these
//! types live in the kernel layer (`kernel/dm.rs`, `kernel/block.rs`); the lab names
//! them from here.

pub use crate::kernel::{DevFd, DmInfo, DmTarget, LoopDev};
