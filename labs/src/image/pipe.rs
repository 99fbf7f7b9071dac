//! Layers streamed from the store to [`crate::layer::apply`], on three threads.
//!
//! Unpacking a layer is three jobs: read and decompress the blob, compute the sha256
//! of the tar (the diff_id, checked against the config), and write the files. One
//! after the other they add up; here a reader thread decompresses (running ahead into
//! the next layers), a hasher thread hashes, and the caller's thread applies, all at
//! once. Layers are still applied strictly in order, one by one, and a layer's
//! diff_id is compared once it is written, as before.
//!
//! ```text
//! blob ─► decompress ─┬─► pieces ─► apply (caller: files, whiteouts, trace)
//!        (reader)     └─► pieces ─► sha256 (hasher) ─► diff_id
//! ```
//!
//! Memory stays bounded: pieces are [`PIECE`] bytes, at most [`IN_FLIGHT`] wait in
//! each channel, and the buffers are recycled.

use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

use sha2::Digest as _;

use super::registry::hex;
use crate::error::{Error, Result};

/// The size of the pieces a decompressed layer travels in.
pub const PIECE: usize = 1 << 20;
/// Pieces waiting in each channel at most.
pub const IN_FLIGHT: usize = 4;

/// What the reader thread sends to the applying thread.
enum Piece {
    Data(Arc<Vec<u8>>),
    /// The end of the current layer.
    End,
    /// Reading or decompressing failed mid-layer.
    Fail(std::io::Error),
    /// The blob could not be opened or is not a layer (before its first byte).
    Open(Error),
}

/// One blob to stream: its digest (for messages) and its path in the store.
pub struct Blob {
    /// `sha256:…` of the compressed blob.
    pub digest: String,
    /// Where it is.
    pub path: PathBuf,
}

/// The applying side: hands out one layer stream after the other.
pub struct Layers {
    rx: Receiver<Piece>,
    sums: Receiver<(String, u64)>,
    free: Sender<Vec<u8>>,
}

/// One layer's decompressed bytes, as a reader for [`crate::layer::apply`].
pub struct LayerStream<'a> {
    layers: &'a Layers,
    first: Option<Piece>,
    cur: Option<Arc<Vec<u8>>>,
    pos: usize,
    ended: bool,
}

fn recycle(free: &Sender<Vec<u8>>, piece: Arc<Vec<u8>>) {
    // Exactly one of the two holders (applier, hasher) gets the buffer back.
    if let Some(v) = Arc::into_inner(piece) {
        let _ = free.send(v);
    }
}

/// Stream `blobs` (in order) to `f`, which takes each with [`Layers::next`].
pub fn stream<T>(blobs: Vec<Blob>, f: impl FnOnce(&Layers) -> Result<T>) -> Result<T> {
    let (tx, rx) = sync_channel::<Piece>(IN_FLIGHT);
    let (htx, hrx) = sync_channel::<Option<Arc<Vec<u8>>>>(IN_FLIGHT);
    let (stx, srx) = channel::<(String, u64)>();
    let (ftx, frx) = channel::<Vec<u8>>();
    let hfree = ftx.clone();
    std::thread::scope(|s| {
        s.spawn(move || read_blobs(blobs, tx, htx, frx));
        s.spawn(move || hash_layers(hrx, stx, hfree));
        let layers = Layers { rx, sums: srx, free: ftx };
        // Dropping `layers` on return (even early, on an error) stops both threads.
        f(&layers)
    })
}

fn read_blobs(blobs: Vec<Blob>, tx: SyncSender<Piece>, htx: SyncSender<Option<Arc<Vec<u8>>>>, free: Receiver<Vec<u8>>) {
    for b in blobs {
        let f = match std::fs::File::open(&b.path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(Piece::Open(Error::failed(
                    format!("layer {} missing from the store ({}): {e}", b.digest, b.path.display()),
                    "pull the image again",
                )));
                return;
            }
        };
        let mut r = match crate::layer::decompress(std::io::BufReader::with_capacity(256 << 10, f)) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Piece::Open(e));
                return;
            }
        };
        loop {
            let mut v = free.try_recv().unwrap_or_default();
            v.resize(PIECE, 0);
            let mut n = 0;
            while n < v.len() {
                match r.read(&mut v[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if n > 0 {
                            v.truncate(n);
                            let p = Arc::new(v);
                            if htx.send(Some(p.clone())).is_err() || tx.send(Piece::Data(p)).is_err() {
                                return;
                            }
                        }
                        let _ = tx.send(Piece::Fail(e));
                        return;
                    }
                }
            }
            if n == 0 {
                break;
            }
            v.truncate(n);
            let p = Arc::new(v);
            if htx.send(Some(p.clone())).is_err() || tx.send(Piece::Data(p)).is_err() {
                return;
            }
        }
        if htx.send(None).is_err() || tx.send(Piece::End).is_err() {
            return;
        }
    }
}

fn hash_layers(rx: Receiver<Option<Arc<Vec<u8>>>>, sums: Sender<(String, u64)>, free: Sender<Vec<u8>>) {
    let mut h = sha2::Sha256::new();
    let mut n = 0u64;
    for p in rx {
        match p {
            Some(p) => {
                h.update(&p[..]);
                n += p.len() as u64;
                recycle(&free, p);
            }
            None => {
                let d = std::mem::take(&mut h).finalize();
                if sums.send((format!("sha256:{}", hex(&d)), n)).is_err() {
                    return;
                }
                n = 0;
            }
        }
    }
}

impl Layers {
    /// The next layer. Fails (before anything is read) if its blob is missing or is
    /// not a layer.
    pub fn next(&self) -> Result<LayerStream<'_>> {
        match self.rx.recv() {
            Ok(Piece::Open(e)) => Err(e),
            Ok(p) => Ok(LayerStream { layers: self, first: Some(p), cur: None, pos: 0, ended: false }),
            Err(_) => Err(Error::failed("the layer reader stopped", "run the command again")),
        }
    }
}

impl LayerStream<'_> {
    /// Read to the end of the layer (what `apply` left: the tar's padding), then its
    /// sha256 and size.
    pub fn finish(mut self) -> std::io::Result<(String, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        self.layers.sums.recv().map_err(|_| std::io::Error::other("the layer hasher stopped"))
    }
}

impl Read for LayerStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(c) = &self.cur {
                if self.pos < c.len() {
                    let n = buf.len().min(c.len() - self.pos);
                    buf[..n].copy_from_slice(&c[self.pos..self.pos + n]);
                    self.pos += n;
                    return Ok(n);
                }
                if let Some(c) = self.cur.take() {
                    recycle(&self.layers.free, c);
                }
            }
            if self.ended {
                return Ok(0);
            }
            let p = match self.first.take() {
                Some(p) => p,
                None => self.layers.rx.recv().map_err(|_| std::io::Error::other("the layer reader stopped"))?,
            };
            match p {
                Piece::Data(c) => {
                    self.cur = Some(c);
                    self.pos = 0;
                }
                Piece::End => self.ended = true,
                Piece::Fail(e) => return Err(e),
                Piece::Open(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
    }
}

impl Drop for LayerStream<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.cur.take() {
            recycle(&self.layers.free, c);
        }
    }
}

/// The thread that hashes a layer's uncompressed bytes, and the channel feeding it.
type Hasher = (SyncSender<Vec<u8>>, std::thread::JoinHandle<Result<super::LayerInfo>>);

/// The diff_id check of a layer being downloaded: a thread decompresses and hashes
/// the bytes [`super::registry::Registry::download`] taps, while the download goes
/// on, so the blob is not read back from the disk afterwards.
pub struct Verifier {
    want: String,
    what: PathBuf,
    run: Option<Hasher>,
    free: Option<Receiver<Vec<u8>>>,
}

/// Bytes from a channel, as a reader.
struct ChanReader {
    rx: Receiver<Vec<u8>>,
    free: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            let Ok(next) = self.rx.recv() else { return Ok(0) };
            let old = std::mem::replace(&mut self.cur, next);
            let _ = self.free.send(old);
            self.pos = 0;
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Verifier {
    /// A check that the layer decompresses to `want`; `what` names it in messages.
    pub fn new(want: &str, what: &std::path::Path) -> Verifier {
        Verifier { want: want.to_string(), what: what.to_path_buf(), run: None, free: None }
    }

    /// Feed it what the download hands over.
    pub fn tap(&mut self, t: super::registry::Tap<'_>) {
        match t {
            super::registry::Tap::Restart => {
                self.stop();
                let (tx, rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
                let (ftx, frx) = channel::<Vec<u8>>();
                let (want, what) = (self.want.clone(), self.what.clone());
                let h = std::thread::spawn(move || {
                    super::check_diff_id(ChanReader { rx, free: ftx, cur: Vec::new(), pos: 0 }, &what, &want)
                });
                self.run = Some((tx, h));
                self.free = Some(frx);
            }
            super::registry::Tap::Bytes(b) => {
                if let Some((tx, _)) = &self.run {
                    let mut v = self.free.as_ref().and_then(|f| f.try_recv().ok()).unwrap_or_default();
                    v.clear();
                    v.extend_from_slice(b);
                    // A failed send: the check already failed; finish() tells why.
                    let _ = tx.send(v);
                }
            }
        }
    }

    fn stop(&mut self) -> Option<Result<super::LayerInfo>> {
        let (tx, h) = self.run.take()?;
        drop(tx);
        Some(h.join().unwrap_or_else(|_| Err(Error::failed("the layer check stopped", "run the command again"))))
    }

    /// The download is complete: the check's answer. Without taps (nothing was
    /// streamed), the blob is read back from `part`.
    pub fn finish(mut self, part: &std::path::Path) -> Result<super::LayerInfo> {
        match self.stop() {
            Some(r) => r,
            None => super::verify_diff_id(part, &self.want),
        }
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn sha(data: &[u8]) -> String {
        super::super::registry::sha256_digest(data)
    }

    #[test]
    fn layers_stream_in_order_with_their_sha256() {
        let dir = std::env::temp_dir().join(format!("contlab-pipe-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a: Vec<u8> = (0..3 * PIECE + 17).map(|i| (i % 251) as u8).collect();
        let b = b"small layer".to_vec();
        let blobs: Vec<Blob> = [(&a, "a"), (&b, "b")]
            .iter()
            .map(|(d, n)| {
                let path = dir.join(n);
                std::fs::write(&path, gz(d)).unwrap();
                Blob { digest: format!("sha256:{n}"), path }
            })
            .collect();
        let got = stream(blobs, |layers| {
            let mut out = vec![];
            for _ in 0..2 {
                let mut s = layers.next()?;
                let mut v = vec![];
                // Read a little only, as apply stops at the tar's end: finish() drains.
                (&mut s).take(1000).read_to_end(&mut v).unwrap();
                let (digest, n) = s.finish().unwrap();
                out.push((v, digest, n));
            }
            Ok(out)
        })
        .unwrap();
        assert_eq!(got[0].0, a[..1000]);
        assert_eq!((got[0].1.clone(), got[0].2), (sha(&a), a.len() as u64));
        assert_eq!((got[1].0.clone(), got[1].1.clone()), (b.clone(), sha(&b)));
        // A missing blob fails at next(), before anything of it is read.
        let missing = vec![Blob { digest: "sha256:x".into(), path: dir.join("nope") }];
        let e = stream(missing, |layers| layers.next().map(|_| ())).unwrap_err();
        assert!(e.to_string().contains("missing from the store"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn verifier_follows_restarts() {
        let data: Vec<u8> = (0..500_000u32).map(|i| (i * 7 % 13) as u8).collect();
        let blob = gz(&data);
        let part = std::path::Path::new("/nonexistent/part");
        let mut v = Verifier::new(&sha(&data), part);
        // A first attempt breaks off, then the download starts over.
        v.tap(super::super::registry::Tap::Restart);
        v.tap(super::super::registry::Tap::Bytes(&blob[..blob.len() / 3]));
        v.tap(super::super::registry::Tap::Restart);
        for c in blob.chunks(4096) {
            v.tap(super::super::registry::Tap::Bytes(c));
        }
        let info = v.finish(part).unwrap();
        assert_eq!((info.diff_id, info.size), (sha(&data), data.len() as u64));
        // Other bytes than the config says: refused.
        let mut v = Verifier::new(&sha(b"other"), part);
        v.tap(super::super::registry::Tap::Restart);
        v.tap(super::super::registry::Tap::Bytes(&blob));
        assert!(v.finish(part).unwrap_err().to_string().contains("diff_id mismatch"));
    }
}
