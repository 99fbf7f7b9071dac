//! Kernel requests of the layer lab (being written).

#[allow(unused_imports)]
use super::Kernel;
