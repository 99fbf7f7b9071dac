//! Kernel requests of the image lab (being written).

#[allow(unused_imports)]
use super::Kernel;
