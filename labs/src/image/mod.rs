//! # Images: what `img-pull` does, and what `docker pull` does behind the daemon
//!
//! An image is not a file. It is a small graph of *content-addressed* blobs: each is
//! named by the sha256 of its bytes, so a name can never point at other content, and
//! two images that share a layer share its blob.
//!
//! ```text
//! index (optional)  ──►  manifest (one platform)  ──►  config   (JSON: env, cmd, rootfs.diff_ids, history)
//!  linux/amd64           sha256:…                 └─►  layer 1  (tar.gz: the files of the first step)
//!  linux/arm64 …                                  └─►  layer 2  (tar.gz: what the next step changed)
//! ```
//!
//! The **image ID** docker shows is the digest of the config, which lists the digests
//! of the *uncompressed* layers (`diff_ids`, `docker inspect --format '{{json
//! .RootFS.Layers}}'`). So, to the course's question "is the image ID the same for
//! your classmates?": yes — the same bytes give the same sha256 on every machine.
//!
//! ## Pulling, request by request
//!
//! `img-pull pull alpine:3.17`:
//!
//! 1. The reference is normalised as docker does: `docker.io/library/alpine:3.17`
//!    (see [`reference`](mod@reference)). Docker Hub's API answers at `registry-1.docker.io`.
//! 2. `GET /v2/` — the *ping*. `401` with `WWW-Authenticate: Bearer realm=…,service=…`
//!    says where to get a token; `Basic` asks for a password on every request
//!    (see [`auth`]).
//! 3. `GET https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/alpine:pull`
//!    — anonymously, or with the credentials of `img-pull login`.
//! 4. `GET /v2/library/alpine/manifests/3.17` with `Accept:` the four manifest types.
//!    A multi-platform image answers with an *index*; we choose this machine's
//!    platform (or `--platform`) and fetch that manifest by digest.
//! 5. `GET /v2/library/alpine/blobs/sha256:…` for the config, then for each layer,
//!    up to `--jobs` at once. Docker Hub redirects (307) to a CDN; the Authorization
//!    header is not sent there. Each layer streams to `tmp/HEX.partial` while its
//!    size is counted and its sha256 computed, and a thread beside the download
//!    decompresses the same bytes and hashes them: at the end the sha256 must be
//!    the digest, and the decompressed sha256 the config's diff_id, or nothing is
//!    kept. An interrupted download resumes with `Range: bytes=N-` (this run or the
//!    next).
//! 6. The verified blobs are `rename(2)`d into `blobs/sha256/`, then index.json
//!    gets the name, by write + `fsync(2)` + `rename(2)`; all under `flock(2)`.
//!
//! Each HTTP request is a note in the trace (`GET https://… → 200`), beside the file
//! system calls: the protocol becomes visible.
//!
//! ## The store is an OCI image layout
//!
//! `ROOT/oci` (ROOT = `/var/lib/contlab`, `$CONTLAB_ROOT` or `--root`) is a standard
//! OCI layout: `skopeo inspect oci:ROOT/oci:docker.io/library/alpine:3.17` and
//! `umoci unpack --image ROOT/oci:…` read it. See [`store`].
//!
//! ## From layers to a root file system
//!
//! `img-pull unpack REF DIR` applies each layer in order with [`crate::layer::apply`]
//! (while other threads decompress the next bytes and hash them for the diff_id check,
//! see [`pipe`]):
//! a file in an upper layer replaces the one below, and a *whiteout* `.wh.NAME`
//! deletes it (`.wh..wh..opq`: everything below in that directory). With
//! `--layers`, each layer is extracted on its own, whiteouts kept as overlayfs wants
//! them (0/0 character devices, the `trusted.overlay.opaque` xattr), ready for
//! `ovl-mount`: this is what docker's overlay2 driver keeps under
//! /var/lib/docker/overlay2.
//!
//! ## What goes wrong
//!
//! - `manifest unknown`: wrong tag; `denied`/401: private repository, log in.
//! - `x509: certificate signed by unknown authority` (here: "not trusted"): pass the
//!   registry's CA with `--ca-cert`. Plain HTTP is only tried for localhost or
//!   `--insecure`, as docker does.
//! - A digest or size that does not match: the registry (or something in between)
//!   served other bytes; they are discarded and the store is left as it was, byte for
//!   byte. An interrupted download is kept in `ROOT/tmp` to resume (see [`pull`](mod@pull)).
//!
//! ## As a library
//!
//! A runtime uses the store through these operations, which print nothing (the
//! `img-pull` command line is an adapter over them, `image::cli`):
//!
//! - [`Store::open`] (shared lock to read, exclusive to write), [`Store::resolve`] a
//!   reference, a name or an ID prefix to an [`Image`] (its config: Env, Cmd,
//!   Entrypoint, WorkingDir, User, StopSignal, Labels, ExposedPorts, Volumes,
//!   history), [`Store::tag_image`], [`Store::remove`] (untag, then collect the
//!   garbage; [`Store::gc_keeping`] keeps besides the layers containers still stack),
//!   [`Store::layer_size`] (docker's size of a layer: its files' bytes once extracted),
//!   [`render::inspect_json`] and [`render::docker_inspect`] (docker's `ImageInspect`
//!   shape), [`render::chain_ids`], [`render::history_steps`];
//! - [`pull()`], which reports its progress through a callback of [`Progress`] events
//!   instead of printing;
//! - [`layer_dirs`]: each layer unpacked once per diff_id into `ROOT/layers/HEX`,
//!   shared, top first for [`crate::overlay::Spec::lowers`]; [`unpack()`] for a flat
//!   root filesystem;
//! - [`archive::save`] ([`archive::save_tagged`]: with the tags docker would give),
//!   [`archive::load`] ([`archive::load_stream`] from stdin), [`archive::export`],
//!   [`archive::import`]; [`compose::compose`], a new image from a parent, one layer
//!   and a config (what `docker commit` and `docker import` store);
//!   [`push()`], [`login`], [`logout`].
//!
//! Operations that start threads (pull, unpack, layer_dirs) join every one before
//! they return, so a caller may `fork(2)` right after.
//!
//! Every change they make to the system is a request of the kernel layer, in the
//! trace (see [`store`]); writing the bytes of a blob or an archive into a file the
//! kernel layer created is not a request.

pub mod archive;
pub mod auth;
mod cli;
pub mod compose;
pub mod manifest;
pub mod pipe;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod render;
pub mod store;
pub mod unpack;

pub use cli::{run, Cli};
pub use manifest::{Config, Platform, RunConfig};
pub use pull::{pull, HashReader, Progress, PullOptions};
pub use push::{login, logout, push, PushOptions, PushProgress, Pushed};
pub use reference::Reference;
pub use store::{Image, LayerInfo, Removed, Store};
pub use unpack::{layer_dir, layer_dirs, unpack};

pub(crate) use pull::{check_diff_id, verify_diff_id};

/// The tool this lab is, as its trace and messages name it.
pub const TOOL: &str = "img-pull";
