//! `--format`: Go's text/template, as `docker inspect --format` and `docker ps
//! --format` take it (`{{.State.Pid}}`, `{{json .Config}}`, `{{range .Mounts}}...{{end}}`,
//! `{{index .Config.Env 0}}`), through the `gotmpl` crate, with the functions docker
//! adds: `json`, `join`, `split`, `lower`, `upper`, `title`, `truncate`, `pad`, `println`.
//!
//! One difference a reader may notice: the data is JSON (what `inspect` prints), so a
//! whole object prints as Go prints a map (`map[Destination:/app RW:true ...]`, keys
//! sorted), where docker prints the Go struct behind it (`{volume foo /app ...}`, fields
//! in declaration order). Fields, lists, `range`, `index` and `json` give the same text.
//!
//! `docker ps --format` also understands `table`: `table {{.ID}}\t{{.Names}}` prints
//! the column headers first and aligns the columns.

use gotmpl::{to_value, FuncMap, Template, Value};

use crate::error::{Error, Result};

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

fn funcs() -> FuncMap {
    let mut fm = FuncMap::new();
    fm.insert(
        "json".into(),
        std::sync::Arc::new(|args: &[Value]| -> gotmpl::Result<Value> {
            let v = args.first().cloned().unwrap_or(Value::Nil);
            Ok(Value::String(value_json(&v).to_string().into()))
        }),
    );
    fm.insert(
        "join".into(),
        std::sync::Arc::new(|args: &[Value]| -> gotmpl::Result<Value> {
            let sep = args.get(1).map(text).unwrap_or_default();
            let items: Vec<String> = match args.first() {
                Some(Value::List(l)) => l.iter().map(text).collect(),
                Some(v) => vec![text(v)],
                None => vec![],
            };
            Ok(Value::String(items.join(&sep).into()))
        }),
    );
    fm.insert(
        "split".into(),
        std::sync::Arc::new(|args: &[Value]| -> gotmpl::Result<Value> {
            let s = args.first().map(text).unwrap_or_default();
            let sep = args.get(1).map(text).unwrap_or_default();
            Ok(Value::List(s.split(sep.as_str()).map(|p| Value::String(p.into())).collect::<Vec<_>>().into()))
        }),
    );
    for (name, f) in [("lower", str::to_lowercase as fn(&str) -> String), ("upper", str::to_uppercase)] {
        fm.insert(
            name.into(),
            std::sync::Arc::new(move |args: &[Value]| -> gotmpl::Result<Value> {
                Ok(Value::String(f(&args.first().map(text).unwrap_or_default()).into()))
            }),
        );
    }
    fm.insert(
        "title".into(),
        std::sync::Arc::new(|args: &[Value]| -> gotmpl::Result<Value> {
            let s = args.first().map(text).unwrap_or_default();
            let t: String = s
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" ");
            Ok(Value::String(t.into()))
        }),
    );
    fm.insert(
        "truncate".into(),
        std::sync::Arc::new(|args: &[Value]| -> gotmpl::Result<Value> {
            let s = args.first().map(text).unwrap_or_default();
            let n = match args.get(1) {
                Some(Value::Int(n)) => *n as usize,
                Some(Value::Uint(n)) => *n as usize,
                _ => s.len(),
            };
            Ok(Value::String(s.chars().take(n).collect::<String>().into()))
        }),
    );
    fm.insert(
        "pad".into(),
        std::sync::Arc::new(|args: &[Value]| -> gotmpl::Result<Value> {
            let s = args.first().map(text).unwrap_or_default();
            let n = |i: usize| match args.get(i) {
                Some(Value::Int(n)) => *n as usize,
                Some(Value::Uint(n)) => *n as usize,
                _ => 0,
            };
            Ok(Value::String(format!("{}{s}{}", " ".repeat(n(1)), " ".repeat(n(2))).into()))
        }),
    );
    fm
}

/// A gotmpl value back as JSON (for `{{json .X}}`).
fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
        }
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(l) => serde_json::Value::Array(l.iter().map(value_json).collect()),
        Value::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.to_string(), value_json(v))).collect()),
        _ => serde_json::Value::Null,
    }
}

/// A parsed `--format`.
pub struct Format {
    tpl: Template,
    /// `table ...`: print headers and align columns.
    pub table: bool,
    /// The column headers of a `table` format, from its `{{.Field}}` names.
    pub headers: Vec<String>,
}

impl Format {
    /// Parse a format; a leading `table ` turns on the header line and alignment.
    pub fn parse(src: &str) -> Result<Format> {
        let (table, body) = match src.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, src),
        };
        // docker's formats understand `\t` and `\n` written as two characters.
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let tpl = Template::new("format")
            .funcs(funcs())
            .parse(&body)
            .map_err(|e| Error::Usage(format!("template parsing error: {e}")))?;
        let headers = if table {
            body.split('\t')
                .map(|col| {
                    let name = col.split("{{.").nth(1).and_then(|r| r.split(['}', ' ']).next()).unwrap_or(col.trim());
                    header_of(name)
                })
                .collect()
        } else {
            vec![]
        };
        Ok(Format { tpl, table, headers })
    }

    /// Render one object (the JSON `inspect` prints, or a `ps` row's fields).
    pub fn render(&self, data: &serde_json::Value) -> Result<String> {
        let v = to_value(data).map_err(|e| Error::failed(format!("template: {e}"), "check the --format string"))?;
        self.tpl.execute_to_string(&v).map_err(|e| Error::Failed {
            what: format!("template: {e}"),
            hint: Some("check the --format string".into()),
        })
    }
}

/// The header docker prints over a `table` column (`ID` → `CONTAINER ID`).
pub fn header_of(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID".into(),
        "Names" => "NAMES".into(),
        "Image" => "IMAGE".into(),
        "Command" => "COMMAND".into(),
        "CreatedAt" => "CREATED AT".into(),
        "RunningFor" => "CREATED".into(),
        "Status" => "STATUS".into(),
        "State" => "STATE".into(),
        "Ports" => "PORTS".into(),
        "Mounts" => "MOUNTS".into(),
        "Networks" => "NETWORKS".into(),
        "Labels" => "LABELS".into(),
        "Size" => "SIZE".into(),
        // `stats` columns.
        "Container" => "CONTAINER".into(),
        "Name" => "NAME".into(),
        "CPUPerc" => "CPU %".into(),
        "MemUsage" => "MEM USAGE / LIMIT".into(),
        "MemPerc" => "MEM %".into(),
        "NetIO" => "NET I/O".into(),
        "BlockIO" => "BLOCK I/O".into(),
        "PIDs" => "PIDS".into(),
        other => other.to_uppercase(),
    }
}

/// Lay out rows of tab-separated cells in columns three spaces apart (docker's
/// tabwriter settings: min width 10... padding 3).
pub fn columns(rows: &[Vec<String>]) -> String {
    // docker's tabwriter (minwidth 10, padding 3): a column is as wide as its widest
    // cell plus 3, and at least 10; the last cell of a row is not padded.
    let n = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut width = vec![0usize; n];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count() + 3).max(10);
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                out.push_str(&" ".repeat(width[i] - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> serde_json::Value {
        serde_json::json!({"State": {"Pid": 42, "Running": true}, "Name": "/c1",
            "Config": {"Env": ["A=1", "B=2"], "Cmd": ["sh"]}, "RootFS": {"Layers": ["sha256:a", "sha256:b"]}})
    }

    #[test]
    fn the_formats_people_copy_from_docs() {
        let r = |f: &str| Format::parse(f).unwrap().render(&data()).unwrap();
        assert_eq!(r("{{.State.Pid}}"), "42");
        assert_eq!(r("{{json .RootFS.Layers}}"), r#"["sha256:a","sha256:b"]"#);
        assert_eq!(r("{{range .Config.Env}}{{.}} {{end}}"), "A=1 B=2 ");
        assert_eq!(r("{{index .Config.Env 1}}"), "B=2");
        assert_eq!(r("{{.Config.Env}}"), "[A=1 B=2]");
        assert_eq!(r("{{join .Config.Cmd \" \"}}|{{upper .Name}}"), "sh|/C1");
        assert_eq!(r("{{if .State.Running}}up{{end}}"), "up");
    }

    #[test]
    fn table_formats_get_headers() {
        let f = Format::parse("table {{.ID}}\\t{{.Names}}").unwrap();
        assert!(f.table);
        assert_eq!(f.headers, ["CONTAINER ID", "NAMES"]);
        assert!(Format::parse("{{.Unclosed").is_err());
    }

    #[test]
    fn columns_are_dockers_tabwriter() {
        // At least 10 wide, 3 spaces past the widest cell; the last cell unpadded.
        let t = columns(&[vec!["A".into(), "BB".into()], vec!["CCC".into(), "D".into()]]);
        assert_eq!(t, "A         BB\nCCC       D\n");
        let t = columns(&[vec!["REPOSITORY-LONG".into(), "".into(), "X".into()]]);
        assert_eq!(t, "REPOSITORY-LONG             X\n");
    }
}
