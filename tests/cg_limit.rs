//! cg-limit (being written)
