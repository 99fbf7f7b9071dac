//! Kernel requests of the overlay lab (being written).

#[allow(unused_imports)]
use super::Kernel;
