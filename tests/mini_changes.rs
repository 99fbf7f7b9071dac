//! mini: diff, commit, export/import and cp: the course's storage exercises 2 and 3 (STORAGE-EX2, STORAGE-EX3, IMG-09, IMG-10, IMG-12) and cp's path safety.

#[allow(unused_imports)]
use crate::mini::{ok, sandbox, section};
