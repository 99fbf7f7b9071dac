//! From an image's layers to directories: a flat root filesystem ([`unpack`]), or one
//! directory per layer, shared by every image that has it, for overlayfs
//! ([`layer_dirs`]).
//!
//! Both stream the layers through [`super::pipe`] (its threads are joined before they
//! return) into [`crate::layer::apply`], and both fill a new directory beside its final
//! place ([`crate::layer::Staging`]: `.NAME.partial`, renamed when complete): a refused
//! layer, a diff_id that does not match, or a killed process never leaves a half-made
//! directory under its final name, and the next run removes a `.NAME.partial` left by
//! a killed one.

use std::path::{Path, PathBuf};

use super::pipe;
use super::registry::short;
use super::store::{mkdir_p, Image, Store};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, Mode};
use crate::layer::{ApplyOptions, Staging};

/// The blobs of `img`'s layers `which`, for [`pipe::stream`].
fn blobs(st: &Store, img: &Image, which: &[usize]) -> Vec<pipe::Blob> {
    which
        .iter()
        .map(|&i| pipe::Blob {
            digest: img.manifest.layers[i].digest.clone(),
            path: st.blob_path(&img.manifest.layers[i].digest),
        })
        .collect()
}

fn apply_layer(
    k: &Kernel,
    layers: &pipe::Layers,
    img: &Image,
    i: usize,
    dest: &Path,
    opts: &ApplyOptions,
) -> Result<()> {
    let l = &img.manifest.layers[i];
    let want = &img.config.rootfs.diff_ids[i];
    let mut h = layers.next()?;
    k.note(format!(
        "layer {}/{}: {} ({}) → {}",
        i + 1,
        img.manifest.layers.len(),
        short(&l.digest),
        l.media_type,
        dest.display()
    ));
    let stats = crate::layer::apply(k, &mut h, dest, opts)?;
    let (got, _) = h.finish().map_err(|e| {
        Error::failed(format!("reading layer {}: {e}", l.digest), "the blob is corrupt: pull the image again")
    })?;
    if k.mode() == Mode::Live && &got != want {
        return Err(Error::failed(
            format!("diff_id mismatch for layer {}: {got}, the config says {want}", l.digest),
            "the store is corrupt: `img-pull rm` the image and pull it again",
        ));
    }
    k.note(format!(
        "layer {}: {} entries, {} bytes, {} whiteouts",
        short(&l.digest),
        stats.entries,
        stats.bytes,
        stats.whiteouts
    ));
    Ok(())
}

fn check_layers(img: &Image) -> Result<()> {
    if img.config.rootfs.diff_ids.len() != img.manifest.layers.len() {
        return Err(Error::failed("the config's diff_ids do not match the layers", "the image is malformed"));
    }
    Ok(())
}

/// Apply `img`'s layers, bottom first, into `dir` (missing, or an empty directory,
/// which it then replaces): a flat root filesystem, whiteouts applied. The tree is
/// made in `.DIR.partial` and renamed to `dir` once every layer is in and verified.
pub fn unpack(k: &Kernel, st: &Store, img: &Image, dir: &Path) -> Result<()> {
    check_layers(img)?;
    match std::fs::read_dir(dir) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(Error::failed(
                    format!("{} is not empty", dir.display()),
                    "unpack into a new or empty directory",
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::failed(format!("cannot read {}: {e}", dir.display()), "give a directory")),
    }
    let opts = ApplyOptions::for_caller(k);
    let all: Vec<usize> = (0..img.manifest.layers.len()).collect();
    if k.mode() == Mode::DryRun {
        // Nothing is made: the layers are read and checked against `dir` as it is.
        return pipe::stream(blobs(st, img, &all), |layers| {
            all.iter().try_for_each(|&i| apply_layer(k, layers, img, i, dir, &opts))
        });
    }
    let stage = Staging::begin(k, dir)?;
    let r = pipe::stream(blobs(st, img, &all), |layers| {
        all.iter().try_for_each(|&i| apply_layer(k, layers, img, i, &stage.path, &opts))
    });
    match r {
        Ok(()) => stage.commit(k),
        Err(e) => {
            k.note(format!("removing {} after the failure", stage.path.display()));
            stage.abort(k)?;
            Err(e)
        }
    }
}

/// Where the store keeps the layer whose diff_id is `diff_id`: `ROOT/layers/HEX`.
pub fn layer_dir(st: &Store, diff_id: &str) -> PathBuf {
    st.root.join("layers").join(diff_id.strip_prefix("sha256:").unwrap_or(diff_id))
}

/// Each layer of `img` extracted on its own, once per diff_id, into `ROOT/layers/HEX`
/// (whiteouts kept as overlayfs wants them: 0/0 character devices, the opaque xattr),
/// shared by every image that has it: what docker's overlay2 driver keeps under
/// /var/lib/docker/overlay2. A layer already there is not extracted again.
///
/// Returns the directories **top first**, as [`crate::overlay::Spec::lowers`] takes
/// them (the reverse of the manifest's order). The store must be open for writing
/// ([`Store::open`] with `exclusive`).
pub fn layer_dirs(k: &Kernel, st: &Store, img: &Image) -> Result<Vec<PathBuf>> {
    check_layers(img)?;
    if !st.exclusive() {
        return Err(Error::failed(
            "layer_dirs writes into the store: it needs the store open for writing",
            "open it with Store::open(k, root, true)",
        ));
    }
    let diff_ids = &img.config.rootfs.diff_ids;
    // The layers to extract: not in the store yet, each diff_id once.
    let todo: Vec<usize> = (0..diff_ids.len())
        .filter(|&i| !layer_dir(st, &diff_ids[i]).is_dir() && !diff_ids[..i].contains(&diff_ids[i]))
        .collect();
    let opts = ApplyOptions { overlay_whiteouts: true, ..ApplyOptions::for_caller(k) };
    let mut dirs = vec![];
    pipe::stream(blobs(st, img, &todo), |layers| {
        for (i, di) in diff_ids.iter().enumerate() {
            let cache = layer_dir(st, di);
            if !todo.contains(&i) {
                k.note(format!("layer {}: already extracted in {} (shared by diff_id)", i + 1, cache.display()));
            } else if k.mode() == Mode::DryRun {
                apply_layer(k, layers, img, i, &cache, &opts)?;
            } else {
                let stage = Staging::begin(k, &cache)?;
                if let Err(e) = apply_layer(k, layers, img, i, &stage.path, &opts) {
                    stage.abort(k)?;
                    return Err(e);
                }
                k.why("publish the extracted layer under its diff_id only once it is complete");
                stage.commit(k)?;
            }
            dirs.push(cache);
        }
        Ok(())
    })?;
    dirs.reverse();
    Ok(dirs)
}

/// [`layer_dirs`], and in `dir` (created if missing) a symlink per layer, `dir/0` the
/// bottom one, `dir/1`... pointing into the store (`img-pull unpack --layers`).
/// Returns the directories top first.
pub fn link_layers(k: &Kernel, st: &Store, img: &Image, dir: &Path) -> Result<Vec<PathBuf>> {
    let dirs = layer_dirs(k, st, img)?;
    mkdir_p(k, dir)?;
    for (i, d) in dirs.iter().rev().enumerate() {
        let link = dir.join(i.to_string());
        if k.mode() == Mode::Live && std::fs::symlink_metadata(&link).is_ok() {
            k.why("replace an older link");
            k.unlink(&link)?;
        }
        k.symlink(d, &link)?;
    }
    Ok(dirs)
}
