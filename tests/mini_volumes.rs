//! mini: volumes, bind mounts and tmpfs with mini: the course's volume exercises (VOL-*, STORAGE-EX4).

#[allow(unused_imports)]
use crate::mini::{ok, sandbox, section};
