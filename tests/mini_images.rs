//! mini: mini's image commands against docker's: images, rmi, tag, inspect, history, save/load with docker and podman, prune, system df (IMG-*, BASICS-EX1).

#[allow(unused_imports)]
use crate::mini::{ok, sandbox, section};
