//! Kernel requests of the netlink lab (being written).

#[allow(unused_imports)]
use super::Kernel;
