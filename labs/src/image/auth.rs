//! Registry authentication: `WWW-Authenticate` challenges and docker's credential file.
//!
//! A registry that wants credentials answers `401 Unauthorized` with a challenge:
//!
//! - `Basic realm="..."`: send `Authorization: Basic base64(user:password)` on every
//!   request (distribution's htpasswd mode);
//! - `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`:
//!   go to the *realm* (a separate token server), ask for a token for that *service*
//!   and *scope* (anonymously, or with Basic credentials), then retry with
//!   `Authorization: Bearer TOKEN`. Docker Hub does this even for public images.
//!
//! Credentials come from flags or from `~/.docker/config.json` (`$DOCKER_CONFIG`),
//! whose `auths` map a registry to `{"auth": base64("user:password")}`; Docker Hub's
//! key is `https://index.docker.io/v1/`, for history's sake.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;

use super::reference::DOCKER_HUB;
use crate::kernel::Kernel;

/// The key docker uses for Docker Hub in config.json.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A user name and a password (or a token used as one).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub username: String,
    /// The secret (never printed).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

impl Credentials {
    /// `user:password`, as `--creds` takes it.
    pub fn parse(s: &str) -> Result<Credentials, String> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials { username: u.into(), password: p.into() }),
            _ => Err("credentials must be USER:PASSWORD".into()),
        }
    }

    /// The value of an `Authorization: Basic` header.
    pub fn basic_header(&self) -> String {
        format!("Basic {}", self.encoded())
    }

    /// base64(`user:password`), config.json's `auth`.
    pub fn encoded(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.username, self.password))
    }

    fn decode(auth: &str) -> Option<Credentials> {
        let raw = base64::engine::general_purpose::STANDARD.decode(auth.trim()).ok()?;
        Credentials::parse(&String::from_utf8(raw).ok()?).ok()
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `basic` or `bearer`, lowercased.
    pub scheme: String,
    /// `realm`, `service`, `scope`, `error`... (names lowercased).
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parse a `WWW-Authenticate` value (RFC 7235): one or more challenges, each a
/// scheme then `name=value` or `name="quoted \" value"` pairs, separated by commas.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let s = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == b' ' || s[*i] == b'\t' || s[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let st = *i;
        while *i < s.len() && !matches!(s[*i], b' ' | b'\t' | b',' | b'=' | b'"') {
            *i += 1;
        }
        String::from_utf8_lossy(&s[st..*i]).into_owned()
    };
    loop {
        skip_ws(&mut i);
        if i >= s.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            i += 1;
            continue;
        }
        let save = i;
        while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
            i += 1;
        }
        if i < s.len() && s[i] == b'=' && !out.is_empty() {
            // A parameter of the current challenge.
            i += 1;
            while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
                i += 1;
            }
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = Vec::new();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    v.push(s[i]);
                    i += 1;
                }
                i += 1;
                String::from_utf8_lossy(&v).into_owned()
            } else {
                token(&mut i)
            };
            if let Some(c) = out.last_mut() {
                c.params.insert(word.to_lowercase(), value);
            }
        } else {
            i = save;
            out.push(Challenge { scheme: word.to_lowercase(), params: BTreeMap::new() });
        }
    }
    out
}

/// Where docker keeps its client configuration: `$DOCKER_CONFIG/config.json`, else
/// `$HOME/.docker/config.json`.
pub fn config_path() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return PathBuf::from(d).join("config.json");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker").join("config.json")
}

/// The key of a registry in config.json's `auths`.
pub fn auth_key(domain: &str) -> String {
    if domain == DOCKER_HUB || domain == "index.docker.io" || domain == "registry-1.docker.io" {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        domain.to_string()
    }
}

/// Read config.json (a missing file is an empty one).
pub fn load_config() -> Result<serde_json::Value, String> {
    let path = config_path();
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{} is not valid JSON: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The stored credentials for `domain`, if any (tried as docker does: the exact key,
/// then with `https://` or `http://` in front and a path after).
pub fn lookup(domain: &str) -> Result<Option<Credentials>, String> {
    let cfg = load_config()?;
    let Some(auths) = cfg.get("auths").and_then(|a| a.as_object()) else { return Ok(None) };
    let key = auth_key(domain);
    let strip = |k: &str| -> String {
        let k = k.strip_prefix("https://").or_else(|| k.strip_prefix("http://")).unwrap_or(k);
        k.split('/').next().unwrap_or(k).to_string()
    };
    let entry = auths.get(&key).or_else(|| auths.iter().find(|(k, _)| strip(k) == strip(&key)).map(|(_, v)| v));
    Ok(entry.and_then(|e| {
        if let Some(a) = e.get("auth").and_then(|a| a.as_str()) {
            Credentials::decode(a)
        } else {
            let u = e.get("username")?.as_str()?;
            let p = e.get("password")?.as_str()?;
            Some(Credentials { username: u.into(), password: p.into() })
        }
    }))
}

/// Store (or with `None`, remove) the credentials for `domain` in config.json, keeping
/// every other field: its directory made if missing (`mkdir(2)`), the new file written
/// beside it with mode 0600 (`O_CREAT|O_EXCL`) and `rename(2)`d over it. Returns the
/// file's path and whether the credentials changed.
pub fn store(k: &Kernel, domain: &str, creds: Option<&Credentials>) -> Result<(PathBuf, bool), String> {
    let path = config_path();
    let mut cfg = load_config()?;
    if !cfg.is_object() {
        cfg = serde_json::json!({});
    }
    let obj = cfg.as_object_mut().expect("object");
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    let auths = auths.as_object_mut().expect("object");
    let key = auth_key(domain);
    let changed = match creds {
        Some(c) => {
            auths.insert(key, serde_json::json!({ "auth": c.encoded() }));
            true
        }
        None => auths.remove(&key).is_some(),
    };
    if let Some(dir) = path.parent() {
        super::store::mkdir_p(k, dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(&cfg).expect("json") + "\n";
    let what = "create the new credentials file (mode 0600) beside the old one";
    let f =
        super::store::create_fresh(k, &tmp, 0o600, what).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    if let Some(mut f) = f {
        use std::io::Write;
        if let Err(e) = f.write_all(text.as_bytes()) {
            let _ = k.unlink(&tmp);
            return Err(format!("cannot write {}: {e}", tmp.display()));
        }
    }
    k.rename_over(&tmp, &path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    Ok((path, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/alpine:pull"));
        let two = parse_challenges(r#"Basic realm="Registry Realm", Bearer realm="x\"y",error=insufficient_scope"#);
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].param("realm"), Some("Registry Realm"));
        assert_eq!(two[1].param("realm"), Some("x\"y"));
        assert_eq!(two[1].param("error"), Some("insufficient_scope"));
        assert!(parse_challenges("").is_empty());
    }

    #[test]
    fn credentials_round_trip() {
        let c = Credentials::parse("ann:s3:cret").unwrap();
        assert_eq!(c.password, "s3:cret");
        assert_eq!(Credentials::decode(&c.encoded()), Some(c.clone()));
        assert_eq!(auth_key("docker.io"), DOCKER_HUB_AUTH_KEY);
        assert_eq!(format!("{c:?}"), "Credentials(ann, ***)");
    }
}
