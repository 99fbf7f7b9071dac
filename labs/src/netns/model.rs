//! The objects the network lab talks about: what the kernel reports (links, addresses,
//! routes) and what the lab asks nftables for (tables, chains, rules as bytecode).
//! Plain data, defined beside the requests that carry them (`kernel/rtnl.rs`,
//! `kernel/nft.rs`); the lab names them from here.

pub use crate::kernel::{Addr, Expr, Hook, Link, LinkChange, MetaKey, NftMsg, NftRule, Route};
