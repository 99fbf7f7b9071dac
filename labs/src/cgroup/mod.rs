//! cgroups lab (being written)
