//! Kernel requests of the dm lab (being written).

#[allow(unused_imports)]
use super::Kernel;
