//! How the store looks to a user: sizes and ages as docker prints them, the tables of
//! `images` and `history`, the JSON of `inspect` and its `--format` templates. Pure
//! functions of the store's data: they print nothing themselves.

use std::io::Write;

use super::reference::Reference;
use super::registry::short;
use super::store::{self, Image, Store};
use crate::error::{Error, Result};

/// Seconds since the epoch, now (for [`ago`]).
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A size as docker prints it (the one definition is in [`crate::units`]).
pub use crate::units::human_size;

/// Days since the epoch for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Seconds since the epoch of an RFC 3339 time (`2023-01-09T17:05:20.656498097Z`).
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let n = |a: usize, z: usize| s.get(a..z)?.parse::<i64>().ok();
    let days = days_from_civil(n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let mut t = days * 86400 + n(11, 13)? * 3600 + n(14, 16)? * 60 + n(17, 19)?;
    let rest = &s[19..];
    let tz = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if let Some(off) = tz.strip_prefix('+').or_else(|| tz.strip_prefix('-')) {
        let sign = if tz.starts_with('+') { 1 } else { -1 };
        let h = off.get(0..2)?.parse::<i64>().ok()?;
        let m = off.get(3..5)?.parse::<i64>().ok()?;
        t -= sign * (h * 3600 + m * 60);
    }
    Some(t)
}

/// "3 weeks ago", as docker's units.HumanDuration, at `now` (seconds since the epoch);
/// the words are [`crate::units::human_duration`]'s.
pub fn ago(created: Option<&str>, now: i64) -> String {
    let Some(t) = created.and_then(parse_time) else { return "N/A".into() };
    let d = std::time::Duration::from_secs((now - t).max(0) as u64);
    format!("{} ago", crate::units::human_duration(d))
}

/// An image's size as docker counts it (`docker images` SIZE, inspect's `Size`): the
/// sum of its layers' [`Store::layer_size`], the bytes of their files once extracted.
pub fn content_size(st: &Store, img: &Image) -> u64 {
    img.manifest.layers.iter().zip(&img.config.rootfs.diff_ids).map(|(l, d)| st.layer_size(l, d)).sum()
}

/// docker's *chain IDs* of an image's layers, bottom first: the first is its diff_id,
/// each next one `sha256("PARENT_CHAIN_ID DIFF_ID")`. A chain ID names a layer *with
/// everything under it*: two images share a layer in docker's sense when they share
/// its chain ID (`docker rmi`'s `Deleted: sha256:…` lines after the image's own).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => super::registry::sha256_digest(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// One step of an image's history, with its layer's size (0 for a step that made no
/// layer): what `docker history` shows, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// RFC 3339, if the config says.
    pub created: Option<String>,
    /// The build step (`/bin/sh -c #(nop)  CMD ["sh"]`).
    pub created_by: String,
    /// The size of the layer it made, as docker counts it ([`Store::layer_size`]).
    pub size: u64,
    /// Its comment.
    pub comment: String,
}

/// An image's history, newest first, each step with the size of the layer it made
/// (`empty_layer` steps made none: 0). An image whose config has no history has no
/// steps (`docker history` prints only its header then).
pub fn history_steps(st: &Store, img: &Image) -> Vec<Step> {
    let hist = &img.config.history;
    let mut layers = img.manifest.layers.iter().zip(&img.config.rootfs.diff_ids);
    let mut steps: Vec<Step> = hist
        .iter()
        .map(|h| Step {
            created: h.created.clone(),
            created_by: h.created_by.clone().unwrap_or_default(),
            size: if h.empty_layer { 0 } else { layers.next().map(|(l, d)| st.layer_size(l, d)).unwrap_or(0) },
            comment: h.comment.clone().unwrap_or_default(),
        })
        .collect();
    steps.reverse();
    steps
}

/// `docker image inspect`'s object: [`inspect_json`]'s fields in the shape of docker's
/// `ImageInspect` (Parent, Comment, DockerVersion, VirtualSize, GraphDriver with the
/// layers' directories as overlay2 names them: `UpperDir` the top layer, `LowerDir`
/// the ones under it, top first; Metadata.LastTagTime). RepoDigests lists only what a
/// registry gave (a loaded or imported image has none, as with docker).
pub fn docker_inspect(st: &Store, img: &Image) -> serde_json::Value {
    let mut v = inspect_json(st, img);
    let cfg: serde_json::Value = serde_json::from_slice(&img.config_bytes).unwrap_or_default();
    let digests: Vec<String> = match img.desc.annotation(store::REPO_DIGEST) {
        Some(d) => {
            let mut names: Vec<String> =
                img.names.iter().filter_map(|n| Reference::parse(n).ok()).map(|r| r.familiar_name()).collect();
            names.dedup();
            names.into_iter().map(|n| format!("{n}@{d}")).collect()
        }
        None => vec![],
    };
    let dirs: Vec<String> = img
        .config
        .rootfs
        .diff_ids
        .iter()
        .rev()
        .map(|d| super::unpack::layer_dir(st, d).display().to_string())
        .collect();
    let mut graph = serde_json::Map::new();
    if dirs.len() > 1 {
        graph.insert("LowerDir".into(), dirs[1..].join(":").into());
    }
    if let Some(top) = dirs.first() {
        graph.insert("UpperDir".into(), top.clone().into());
    }
    let size = content_size(st, img);
    let o = v.as_object_mut().expect("an object");
    o.insert("Size".into(), size.into());
    o.insert("RepoDigests".into(), digests.into());
    o.insert("Parent".into(), "".into());
    o.insert("Comment".into(), cfg.get("comment").cloned().unwrap_or_else(|| "".into()));
    o.insert("Container".into(), cfg.get("container").cloned().unwrap_or_else(|| "".into()));
    o.insert("DockerVersion".into(), cfg.get("docker_version").cloned().unwrap_or_else(|| "".into()));
    o.insert("Author".into(), cfg.get("author").cloned().unwrap_or_else(|| "".into()));
    o.insert("Created".into(), cfg.get("created").cloned().unwrap_or_else(|| crate::units::ZERO_TIME.into()));
    o.insert("VirtualSize".into(), size.into());
    let empty = serde_json::json!({"Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
        "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
        "OnBuild": null, "Labels": null});
    o.insert("ContainerConfig".into(), cfg.get("container_config").cloned().unwrap_or(empty));
    o.insert("GraphDriver".into(), serde_json::json!({"Name": "overlay2", "Data": graph}));
    o.insert("Metadata".into(), serde_json::json!({"LastTagTime": crate::units::ZERO_TIME}));
    if o.get("Variant").is_some_and(|x| x.is_null()) {
        o.remove("Variant");
    }
    v
}

/// `docker.io/library/alpine:3.17` → (`alpine`, `3.17`).
pub fn split_name(n: &str) -> (String, String) {
    match Reference::parse(n) {
        Ok(r) => (r.familiar_name(), r.tag.clone().unwrap_or_else(|| "<none>".into())),
        Err(_) => (n.to_string(), "<none>".into()),
    }
}

/// The rows of `docker images`: REPOSITORY, TAG, (DIGEST,) IMAGE ID, CREATED, SIZE.
pub fn image_rows(st: &Store, imgs: &[Image], digests: bool, now: i64) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let mut rows = vec![];
    for i in imgs {
        let (repo, tag) = split_name(i.names.first().map(String::as_str).unwrap_or("<none>"));
        let mut row = vec![repo, tag];
        if digests {
            row.push(i.desc.annotation(store::REPO_DIGEST).unwrap_or(&i.desc.digest).to_string());
        }
        row.extend([
            short(i.id()),
            ago(i.config.created.as_deref(), now),
            crate::units::human_size_digits(content_size(st, i), 3),
        ]);
        rows.push(row);
    }
    let mut head = vec!["REPOSITORY", "TAG"];
    if digests {
        head.push("DIGEST");
    }
    head.extend(["IMAGE ID", "CREATED", "SIZE"]);
    (head, rows)
}

/// docker's `Ellipsis`: `s` cut to `max` characters, the last one `…`, when it is
/// longer (how its tables shorten a long cell).
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}

/// The rows of `docker history` (IMAGE, CREATED, CREATED BY, SIZE, COMMENT), newest first:
/// [`history_steps`], or for an image whose config has no history one row per layer.
pub fn history_rows(st: &Store, img: &Image, no_trunc: bool, now: i64) -> Vec<Vec<String>> {
    let steps = if img.config.history.is_empty() {
        let size = |i: usize, l| img.config.rootfs.diff_ids.get(i).map(|d| st.layer_size(l, d)).unwrap_or(0);
        let layers = img.manifest.layers.iter().enumerate().rev();
        layers
            .map(|(i, l)| Step { created: None, created_by: String::new(), size: size(i, l), comment: String::new() })
            .collect()
    } else {
        history_steps(st, img)
    };
    let mut rows: Vec<Vec<String>> = steps
        .into_iter()
        .map(|s| {
            let by = if no_trunc { s.created_by } else { ellipsis(&s.created_by, 45) };
            vec![
                "<missing>".to_string(),
                ago(s.created.as_deref(), now),
                by,
                crate::units::human_size_digits(s.size, 3),
                s.comment,
            ]
        })
        .collect();
    if let Some(first) = rows.first_mut() {
        first[0] = short(img.id());
    }
    rows
}

/// A table as docker prints one: columns padded to their widest cell, three spaces apart.
pub fn table(out: &mut dyn Write, head: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let n = cells.len();
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| if i + 1 == n { c } else { format!("{c:<width$}   ", width = w[i]) })
            .collect::<String>()
    };
    writeln!(out, "{}", line(head.iter().map(|s| s.to_string()).collect()))?;
    for r in rows {
        writeln!(out, "{}", line(r.clone()))?;
    }
    Ok(())
}

/// The JSON `docker inspect` shows for an image (the fields students use).
pub fn inspect_json(st: &Store, img: &Image) -> serde_json::Value {
    let cfg: serde_json::Value = serde_json::from_slice(&img.config_bytes).unwrap_or_default();
    let tags: Vec<String> = img
        .names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .filter(|r| r.digest.is_none())
        .map(|r| r.familiar())
        .collect();
    let repo_digests: Vec<String> = img
        .names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .map(|r| {
            format!("{}@{}", r.familiar_name(), img.desc.annotation(store::REPO_DIGEST).unwrap_or(&img.desc.digest))
        })
        .collect();
    serde_json::json!({
        "Id": img.id(),
        "RepoTags": tags,
        "RepoDigests": repo_digests,
        "Created": cfg.get("created"),
        "Author": cfg.get("author"),
        "Architecture": cfg.get("architecture"),
        "Variant": cfg.get("variant"),
        "Os": cfg.get("os"),
        "Size": content_size(st, img),
        "Config": cfg.get("config"),
        "RootFS": {"Type": img.config.rootfs.kind, "Layers": img.config.rootfs.diff_ids},
        "Manifest": {"Digest": img.desc.digest, "MediaType": img.desc.media_type,
            "Layers": img.manifest.layers.iter().map(|l| serde_json::json!({"Digest": l.digest, "Size": l.size, "MediaType": l.media_type})).collect::<Vec<_>>()},
        "Metadata": {"Store": st.oci.display().to_string()},
    })
}

/// A small Go-template subset: `{{.A.B}}`, `{{json .A.B}}`, text around them.
pub fn render_format(fmt: &str, v: &serde_json::Value) -> Result<String> {
    let mut out = String::new();
    let mut rest = fmt;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| Error::Usage(format!("unclosed {{{{ in --format {fmt:?}")))?;
        let expr = after[..end].trim();
        let (json, path) = match expr.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, expr),
        };
        if !path.starts_with('.') {
            return Err(Error::Usage(format!(
                "--format supports {{{{.Field.Sub}}}} and {{{{json .Field}}}}, not {expr:?}"
            )));
        }
        let mut cur = v;
        for part in path[1..].split('.').filter(|p| !p.is_empty()) {
            cur = cur.get(part).ok_or_else(|| {
                Error::failed(format!("no field {part:?} in {path}"), "`img-pull inspect IMAGE` shows the fields")
            })?;
        }
        if json {
            out.push_str(&serde_json::to_string(cur).expect("json"));
        } else {
            out.push_str(&go_text(cur));
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn go_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "<no value>".into(),
        serde_json::Value::Array(a) => format!("[{}]", a.iter().map(go_text).collect::<Vec<_>>().join(" ")),
        serde_json::Value::Object(o) => {
            format!("map[{}]", o.iter().map(|(k, v)| format!("{k}:{}", go_text(v))).collect::<Vec<_>>().join(" "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_docker() {
        assert_eq!(human_size(7_050_000), "7.05MB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(parse_time("1970-01-02T00:00:00Z"), Some(86400));
        assert_eq!(parse_time("1970-01-02T01:00:00.5+01:00"), Some(86400));
        let v =
            serde_json::json!({"RootFS": {"Layers": ["sha256:a"]}, "Id": "sha256:x", "Config": {"Cmd": ["sh", "-c"]}});
        assert_eq!(render_format("{{json .RootFS.Layers}}", &v).unwrap(), r#"["sha256:a"]"#);
        assert_eq!(render_format("id={{.Id}} {{.Config.Cmd}}", &v).unwrap(), "id=sha256:x [sh -c]");
        assert!(render_format("{{.Nope}}", &v).is_err());
    }

    /// Ages as docker's units.HumanDuration, at a fixed "now" (no wall clock).
    #[test]
    fn ages_like_docker() {
        let t = "2023-11-14T22:13:20Z";
        let at = parse_time(t).unwrap();
        assert_eq!(at, 1_700_000_000);
        let cases = [
            (0, "Less than a second ago"),
            (30, "30 seconds ago"),
            (60, "About a minute ago"),
            (600, "10 minutes ago"),
            (3600, "About an hour ago"),
            (5 * 3600, "5 hours ago"),
            (3 * 86400, "3 days ago"),
            (21 * 86400, "3 weeks ago"),
            (90 * 86400, "3 months ago"),
            (3 * 365 * 86400, "3 years ago"),
        ];
        for (d, want) in cases {
            assert_eq!(ago(Some(t), at + d), want, "{d} s");
        }
        assert_eq!(ago(None, at), "N/A");
        assert_eq!(ago(Some(t), at - 10), "Less than a second ago", "a clock behind the image");
    }
}
