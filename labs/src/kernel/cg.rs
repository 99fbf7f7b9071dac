//! Requests specific to the cgroups lab that the general file calls do not cover.

#[allow(unused_imports)]
use super::Kernel;
