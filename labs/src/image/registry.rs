//! The HTTP side: one registry, spoken to with the OCI distribution API.
//!
//! ```text
//! GET  /v2/                                   ping: 200, or 401 + WWW-Authenticate
//! GET  /v2/NAME/manifests/REF                 Accept: the four manifest types
//! GET  /v2/NAME/blobs/DIGEST                  often a 307 to blob storage; Range to resume
//! HEAD /v2/NAME/blobs/DIGEST                  does the registry have it? (push)
//! POST /v2/NAME/blobs/uploads/[?mount=D&from=OTHER]   start an upload (or mount)
//! PATCH  <Location>                           a chunk (Content-Range)
//! PUT    <Location>?digest=D                  finish (with the body: monolithic)
//! PUT  /v2/NAME/manifests/TAG                 publish the manifest
//! ```
//!
//! Every request is one note in the trace (method, URL, status). The client is
//! `Sync` so that layer downloads run in parallel threads; notes from those threads
//! go through a callback to the thread that owns the [`crate::kernel::Kernel`].

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::auth::{self, Challenge, Credentials};
use super::manifest::{self, Descriptor, Document, MAX_MANIFEST};
use crate::error::{Error, Result};

/// Where notes go: the kernel's trace on the main thread, a channel in workers.
pub type Log<'a> = &'a dyn Fn(String);

/// How many redirects are followed before giving up (Go's http client: 10).
const MAX_REDIRECTS: usize = 10;
/// The buffer of blob transfers: one write(2) and one progress report per buffer.
const BUF: usize = 256 << 10;
/// How many times an interrupted blob download is resumed.
pub const RESUME_ATTEMPTS: usize = 4;

/// What [`Registry::download`] hands to its tap as the blob arrives.
pub enum Tap<'a> {
    /// Forget the bytes handed so far: the blob starts again from byte 0.
    Restart,
    /// The next bytes of the blob.
    Bytes(&'a [u8]),
}

/// Why [`Registry::download`] stopped.
#[derive(Debug)]
pub enum Stop {
    /// The bytes are wrong (digest, size, status): the partial download must go.
    Refused(Error),
    /// The connection broke (or the disk failed): what arrived is good so far, kept to
    /// resume.
    Interrupted(Error),
}

impl Stop {
    /// The error inside.
    pub fn into_error(self) -> Error {
        match self {
            Stop::Refused(e) | Stop::Interrupted(e) => e,
        }
    }
}

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Allow plain HTTP (and fall back to it) for any registry.
    pub insecure: bool,
    /// An extra CA certificate (PEM) to trust besides the system's.
    pub ca_cert: Option<PathBuf>,
    /// Credentials given on the command line (else config.json's).
    pub creds: Option<Credentials>,
    /// Give up on a connection that sends nothing for this long.
    pub timeout: Duration,
}

#[derive(Default)]
struct AuthState {
    basic: Option<String>,
    bearer: Option<Challenge>,
    tokens: HashMap<String, String>,
}

/// A registry, pinged and ready: its base URL and what authentication it wants.
pub struct Registry {
    agent: ureq::Agent,
    /// `https://registry-1.docker.io` or `http://127.0.0.1:5000`.
    pub base: String,
    /// The domain as written in references (`docker.io`), for credentials.
    pub domain: String,
    creds: Option<Credentials>,
    state: Mutex<AuthState>,
}

/// What a request sends.
pub enum Body<'a> {
    /// Nothing.
    Empty,
    /// These bytes.
    Bytes(&'a [u8]),
    /// `len` bytes read from a reader (uploads; cannot be replayed after a 401).
    Reader(&'a mut dyn Read, u64),
}

/// A response: status, headers, and the body still to read.
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The final URL (after redirects).
    pub url: String,
    inner: ureq::Response,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.header(name)
    }
    /// The body.
    pub fn into_reader(self) -> Box<dyn Read + Send + Sync + 'static> {
        self.inner.into_reader()
    }
    /// The body, at most `max` bytes (refused beyond).
    pub fn bytes(self, max: u64, what: &str) -> Result<Vec<u8>> {
        if let Some(n) = self.header("Content-Length").and_then(|v| v.parse::<u64>().ok()) {
            if n > max {
                return Err(Error::failed(
                    format!("{what} is {n} bytes, more than the {max} allowed"),
                    "the registry is misbehaving or this is not an image registry",
                ));
            }
        }
        let url = self.url.clone();
        let mut v = Vec::new();
        self.into_reader().take(max + 1).read_to_end(&mut v).map_err(|e| io_failed(&url, e))?;
        if v.len() as u64 > max {
            return Err(Error::failed(
                format!("{what} is more than the {max} bytes allowed"),
                "the registry is misbehaving or this is not an image registry",
            ));
        }
        Ok(v)
    }
}

fn io_failed(url: &str, e: std::io::Error) -> Error {
    let hint = if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock {
        "the server stopped sending; try again, or raise --timeout"
    } else {
        "the connection broke; run the same command again (downloads resume)"
    };
    Error::failed(format!("reading {url}: {e}"), hint)
}

/// `sha256:HEX` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The TLS settings: the system's CA roots, plus `--ca-cert`.
fn tls_config(extra: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    if let Some(path) = extra {
        let data = std::fs::read(path).map_err(|e| {
            Error::failed(
                format!("cannot read the CA certificate {}: {e}", path.display()),
                "give --ca-cert a PEM file",
            )
        })?;
        let mut n = 0;
        for c in rustls_pemfile::certs(&mut &data[..]) {
            let c =
                c.map_err(|e| Error::failed(format!("bad PEM in {}: {e}", path.display()), "give a PEM certificate"))?;
            roots.add(c).map_err(|e| {
                Error::failed(format!("cannot use the certificate in {}: {e}", path.display()), "give a CA certificate")
            })?;
            n += 1;
        }
        if n == 0 {
            return Err(Error::failed(
                format!("no certificate in {}", path.display()),
                "--ca-cert takes a PEM file (-----BEGIN CERTIFICATE-----)",
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::failed(format!("TLS setup: {e}"), "this is a bug"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn transport_error(method: &str, url: &str, e: &ureq::Transport) -> Error {
    let text = e.to_string();
    let hint = if text.contains("certificate") || text.contains("Certificate") {
        "the server's certificate is not trusted: pass its CA with --ca-cert"
    } else if text.contains("timed out") || text.contains("Timeout") {
        "the server did not answer in time: check it, or raise --timeout"
    } else {
        "check the registry address and that it is running (curl it)"
    };
    Error::failed(format!("{method} {url}: {text}"), hint)
}

fn host_of(u: &str) -> Option<String> {
    let p = url::Url::parse(u).ok()?;
    Some(format!("{}:{}", p.host_str()?, p.port_or_known_default()?))
}

impl Registry {
    /// Reach the registry at `domain` (`api_host` is where its API answers): build the
    /// HTTP agent, ping `/v2/`, learn the authentication scheme.
    pub fn connect(log: Log, domain: &str, api_host: &str, opts: &Options) -> Result<Registry> {
        let timeout = if opts.timeout.is_zero() { Duration::from_secs(30) } else { opts.timeout };
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(15).min(timeout.max(Duration::from_secs(1))))
            .timeout_read(timeout)
            .timeout_write(timeout)
            .user_agent(concat!("contlab-img-pull/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls_config(opts.ca_cert.as_deref())?)
            .build();
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None => auth::lookup(domain).map_err(|e| Error::failed(e, "fix or remove the docker config file"))?,
        };
        if let Some(c) = &creds {
            log(format!("credentials for {domain}: user {:?}", c.username));
        }
        let mut reg = Registry {
            agent,
            base: format!("https://{api_host}"),
            domain: domain.to_string(),
            creds,
            state: Mutex::new(AuthState::default()),
        };
        let plain_ok = opts.insecure || super::reference::is_local_host(api_host);
        match reg.ping(log) {
            Ok(()) => Ok(reg),
            Err(e) if plain_ok => {
                let why = match &e {
                    Error::Failed { what, .. } => what.clone(),
                    other => other.to_string(),
                };
                log(format!(
                    "HTTPS failed ({why}); {api_host} is {}: trying plain HTTP, as docker does",
                    if opts.insecure { "marked --insecure" } else { "a local registry" }
                ));
                reg.base = format!("http://{api_host}");
                match reg.ping(log) {
                    Ok(()) => Ok(reg),
                    // A registry that serves only HTTPS answers plain HTTP with 400,
                    // which explains nothing: then the HTTPS reason is the one to give.
                    Err(plain) if plain.to_string().contains("answered 400") => Err(Error::failed(
                        format!("{api_host}: HTTPS failed ({why}), and plain HTTP failed too ({plain})"),
                        if why.to_lowercase().contains("certificate") {
                            "the registry serves HTTPS with a certificate this machine does not trust: pass its CA with --ca-cert"
                        } else {
                            "check the registry address and that it is running (curl it)"
                        },
                    )),
                    Err(plain) => Err(plain),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn ping(&self, log: Log) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let resp = self.raw(log, "GET", &url, &[], Body::Empty)?;
        match resp.status {
            200 => {
                log("registry needs no authentication".into());
                Ok(())
            }
            401 => {
                let h = resp.header("WWW-Authenticate").unwrap_or("").to_string();
                self.learn(log, &h, &url)
            }
            404 => Err(Error::failed(
                format!("{url} answered 404: not a registry speaking the v2 API"),
                "check the registry address",
            )),
            s => Err(Error::failed(format!("{url} answered {s}"), "check the registry address")),
        }
    }

    fn learn(&self, log: Log, header: &str, url: &str) -> Result<()> {
        let chs = auth::parse_challenges(header);
        let mut st = self.state.lock().expect("auth state");
        if let Some(b) = chs.iter().find(|c| c.scheme == "bearer") {
            log(format!(
                "registry wants a Bearer token from realm {} (service {})",
                b.param("realm").unwrap_or("?"),
                b.param("service").unwrap_or("?")
            ));
            st.bearer = Some(b.clone());
            return Ok(());
        }
        if chs.iter().any(|c| c.scheme == "basic") {
            let Some(c) = &self.creds else {
                return Err(Error::failed(
                    format!("{url} wants Basic authentication and no credentials are known for {}", self.domain),
                    format!("run `img-pull login {}` first, or pass --creds USER:PASSWORD", self.domain),
                ));
            };
            log("registry wants Basic authentication: sending the credentials on each request".into());
            st.basic = Some(c.basic_header());
            return Ok(());
        }
        Err(Error::failed(
            format!("{url} answered 401 with no usable challenge ({header:?})"),
            "the registry needs an authentication scheme img-pull does not speak (Basic, Bearer)",
        ))
    }

    /// Get a Bearer token for `scopes` from the realm of the challenge.
    fn token(&self, log: Log, scopes: &[String]) -> Result<Option<String>> {
        let key = scopes.join(" ");
        let ch = {
            let st = self.state.lock().expect("auth state");
            if let Some(t) = st.tokens.get(&key) {
                return Ok(Some(t.clone()));
            }
            match &st.bearer {
                Some(c) => c.clone(),
                None => return Ok(None),
            }
        };
        let realm = ch
            .param("realm")
            .ok_or_else(|| Error::failed("the Bearer challenge names no realm", "the registry is misconfigured"))?;
        let mut u = url::Url::parse(realm).map_err(|e| {
            Error::failed(format!("the token realm {realm:?} is not a URL: {e}"), "the registry is misconfigured")
        })?;
        {
            let mut q = u.query_pairs_mut();
            if let Some(s) = ch.param("service") {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let mut headers = vec![];
        if let Some(c) = &self.creds {
            headers.push(("Authorization", c.basic_header()));
        }
        let resp = self.raw(log, "GET", u.as_str(), &headers, Body::Empty)?;
        match resp.status {
            200 => {}
            401 | 403 => {
                return Err(Error::failed(
                    format!(
                        "the token server {realm} refused {} ({})",
                        match &self.creds {
                            Some(c) => format!("the credentials of {:?}", c.username),
                            None => "an anonymous token".into(),
                        },
                        resp.status
                    ),
                    format!(
                        "check the user and password (`img-pull login {}`), and that the repository exists",
                        self.domain
                    ),
                ))
            }
            s => return Err(Error::failed(format!("the token server {realm} answered {s}"), "try again later")),
        }
        let body = resp.bytes(1 << 20, "the token response")?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            Error::failed(format!("the token server sent bad JSON: {e}"), "the registry is misconfigured")
        })?;
        let tok = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| Error::failed("the token response has no token", "the registry is misconfigured"))?
            .to_string();
        let exp = v.get("expires_in").and_then(|e| e.as_u64()).unwrap_or(60);
        log(format!("got a Bearer token for {key} (valid {exp} s)"));
        self.state.lock().expect("auth state").tokens.insert(key, tok.clone());
        Ok(Some(tok))
    }

    fn auth_header(&self, log: Log, scopes: Option<&[String]>) -> Result<Option<String>> {
        if let Some(b) = self.state.lock().expect("auth state").basic.clone() {
            return Ok(Some(b));
        }
        match scopes {
            Some(s) => Ok(self.token(log, s)?.map(|t| format!("Bearer {t}"))),
            None => Ok(None),
        }
    }

    /// One HTTP exchange, no authentication, no redirects: the note for the trace.
    fn raw(&self, log: Log, method: &str, url: &str, headers: &[(&str, String)], body: Body) -> Result<Response> {
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let res = match body {
            Body::Empty => req.call(),
            Body::Bytes(b) => req.send_bytes(b),
            Body::Reader(r, n) => req.set("Content-Length", &n.to_string()).send(r),
        };
        let shown = shown_url(url);
        match res {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let status = r.status();
                log(format!("{method} {shown} → {status}"));
                Ok(Response { status, url: url.to_string(), inner: r })
            }
            Err(ureq::Error::Transport(t)) => {
                log(format!("{method} {shown} → failed: {t}"));
                Err(transport_error(method, &shown, &t))
            }
        }
    }

    /// A request to the registry's API: with authentication (a 401 is answered once by
    /// getting a token for `scopes`), following redirects for GET and HEAD (dropping
    /// the Authorization header when they leave the registry's host, as blob storage
    /// rejects it), refusing redirect loops.
    pub fn request(
        &self,
        log: Log,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Body,
        scopes: &[String],
    ) -> Result<Response> {
        self.request_or(log, method, url, headers, body, scopes).map_err(|(e, _)| e)
    }

    /// [`Registry::request`], telling a transport failure (`true`: the connection
    /// broke or timed out, worth retrying) from a refusal (a redirect loop, a refused
    /// authentication).
    fn request_or(
        &self,
        log: Log,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        mut body: Body,
        scopes: &[String],
    ) -> std::result::Result<Response, (Error, bool)> {
        let refused = |e: Error| (e, false);
        let reg_host = host_of(&self.base);
        let mut url = url.to_string();
        let mut seen = HashSet::new();
        let mut retried_auth = false;
        loop {
            let mut hs: Vec<(&str, String)> = headers.to_vec();
            if host_of(&url) == reg_host {
                if let Some(a) = self.auth_header(log, Some(scopes)).map_err(refused)? {
                    hs.push(("Authorization", a));
                }
            }
            let b = match &mut body {
                Body::Empty => Body::Empty,
                Body::Bytes(b) => Body::Bytes(b),
                Body::Reader(r, n) => Body::Reader(&mut **r, *n),
            };
            let resp = self.raw(log, method, &url, &hs, b).map_err(|e| (e, true))?;
            if resp.status == 401
                && !retried_auth
                && host_of(&url) == reg_host
                && matches!(body, Body::Empty | Body::Bytes(_))
            {
                retried_auth = true;
                let h = resp.header("WWW-Authenticate").unwrap_or("").to_string();
                {
                    let mut st = self.state.lock().expect("auth state");
                    st.tokens.remove(&scopes.join(" "));
                }
                self.learn(log, &h, &url).map_err(refused)?;
                continue;
            }
            if (300..400).contains(&resp.status) && resp.status != 304 && (method == "GET" || method == "HEAD") {
                let Some(loc) = resp.header("Location") else { return Ok(resp) };
                let next = url::Url::parse(&url)
                    .and_then(|b| b.join(loc))
                    .map_err(|e| {
                        refused(Error::failed(
                            format!("bad redirect Location {loc:?} from {url}: {e}"),
                            "the registry is misbehaving",
                        ))
                    })?
                    .to_string();
                if !seen.insert(url.clone()) || seen.contains(&next) {
                    return Err(refused(Error::failed(
                        format!("redirect loop: {} redirects back to {}", shown_url(&url), shown_url(&next)),
                        "the registry (or its blob storage) is misconfigured",
                    )));
                }
                if seen.len() >= MAX_REDIRECTS {
                    return Err(refused(Error::failed(
                        format!("more than {MAX_REDIRECTS} redirects fetching {}", shown_url(&url)),
                        "the registry (or its blob storage) is misconfigured",
                    )));
                }
                if host_of(&next) != reg_host {
                    log(format!(
                        "redirected to another host ({}): the Authorization header is not sent there",
                        host_of(&next).unwrap_or_default()
                    ));
                }
                url = next;
                continue;
            }
            return Ok(resp);
        }
    }

    /// `https://host/v2/NAME/PATH`.
    pub fn url(&self, name: &str, path: &str) -> String {
        format!("{}/v2/{}/{}", self.base, name, path)
    }

    /// The scope to pull from a repository: `repository:NAME:pull`.
    pub fn pull_scope(name: &str) -> Vec<String> {
        vec![format!("repository:{name}:pull")]
    }

    /// Fetch a manifest (by tag or digest), checking its size, type and digest.
    /// Returns the bytes, the media type, the digest and the parsed document.
    pub fn manifest(&self, log: Log, name: &str, reference: &str) -> Result<(Vec<u8>, String, String, Document)> {
        let url = self.url(name, &format!("manifests/{reference}"));
        let accept = manifest::ACCEPT.join(", ");
        let resp = self.request(log, "GET", &url, &[("Accept", accept)], Body::Empty, &Self::pull_scope(name))?;
        match resp.status {
            200 => {}
            404 => {
                return Err(Error::failed(
                    format!("manifest unknown: {}/{name}:{reference} does not exist", self.domain),
                    "check the name and the tag (tags are case-sensitive)",
                ))
            }
            401 | 403 => {
                return Err(Error::failed(
                    format!("access denied to {}/{name}", self.domain),
                    format!(
                        "the repository is private or does not exist; log in with `img-pull login {}`",
                        self.domain
                    ),
                ))
            }
            s => return Err(Error::failed(format!("GET {url} answered {s}"), "try again later")),
        }
        let ct = resp.header("Content-Type").unwrap_or("").to_string();
        let header_digest = resp.header("Docker-Content-Digest").map(str::to_string);
        let bytes = resp.bytes(MAX_MANIFEST, "the manifest")?;
        let digest = sha256_digest(&bytes);
        if reference.starts_with("sha256:") && reference != digest {
            return Err(Error::failed(
                format!("digest mismatch: asked for manifest {reference}, received content whose sha256 is {digest}"),
                "the registry served wrong content; nothing was stored",
            ));
        }
        if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:")) {
            if h != digest {
                return Err(Error::failed(
                    format!("digest mismatch: the registry says the manifest is {h}, its content hashes to {digest}"),
                    "the registry served wrong content; nothing was stored",
                ));
            }
        }
        let (mt, doc) = manifest::parse(&bytes, &ct).map_err(|e| {
            Error::failed(format!("manifest of {}/{name}:{reference}: {e}", self.domain), "nothing was stored")
        })?;
        Ok((bytes, mt, digest, doc))
    }

    /// Fetch a small blob (the config) into memory, verified.
    pub fn small_blob(&self, log: Log, name: &str, d: &Descriptor, max: u64) -> Result<Vec<u8>> {
        let url = self.url(name, &format!("blobs/{}", d.digest));
        let resp = self.request(log, "GET", &url, &[], Body::Empty, &Self::pull_scope(name))?;
        if resp.status != 200 {
            return Err(Error::failed(
                format!("GET {} answered {}", shown_url(&url), resp.status),
                "the blob is missing on the registry",
            ));
        }
        let bytes = resp.bytes(max.min(d.size), &format!("blob {}", d.digest))?;
        check_blob(&bytes, d)?;
        Ok(bytes)
    }

    /// Download a blob into `file` (the partial download `partial`, opened by the
    /// caller: resumed with `Range` if it holds a start), verifying its size and
    /// sha256 as it streams; `progress` gets the byte count, `tap` the blob's bytes in
    /// order from byte 0 (after a [`Tap::Restart`]: a resumed download first hands over
    /// the part already on disk).
    ///
    /// The file is only written (never created, renamed or removed here: the caller
    /// does that through the kernel layer). [`Stop::Refused`] means the bytes are
    /// wrong (digest, size, status): the caller removes the file;
    /// [`Stop::Interrupted`] means what arrived is good so far: kept, a next attempt
    /// resumes it.
    #[allow(clippy::too_many_arguments)]
    pub fn download(
        &self,
        log: Log,
        name: &str,
        d: &Descriptor,
        file: &mut File,
        partial: &Path,
        progress: &dyn Fn(u64),
        tap: &mut dyn FnMut(Tap<'_>),
    ) -> std::result::Result<(), Stop> {
        let url = self.url(name, &format!("blobs/{}", d.digest));
        let disk = |e: std::io::Error| {
            Stop::Interrupted(Error::failed(format!("{}: {e}", partial.display()), "check the store's disk"))
        };
        let mut last_err = None;
        for attempt in 0..RESUME_ATTEMPTS {
            let mut have = file.metadata().map(|m| m.len()).unwrap_or(0);
            if have > d.size {
                have = 0;
            }
            let mut headers = vec![];
            if have > 0 {
                headers.push(("Range", format!("bytes={have}-")));
                log(format!("resuming {} at byte {have} of {}", short(&d.digest), d.size));
            }
            if have == d.size && have > 0 {
                // Already complete from an earlier run: verify only.
                return finish_partial(file, partial, d, progress, tap);
            }
            let resp = match self.request_or(log, "GET", &url, &headers, Body::Empty, &Self::pull_scope(name)) {
                Ok(r) => r,
                Err((e, true)) => {
                    last_err = Some(e);
                    continue;
                }
                Err((e, false)) => return Err(Stop::Refused(e)),
            };
            let append = match resp.status {
                206 if have > 0 => {
                    let cr = resp.header("Content-Range").unwrap_or("");
                    if !cr.starts_with(&format!("bytes {have}-")) {
                        log(format!("server answered Range with {cr:?}: starting over"));
                        have = 0;
                        false
                    } else {
                        true
                    }
                }
                200 => {
                    if have > 0 {
                        log("server ignored Range: starting over".into());
                    }
                    have = 0;
                    false
                }
                416 => {
                    // What we hold is not a start of this blob: start over.
                    file.set_len(0).map_err(disk)?;
                    continue;
                }
                s => {
                    return Err(Stop::Refused(Error::failed(
                        format!("GET {} answered {s}", shown_url(&resp.url)),
                        "the blob is missing or access was refused; nothing was stored",
                    )))
                }
            };
            if let Some(n) = resp.header("Content-Length").and_then(|v| v.parse::<u64>().ok()) {
                if have + n > d.size {
                    return Err(Stop::Refused(size_lie(d, have + n)));
                }
            }
            if !append {
                file.set_len(0).map_err(disk)?;
            }
            file.seek(SeekFrom::Start(0)).map_err(disk)?;
            // The sha256 is computed as the bytes stream in: a resumed download hashes
            // the part it already has first, so the blob is never read back.
            let mut h = Sha256::new();
            let mut buf = vec![0u8; BUF];
            tap(Tap::Restart);
            if append {
                let mut left = have;
                while left > 0 {
                    let want = buf.len().min(left as usize);
                    match file.read(&mut buf[..want]) {
                        Ok(0) => break,
                        Ok(n) => {
                            h.update(&buf[..n]);
                            tap(Tap::Bytes(&buf[..n]));
                            left -= n as u64;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(disk(e)),
                    }
                }
                if left > 0 {
                    // The file shrank under us: start over.
                    have = 0;
                    h = Sha256::new();
                    tap(Tap::Restart);
                    file.set_len(0).map_err(disk)?;
                }
                file.seek(SeekFrom::Start(have)).map_err(disk)?;
            }
            progress(have);
            let mut r = resp.into_reader();
            let mut got = have;
            // The HTTP reader hands out a few kB per read: gather a full buffer before
            // each write(2) (and each progress report).
            let mut fill = 0;
            let res: std::result::Result<(), std::io::Error> = loop {
                let n = match r.read(&mut buf[fill..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(e),
                };
                got += n as u64;
                if got > d.size {
                    return Err(Stop::Refused(size_lie(d, got)));
                }
                fill += n;
                if fill == buf.len() || (n == 0 && fill > 0) {
                    if let Err(e) = file.write_all(&buf[..fill]) {
                        return Err(Stop::Interrupted(Error::failed(
                            format!("cannot write {}: {e}", partial.display()),
                            "check the disk space",
                        )));
                    }
                    h.update(&buf[..fill]);
                    tap(Tap::Bytes(&buf[..fill]));
                    fill = 0;
                    progress(got);
                }
                if n == 0 {
                    break Ok(());
                }
            };
            if fill > 0 {
                // Keep what arrived before the error: the next attempt resumes after it.
                if file.write_all(&buf[..fill]).is_err() {
                    got -= fill as u64;
                    let _ = file.set_len(got);
                }
            }
            match res {
                Ok(()) if got == d.size => {
                    return check_digest(d, &format!("sha256:{}", hex(&h.finalize())), got).map_err(Stop::Refused)
                }
                Ok(()) => {
                    log(format!("{}: connection ended after {got} of {} bytes", short(&d.digest), d.size));
                    last_err = Some(Error::failed(
                        format!("blob {} ended after {got} of {} bytes", d.digest, d.size),
                        "the connection broke; run the same command again (downloads resume)",
                    ));
                }
                Err(e) => {
                    log(format!("{}: interrupted after {got} of {} bytes: {e}", short(&d.digest), d.size));
                    last_err = Some(io_failed(&shown_url(&url), e));
                }
            }
            if attempt + 1 < RESUME_ATTEMPTS {
                std::thread::sleep(Duration::from_millis(200 * (attempt as u64 + 1)));
            }
        }
        Err(Stop::Interrupted(
            last_err.unwrap_or_else(|| Error::failed(format!("could not download {}", d.digest), "try again")),
        ))
    }

    // ---- push ----

    /// `HEAD /v2/NAME/blobs/DIGEST`: whether the registry already has the blob.
    pub fn has_blob(&self, log: Log, name: &str, digest: &str, scopes: &[String]) -> Result<bool> {
        let url = self.url(name, &format!("blobs/{digest}"));
        let r = self.request(log, "HEAD", &url, &[], Body::Empty, scopes)?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(Error::failed(format!("HEAD {} answered {s}", shown_url(&url)), push_hint(s, &self.domain))),
        }
    }

    /// `POST /v2/NAME/blobs/uploads/` (with `?mount=&from=` to mount from another
    /// repository): `Ok(None)` when mounted (201), else the upload URL (202).
    pub fn start_upload(
        &self,
        log: Log,
        name: &str,
        mount: Option<(&str, &str)>,
        scopes: &[String],
    ) -> Result<Option<String>> {
        let mut url = self.url(name, "blobs/uploads/");
        if let Some((digest, from)) = mount {
            url.push_str(&format!("?mount={digest}&from={from}"));
        }
        let r = self.request(log, "POST", &url, &[("Content-Length", "0".into())], Body::Bytes(&[]), scopes)?;
        match r.status {
            201 if mount.is_some() => Ok(None),
            202 => Ok(Some(self.location(&r)?)),
            s => Err(Error::failed(format!("POST {} answered {s}", shown_url(&url)), push_hint(s, &self.domain))),
        }
    }

    fn location(&self, r: &Response) -> Result<String> {
        let loc = r
            .header("Location")
            .ok_or_else(|| Error::failed("the registry gave no upload Location", "the registry is misbehaving"))?;
        url::Url::parse(&r.url)
            .and_then(|b| b.join(loc))
            .map(|u| u.to_string())
            .map_err(|e| Error::failed(format!("bad upload Location {loc:?}: {e}"), "the registry is misbehaving"))
    }

    /// Upload `size` bytes of `file` to `upload` and close it with the digest:
    /// in one PUT (monolithic) or as PATCH chunks of `chunk` bytes then an empty PUT.
    #[allow(clippy::too_many_arguments)]
    pub fn upload(
        &self,
        log: Log,
        upload: String,
        file: &mut File,
        size: u64,
        digest: &str,
        chunk: Option<u64>,
        scopes: &[String],
    ) -> Result<()> {
        let mut loc = upload;
        let with_digest = |loc: &str| -> Result<String> {
            let mut u = url::Url::parse(loc)
                .map_err(|e| Error::failed(format!("bad upload URL {loc}: {e}"), "the registry is misbehaving"))?;
            u.query_pairs_mut().append_pair("digest", digest);
            Ok(u.to_string())
        };
        let oct = ("Content-Type", "application/octet-stream".to_string());
        match chunk {
            None => {
                let url = with_digest(&loc)?;
                let r = self.request(log, "PUT", &url, &[oct], Body::Reader(file, size), scopes)?;
                if r.status != 201 {
                    return Err(Error::failed(
                        format!("PUT {} answered {}", shown_url(&url), r.status),
                        push_hint(r.status, &self.domain),
                    ));
                }
            }
            Some(n) => {
                let mut off = 0;
                while off < size {
                    let len = n.min(size - off);
                    let range = format!("{}-{}", off, off + len - 1);
                    let mut part = (&mut *file).take(len);
                    let r = self.request(
                        log,
                        "PATCH",
                        &loc,
                        &[oct.clone(), ("Content-Range", range)],
                        Body::Reader(&mut part, len),
                        scopes,
                    )?;
                    if r.status != 202 {
                        return Err(Error::failed(
                            format!("PATCH {} answered {}", shown_url(&loc), r.status),
                            push_hint(r.status, &self.domain),
                        ));
                    }
                    loc = self.location(&r)?;
                    off += len;
                }
                let url = with_digest(&loc)?;
                let r = self.request(log, "PUT", &url, &[("Content-Length", "0".into())], Body::Bytes(&[]), scopes)?;
                if r.status != 201 {
                    return Err(Error::failed(
                        format!("PUT {} answered {}", shown_url(&url), r.status),
                        push_hint(r.status, &self.domain),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `PUT /v2/NAME/manifests/TAG`: returns the digest the registry computed.
    pub fn put_manifest(
        &self,
        log: Log,
        name: &str,
        tag: &str,
        media_type: &str,
        bytes: &[u8],
        scopes: &[String],
    ) -> Result<String> {
        let url = self.url(name, &format!("manifests/{tag}"));
        let r =
            self.request(log, "PUT", &url, &[("Content-Type", media_type.to_string())], Body::Bytes(bytes), scopes)?;
        if r.status != 201 {
            return Err(Error::failed(
                format!("PUT {} answered {}", shown_url(&url), r.status),
                push_hint(r.status, &self.domain),
            ));
        }
        Ok(r.header("Docker-Content-Digest").map(str::to_string).unwrap_or_else(|| sha256_digest(bytes)))
    }

    /// Check credentials as `docker login` does: ping, then (Bearer) get a token
    /// with no scope; an error says they were refused.
    pub fn check_login(&self, log: Log) -> Result<()> {
        let has_bearer = self.state.lock().expect("auth state").bearer.is_some();
        if has_bearer {
            self.token(log, &[])?;
            return Ok(());
        }
        // Basic (or none): one authenticated request to /v2/.
        let url = format!("{}/v2/", self.base);
        let r = self.request(log, "GET", &url, &[], Body::Empty, &[])?;
        match r.status {
            200 => Ok(()),
            401 | 403 => Err(Error::failed(
                format!("{} refused the credentials (401)", self.domain),
                "check the user name and password",
            )),
            s => Err(Error::failed(format!("GET {url} answered {s}"), "check the registry address")),
        }
    }
}

fn push_hint(status: u16, domain: &str) -> String {
    match status {
        401 | 403 => format!("access denied: log in with `img-pull login {domain}` (and check the repository name)"),
        _ => "the registry refused the upload".into(),
    }
}

fn size_lie(d: &Descriptor, got: u64) -> Error {
    Error::failed(
        format!("size mismatch: blob {} should be {} bytes, the server sent at least {got}", d.digest, d.size),
        "the registry served wrong content; nothing was stored",
    )
}

/// A complete download's sha256 must be its digest.
fn check_digest(d: &Descriptor, got: &str, n_total: u64) -> Result<()> {
    if got != d.digest || n_total != d.size {
        return Err(Error::failed(
            format!("digest mismatch: blob {} ({n_total} bytes) hashes to {got}", d.digest),
            "the registry served corrupt content; the download was discarded and nothing was stored",
        ));
    }
    Ok(())
}

/// Verify a complete partial file: size and sha256 (a mismatch is a refusal).
fn finish_partial(
    f: &mut File,
    partial: &Path,
    d: &Descriptor,
    progress: &dyn Fn(u64),
    tap: &mut dyn FnMut(Tap<'_>),
) -> std::result::Result<(), Stop> {
    let disk = |e: std::io::Error| {
        Stop::Interrupted(Error::failed(format!("cannot read {}: {e}", partial.display()), "check the disk"))
    };
    f.seek(SeekFrom::Start(0)).map_err(disk)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut n_total = 0u64;
    tap(Tap::Restart);
    loop {
        let n = f.read(&mut buf).map_err(disk)?;
        if n == 0 {
            break;
        }
        n_total += n as u64;
        h.update(&buf[..n]);
        tap(Tap::Bytes(&buf[..n]));
    }
    progress(n_total);
    check_digest(d, &format!("sha256:{}", hex(&h.finalize())), n_total).map_err(Stop::Refused)
}

/// Check bytes against a descriptor.
pub fn check_blob(bytes: &[u8], d: &Descriptor) -> Result<()> {
    if bytes.len() as u64 != d.size {
        return Err(size_lie(d, bytes.len() as u64));
    }
    let got = sha256_digest(bytes);
    if got != d.digest {
        return Err(Error::failed(
            format!("digest mismatch: blob {} hashes to {got}", d.digest),
            "the registry served corrupt content; nothing was stored",
        ));
    }
    Ok(())
}

/// `sha256:abcdef012345` → `abcdef012345` (docker's 12-digit short id).
pub fn short(d: &str) -> String {
    let h = d.strip_prefix("sha256:").unwrap_or(d);
    h.chars().take(12).collect()
}

/// A URL as shown in the trace: without the query's secrets (tokens in upload URLs
/// and presigned blob-storage URLs are cut to `?…`), except the scope/service of a
/// token request and mount parameters, which students need to see.
pub fn shown_url(u: &str) -> String {
    match u.split_once('?') {
        Some((base, q))
            if q.split('&').all(|kv| {
                let k = kv.split('=').next().unwrap_or("");
                ["service", "scope", "mount", "from", "digest"].contains(&k)
            }) =>
        {
            format!("{base}?{q}")
        }
        Some((base, _)) => format!("{base}?…"),
        None => u.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_secrets_in_urls() {
        assert_eq!(
            shown_url("https://a/x?service=s&scope=repository%3Ax%3Apull"),
            "https://a/x?service=s&scope=repository%3Ax%3Apull"
        );
        assert_eq!(shown_url("https://s3/b?X-Amz-Signature=abc"), "https://s3/b?…");
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
    }
}
