//! Image references, parsed and normalised as docker does
//! (`github.com/distribution/reference`, `ParseNormalizedNamed` + `TagNameOnly`).
//!
//! `alpine` means `docker.io/library/alpine:latest`: with no registry, the first
//! path component is a registry only if it contains a `.` or a `:` or is
//! `localhost` (so `myuser/app` is a Docker Hub repository, `localhost:5000/app` is
//! not); Docker Hub's official images live under `library/`; no tag means `latest`.
//! `index.docker.io` is an old name of `docker.io`, whose API answers at
//! `registry-1.docker.io`.

use std::fmt;

/// The registry docker uses when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API really answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const NAME_TOTAL_MAX: usize = 255;

/// A normalised reference: `docker.io/library/alpine:3.17`, `localhost:5000/x/y@sha256:...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `[::1]:5000`.
    pub domain: String,
    /// `library/alpine`.
    pub path: String,
    /// The tag: `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// `sha256:...` when pinned by digest (wins over the tag for pulling).
    pub digest: Option<String>,
}

impl Reference {
    /// Parse and normalise `s` exactly as `docker pull s` would.
    pub fn parse(s: &str) -> Result<Reference, String> {
        if s.is_empty() {
            return Err("invalid reference format: empty".into());
        }
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(format!("invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"));
        }
        // Split off the digest, then the tag (a ':' after the last '/').
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                check_digest(d)?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                check_tag(t)?;
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        let (domain, path) = split_domain(name);
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("invalid reference format: repository name ({path}) must be lowercase"));
        }
        check_domain(&domain)?;
        for comp in path.split('/') {
            check_component(comp).map_err(|e| format!("invalid reference format: {e} in {s:?}"))?;
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_MAX {
            return Err(format!(
                "invalid reference format: repository name must not be more than {NAME_TOTAL_MAX} characters"
            ));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(Reference { domain, path, tag, digest })
    }

    /// `docker.io/library/alpine`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// What docker shows: `alpine`, `user/app`, `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DOCKER_HUB {
            self.path.strip_prefix("library/").unwrap_or(&self.path).to_string()
        } else {
            self.name()
        }
    }

    /// `alpine:3.17` (or `alpine@sha256:...`), as docker prints it.
    pub fn familiar(&self) -> String {
        self.with_name(&self.familiar_name())
    }

    fn with_name(&self, name: &str) -> String {
        let mut s = name.to_string();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// What the registry API is asked for: the digest if pinned, else the tag.
    pub fn api_reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// The host (and port) the registry API answers at.
    pub fn api_host(&self) -> &str {
        if self.domain == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.domain
        }
    }

    /// Whether plain HTTP may be tried for this registry without `--insecure`, as docker
    /// does for `localhost` and 127.0.0.0/8 (and `::1`).
    pub fn is_local(&self) -> bool {
        is_local_host(&self.domain)
    }
}

/// Whether `host[:port]` is this machine (docker's default insecure registries).
pub fn is_local_host(hostport: &str) -> bool {
    let host = if let Some(rest) = hostport.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    host == "localhost" || host.starts_with("127.") || host == "::1"
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_name(&self.name()))
    }
}

fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" || first != first.to_lowercase() =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" { DOCKER_HUB.to_string() } else { domain };
    let path = if domain == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path };
    (domain, path)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_component(c: &str) -> Result<(), String> {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() {
        return Err("empty path component".into());
    }
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return Err(format!("path component {c:?} must start and end with [a-z0-9]"));
        }
        if i == b.len() {
            return Ok(());
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            x => return Err(format!("character {:?} not allowed in path component {c:?}", x as char)),
        }
    }
}

/// A host name (labels of `[a-zA-Z0-9-]`, not starting or ending with `-`) or an
/// `[ipv6]`, then an optional `:port`.
fn check_domain(d: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid reference format: bad registry host {d:?}"));
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') => {
                (None, p)
            }
            _ => return bad(),
        }
    } else {
        match d.find(':') {
            Some(i) => (Some(&d[..i]), &d[i..]),
            None => (Some(d), ""),
        }
    };
    if let Some(h) = host {
        for label in h.split('.') {
            let lb = label.as_bytes();
            if lb.is_empty()
                || !lb.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                || lb[0] == b'-'
                || lb[lb.len() - 1] == b'-'
            {
                return bad();
            }
        }
    }
    if !port.is_empty() {
        let digits = &port[1..];
        if !port.starts_with(':') || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return bad();
        }
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`.
fn check_tag(t: &str) -> Result<(), String> {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    if b.is_empty() || b.len() > 128 || !word(b[0]) || !b.iter().all(|&x| word(x) || x == b'.' || x == b'-') {
        return Err(format!("invalid reference format: bad tag {t:?} (letters, digits, _ . -, at most 128)"));
    }
    Ok(())
}

/// `algorithm:hex`; only sha256 (64 lowercase hex digits) is accepted for pulling,
/// as the registry and the store address content by it.
pub fn check_digest(d: &str) -> Result<(), String> {
    match d.split_once(':') {
        Some(("sha256", h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Ok(())
        }
        Some((alg, _)) if alg != "sha256" => {
            Err(format!("unsupported digest algorithm {alg:?} in {d:?} (only sha256)"))
        }
        _ => Err(format!("invalid digest {d:?}: expected sha256: and 64 lowercase hex digits")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("alpine:3.17"), "docker.io/library/alpine:3.17");
        assert_eq!(norm("library/alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("docker.io/library/alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("index.docker.io/alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("hepia/docker_ex01"), "docker.io/hepia/docker_ex01:latest");
        assert_eq!(norm("localhost:5000/x/y:tag"), "localhost:5000/x/y:tag");
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        assert_eq!(norm("quay.io/a/b"), "quay.io/a/b:latest");
        assert_eq!(norm("[::1]:5000/a"), "[::1]:5000/a:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(norm(&format!("alpine@{d}")), format!("docker.io/library/alpine@{d}"));
        assert_eq!(norm(&format!("alpine:3@{d}")), format!("docker.io/library/alpine:3@{d}"));
        let r = Reference::parse("alpine:3.17").unwrap();
        assert_eq!(r.familiar(), "alpine:3.17");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(Reference::parse("localhost:5000/a").unwrap().familiar(), "localhost:5000/a:latest");
        assert!(Reference::parse("127.0.0.1:5000/a").unwrap().is_local());
        assert!(!Reference::parse("alpine").unwrap().is_local());
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in [
            "",
            "Alpine",
            "docker.io/Library/alpine",
            "alpine:",
            "alpine:-x",
            "a//b",
            "a/",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "alpine@sha256:abc",
            "alpine@md5:0123",
            "host:port/x",
            "ex ample",
            &"a".repeat(300),
            &"0123456789abcdef".repeat(4),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
        // An uppercase first component is a registry host, not a path.
        assert_eq!(norm("Example.com/a"), "Example.com/a:latest");
        assert_eq!(norm("a__b/c--d.e_f"), "docker.io/a__b/c--d.e_f:latest");
    }
}
