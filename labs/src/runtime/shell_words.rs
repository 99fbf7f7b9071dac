//! Dockerfile word processing: quotes, escapes and `$VAR` expansion.
//!
//! A `RUN` line is handed to a shell inside the container, and the shell
//! expands `$HOME` there. Most other instructions never meet a shell:
//! `ADD`, `COPY`, `ENV`, `EXPOSE`, `FROM`, `LABEL`, `STOPSIGNAL`, `USER`,
//! `VOLUME`, `WORKDIR`, `ONBUILD` and `ARG` are carried out by the builder
//! itself, on the host, before any container exists. For `WORKDIR $APP/src`
//! to mean anything, the builder must do the shell's job on that one line:
//! remove quotes, honour escapes and replace variables with the values set
//! so far by `ARG` and `ENV`. Docker's builder does it with a small lexer of
//! its own that copies a useful subset of POSIX shell rules; this module
//! reproduces that lexer.
//!
//! The rules. `$NAME` and `${NAME}` expand to the variable's value, or to
//! nothing when it is unset (there is no error for unset variables). A name
//! is letters, digits and `_`; a name that starts with a digit takes only
//! digits (`$1x` is `$1` then `x`), and the special parameters `$@ $* $# $?
//! $- $$ $! $0` are recognised but never set. A `$` not followed by a name
//! or `{` stays a literal `$`. Inside braces:
//!
//! * `${NAME:-word}` gives `word` when NAME is unset or empty, `${NAME-word}`
//!   only when it is unset;
//! * `${NAME:+word}` gives `word` when NAME is set and not empty,
//!   `${NAME+word}` when it is set at all, and nothing otherwise;
//! * `${NAME:?msg}` fails the build with `NAME: msg` when NAME is unset or
//!   empty, `${NAME?msg}` only when it is unset;
//! * `${NAME#pat}` / `${NAME##pat}` cut the shortest / longest prefix that
//!   matches the shell pattern `pat` (`*`, `?`), `${NAME%pat}` /
//!   `${NAME%%pat}` the same at the end, and `${NAME/pat/rep}` /
//!   `${NAME//pat/rep}` replace the first / every match.
//!
//! `word` itself is processed the same way, so `${A:-${B:-none}}` nests.
//!
//! Quoting. Inside single quotes everything is literal, even the escape
//! character. Inside double quotes variables expand, and the escape
//! character escapes only `"`, `$` and itself; before anything else it is
//! kept as it is (`"a\tb"` stays `a\tb`). Outside quotes the escape
//! character makes the next character literal and disappears. The escape
//! character is `\` unless the Dockerfile starts with the parser directive
//! `` # escape=` `` (the usual choice on Windows, where `\` separates paths).
//!
//! Worked example, following the Dockerfile reference:
//!
//! ```text
//! ENV abc=hello
//! ENV abc=bye def=$abc
//! ENV ghi=$abc
//! ```
//!
//! In the second line `def` becomes `hello`, not `bye`: every variable of an
//! instruction is replaced using the values from *before* that instruction.
//! The third line then sees `abc=bye`. Likewise `COPY ${dir:-src}/ '$dir'/`
//! copies from `src/` when `dir` is unset, into a directory literally named
//! `$dir`.
//!
//! Three entry points correspond to what the instructions need:
//! [`Lex::word`] returns the whole text as one word (WORKDIR, USER, the image
//! of FROM, each source of COPY after the parser split the line on blanks);
//! [`Lex::words`] also splits on unquoted blanks, including blanks that come
//! out of an unquoted variable (EXPOSE); [`Lex::pairs`] reads the
//! `KEY=VALUE` lists of ENV and LABEL.

/// Docker's Dockerfile lexer, parameterised by the escape character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lex {
    /// The escape character: `\` by default, or the one named by the
    /// `# escape=` parser directive (`` ` `` in practice).
    pub escape: char,
}

impl Default for Lex {
    fn default() -> Lex {
        Lex::new('\\')
    }
}

impl Lex {
    /// A lexer that uses `escape` as its escape character.
    pub fn new(escape: char) -> Lex {
        Lex { escape }
    }

    /// Processes `s` as a single word: quotes removed, escapes applied,
    /// variables expanded through `env` (which returns `None` for an unset
    /// variable). Blanks are kept as they are.
    ///
    /// `word("${dir:-/app}/bin", env)` is `/app/bin` when `dir` is unset.
    pub fn word(&self, s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        self.run(s, env, false).map(|(word, _, _)| word)
    }

    /// Processes `s` like [`Lex::word`] but splits the result into words on
    /// blanks that are neither quoted nor escaped. Blanks that come out of
    /// an unquoted variable split too, as in a shell; a word that ends up
    /// empty (such as `""`) is dropped.
    ///
    /// With `PORTS="80 443"`, `words("$PORTS 8080/udp", env)` is
    /// `["80", "443", "8080/udp"]`.
    pub fn words(&self, s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, String> {
        self.run(s, env, false).map(|(_, words, _)| words)
    }

    /// Reads the arguments of ENV as key/value pairs; the same as
    /// [`Lex::pairs_for`] with the instruction name `ENV`.
    pub fn pairs(&self, s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>, String> {
        self.pairs_for("ENV", s, env)
    }

    /// Reads the arguments of ENV or LABEL (`instruction` names which, for
    /// error messages) as key/value pairs, the way docker does.
    ///
    /// The text is first cut into blank-separated words, keeping quoted
    /// parts together. If the first word holds a `=`, every word must be
    /// `KEY=VALUE` (split at its first `=`), otherwise the error is docker's
    /// ``Syntax error - can't find = in "WORD". Must be of the form:
    /// name=value``. If the first word has no `=`, the old form applies: that
    /// word is the only key and the rest of the text, whatever blanks it
    /// holds, is the value (`ENV PATH_EXTRA /a /b`); a key with nothing after
    /// it is the error `ENV must have two arguments`. An empty key is
    /// `ENV names can not be blank`. Keys and values then go through
    /// [`Lex::word`], all with the same `env`: a pair does not see the
    /// pairs before it in the same instruction.
    pub fn pairs_for(
        &self,
        instruction: &str,
        s: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, String> {
        let s = s.trim();
        let raw = self.split_raw(s);
        let Some(first) = raw.first() else {
            return Err(format!("{instruction} requires at least one argument"));
        };
        let mut raw_pairs: Vec<(String, String)> = Vec::new();
        if !first.contains('=') {
            let cut = s.find(|c: char| " \t\r\x0b\x0c".contains(c));
            let Some(cut) = cut else {
                return Err(format!("{instruction} must have two arguments"));
            };
            let value = s[cut..].trim_start_matches(|c: char| " \t\r\x0b\x0c".contains(c));
            raw_pairs.push((s[..cut].to_string(), value.to_string()));
        } else {
            for w in &raw {
                match w.split_once('=') {
                    Some((k, v)) => raw_pairs.push((k.to_string(), v.to_string())),
                    None => {
                        return Err(format!("Syntax error - can't find = in {w:?}. Must be of the form: name=value"))
                    }
                }
            }
        }
        if raw_pairs.iter().any(|(k, _)| k.is_empty()) {
            return Err(format!("{instruction} names can not be blank"));
        }
        let mut out = Vec::with_capacity(raw_pairs.len());
        for (k, v) in raw_pairs {
            out.push((self.word(&k, env)?, self.word(&v, env)?));
        }
        Ok(out)
    }

    /// The names of the variables that `s` refers to, in order of first
    /// use, without duplicates; names inside single quotes or behind an
    /// escaped `$` do not count, names inside `${A:-$B}` both count.
    /// Useful to tell whether a build argument matters to an instruction.
    /// A malformed text yields the names found before the error.
    pub fn used(&self, s: &str) -> Vec<String> {
        let none = |_: &str| None;
        let mut sc = Scanner::new(self, s, &none);
        sc.lenient = true;
        let _ = sc.process_stop_on(None, false);
        sc.names
    }

    /// Runs the lexer over `s`: the single-word result, the split words and
    /// the names looked up.
    fn run(
        &self,
        s: &str,
        env: &dyn Fn(&str) -> Option<String>,
        lenient: bool,
    ) -> Result<(String, Vec<String>, Vec<String>), String> {
        let mut sc = Scanner::new(self, s, env);
        sc.lenient = lenient;
        match sc.process_stop_on(None, false) {
            Ok((word, words)) => Ok((word, words, sc.names)),
            Err(e) => Err(format!("failed to process {s:?}: {e}")),
        }
    }

    /// Cuts an ENV/LABEL argument into blank-separated words the way
    /// docker's parser does before any expansion: quotes and escapes are
    /// kept in the words, only used to decide where words end.
    fn split_raw(&self, s: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut keep_empty = false;
        let mut quote: Option<char> = None;
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            // The escape character keeps the next one, outside single quotes.
            if c == self.escape && quote != Some('\'') {
                match chars.next() {
                    Some(next) => {
                        cur.push(c);
                        cur.push(next);
                    }
                    None => break,
                }
                continue;
            }
            match quote {
                None if c.is_whitespace() => {
                    if keep_empty || !cur.is_empty() {
                        words.push(std::mem::take(&mut cur));
                    }
                    keep_empty = false;
                }
                None => {
                    if c == '\'' || c == '"' {
                        quote = Some(c);
                        keep_empty = true;
                    }
                    cur.push(c);
                }
                Some(q) => {
                    if c == q {
                        quote = None;
                    }
                    cur.push(c);
                }
            }
        }
        if keep_empty || !cur.is_empty() {
            words.push(cur);
        }
        words
    }
}

/// Collects output characters both as one string and as blank-split words.
struct Words {
    result: String,
    words: Vec<String>,
    buf: String,
    in_word: bool,
}

impl Words {
    fn new() -> Words {
        Words { result: String::new(), words: Vec::new(), buf: String::new(), in_word: false }
    }

    /// A character that splits words when it is a blank.
    fn add_char(&mut self, c: char) {
        self.result.push(c);
        if c.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.buf.push(c);
            self.in_word = true;
        }
    }

    /// A character that belongs to the current word whatever it is.
    fn add_raw_char(&mut self, c: char) {
        self.result.push(c);
        self.buf.push(c);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_str(&mut self, s: &str) {
        self.result.push_str(s);
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> (String, Vec<String>) {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        (self.result, self.words)
    }
}

/// The state of one run of the lexer over one text.
struct Scanner<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Keep escape characters in the output (for the pattern of `#`, `%`
    /// and `/`, which interprets `\` itself).
    raw_escapes: bool,
    /// Never fail on `${NAME?}`; used when only collecting names.
    lenient: bool,
    /// Every variable name looked up, first use first.
    names: Vec<String>,
}

impl<'a> Scanner<'a> {
    fn new(lex: &Lex, s: &str, env: &'a dyn Fn(&str) -> Option<String>) -> Scanner<'a> {
        Scanner {
            chars: s.chars().collect(),
            pos: 0,
            escape: lex.escape,
            env,
            raw_escapes: false,
            lenient: false,
            names: Vec::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_string());
        }
        (self.env)(name)
    }

    /// Processes characters until `stop` (consumed) or, with `None`, the end.
    fn process_stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), String> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let out = self.process_inner(stop);
        self.raw_escapes = saved;
        out
    }

    fn process_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut out = Words::new();
        while let Some(c) = self.peek() {
            if stop == Some(c) {
                self.next();
                return Ok(out.finish());
            }
            match c {
                '$' => {
                    let value = self.dollar()?;
                    out.add_str(&value);
                }
                '\'' => {
                    let value = self.single_quote()?;
                    out.add_raw_str(&value);
                }
                '"' => {
                    let value = self.double_quote()?;
                    out.add_raw_str(&value);
                }
                _ => {
                    self.next();
                    if c == self.escape {
                        if self.raw_escapes {
                            out.add_raw_char(c);
                        }
                        match self.next() {
                            Some(escaped) => out.add_raw_char(escaped),
                            None => break,
                        }
                    } else {
                        out.add_char(c);
                    }
                }
            }
        }
        match stop {
            Some(s) => Err(format!("unexpected end of statement while looking for matching {s}")),
            None => Ok(out.finish()),
        }
    }

    fn single_quote(&mut self) -> Result<String, String> {
        self.next();
        let mut value = String::new();
        loop {
            match self.next() {
                None => return Err("unexpected end of statement while looking for matching single-quote".to_string()),
                Some('\'') => return Ok(value),
                Some(c) => value.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        self.next();
        let mut value = String::new();
        loop {
            match self.peek() {
                None => return Err("unexpected end of statement while looking for matching double-quote".to_string()),
                Some('"') => {
                    self.next();
                    return Ok(value);
                }
                Some('$') => {
                    let expanded = self.dollar()?;
                    value.push_str(&expanded);
                }
                Some(c) => {
                    self.next();
                    if c == self.escape {
                        if self.raw_escapes {
                            value.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.next();
                                value.push(n);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    value.push(c);
                }
            }
        }
    }

    /// Reads a variable name at the current position (see the module text).
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && "@*#?-$!0".contains(c) {
                self.next();
                name.push(c);
                return name;
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            self.next();
            name.push(c);
        }
        name
    }

    /// Expands the `$...` at the current position.
    fn dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.lookup(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_string()),
            Some('{') | Some('}') | Some(':') => return Err("syntax error: bad substitution".to_string()),
            Some(_) => {}
        }
        let name = self.name();
        let Some(mut op) = self.next() else {
            return Err("syntax error: missing '}'".to_string());
        };
        let mut op_text = op.to_string();
        let mut colon = false;
        match op {
            '}' => return Ok(self.lookup(&name).unwrap_or_default()),
            '/' => return self.replace(&name),
            ':' => {
                colon = true;
                op = self.next().ok_or_else(|| "syntax error: missing '}'".to_string())?;
                op_text.push(op);
            }
            '+' | '-' | '?' | '#' | '%' => {}
            _ => return Err(format!("unsupported modifier ({op_text}) in substitution")),
        }
        let pattern_op = op == '#' || op == '%';
        if !matches!(op, '+' | '-' | '?' | '#' | '%') || (colon && pattern_op) {
            return Err(format!("unsupported modifier ({op_text}) in substitution"));
        }
        let word = self.stop_on_brace(pattern_op)?;
        let value = self.lookup(&name);
        let empty = value.as_deref().is_none_or(|v| colon && v.is_empty());
        match op {
            '-' => Ok(if empty { word } else { value.unwrap_or_default() }),
            '+' => Ok(if empty { String::new() } else { word }),
            '?' => {
                if self.lenient {
                    return Ok(value.unwrap_or_default());
                }
                match value {
                    None => Err(format!("{name}: {}", or_default(&word, "is not allowed to be unset"))),
                    Some(v) if colon && v.is_empty() => {
                        Err(format!("{name}: {}", or_default(&word, "is not allowed to be empty")))
                    }
                    Some(v) => Ok(v),
                }
            }
            _ => {
                let value = value.unwrap_or_default();
                let (greedy, pat) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let pat = shell_pattern(pat)?;
                Ok(if op == '#' { trim_prefix(&pat, &value, greedy) } else { trim_suffix(&pat, &value, greedy) })
            }
        }
    }

    /// Reads the word of a `${NAME op word}` up to its `}`.
    fn stop_on_brace(&mut self, raw_escapes: bool) -> Result<String, String> {
        match self.process_stop_on(Some('}'), raw_escapes) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err("syntax error: missing '}'".to_string()),
            Err(e) => Err(e),
        }
    }

    /// `${NAME/pat/rep}` and `${NAME//pat/rep}`, after the first `/`.
    fn replace(&mut self, name: &str) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '/' in ${}".to_string()),
            Err(e) => return Err(e),
        };
        let replacement = self.stop_on_brace(true)?;
        let value = self.lookup(name).unwrap_or_default();
        let pat = shell_pattern(&pattern)?;
        let text: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        while i <= text.len() {
            if !replaced || all {
                if let Some(end) = (i..=text.len()).rev().find(|&e| pat_match(&pat, &text[i..e])) {
                    out.push_str(&replacement);
                    replaced = true;
                    if end > i {
                        i = end;
                        continue;
                    }
                }
            }
            if i < text.len() {
                out.push(text[i]);
            }
            i += 1;
        }
        Ok(out)
    }
}

fn or_default<'s>(word: &'s str, default: &'s str) -> &'s str {
    if word.is_empty() {
        default
    } else {
        word
    }
}

/// The variables that `s` refers to, read with the default escape character
/// `\`; see [`Lex::used`].
pub fn used(s: &str) -> Vec<String> {
    Lex::default().used(s)
}

/// One element of a shell pattern (`#`, `%`, `/` operators).
#[derive(Debug, Clone, Copy, PartialEq)]
enum PatTok {
    Any,
    One,
    Lit(char),
}

/// Parses the pattern of `${NAME#pat}` and friends: `*` any run, `?` one
/// character, `\*`, `\?`, `\\` literal, `\}` and `\/` the bare character;
/// any other escape is an error, as in docker.
fn shell_pattern(pat: &str) -> Result<Vec<PatTok>, String> {
    let mut out = Vec::new();
    let mut chars = pat.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push(PatTok::Any),
            '?' => out.push(PatTok::One),
            '\\' => match chars.next() {
                Some(n @ ('*' | '?' | '\\' | '}' | '/')) => out.push(PatTok::Lit(n)),
                Some(n) => return Err(format!("invalid pattern ({pat}) in substitution: invalid escape '\\{n}'")),
                None => return Err(format!("invalid pattern ({pat}) in substitution: trailing escape")),
            },
            other => out.push(PatTok::Lit(other)),
        }
    }
    Ok(out)
}

/// Whether the shell pattern matches the whole text.
fn pat_match(pat: &[PatTok], text: &[char]) -> bool {
    let n = text.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    for tok in pat {
        let mut next = vec![false; n + 1];
        for i in 0..=n {
            if !reach[i] {
                continue;
            }
            match tok {
                PatTok::Any => next[i..].iter_mut().for_each(|r| *r = true),
                PatTok::One => {
                    if i < n {
                        next[i + 1] = true;
                    }
                }
                PatTok::Lit(c) => {
                    if i < n && text[i] == *c {
                        next[i + 1] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[n]
}

/// `${NAME#pat}` (shortest) and `${NAME##pat}` (longest, `greedy`).
fn trim_prefix(pat: &[PatTok], value: &str, greedy: bool) -> String {
    let text: Vec<char> = value.chars().collect();
    let fits = |e: &usize| pat_match(pat, &text[..*e]);
    let cut = if greedy { (0..=text.len()).rev().find(fits) } else { (0..=text.len()).find(fits) };
    match cut {
        Some(e) => text[e..].iter().collect(),
        None => value.to_string(),
    }
}

/// `${NAME%pat}` (shortest) and `${NAME%%pat}` (longest, `greedy`).
fn trim_suffix(pat: &[PatTok], value: &str, greedy: bool) -> String {
    let text: Vec<char> = value.chars().collect();
    let fits = |s: &usize| pat_match(pat, &text[*s..]);
    let cut = if greedy { (0..=text.len()).find(fits) } else { (0..=text.len()).rev().find(fits) };
    match cut {
        Some(s) => text[..s].iter().collect(),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn word(s: &str, vars: &[(&str, &str)]) -> Result<String, String> {
        let map = env_of(vars);
        Lex::new('\\').word(s, &|k| map.get(k).cloned())
    }

    fn words(s: &str, vars: &[(&str, &str)]) -> Vec<String> {
        let map = env_of(vars);
        Lex::new('\\').words(s, &|k| map.get(k).cloned()).expect("valid words")
    }

    /// The fixture of buildkit's lexer tests.
    const BK: &[(&str, &str)] = &[("PWD", "/home"), ("SHELL", "bash"), ("KOREAN", "한국어"), ("NULL", "")];

    fn ok(s: &str, want: &str) {
        assert_eq!(word(s, BK).as_deref(), Ok(want), "input {s:?}");
    }

    fn bad(s: &str) {
        assert!(word(s, BK).is_err(), "input {s:?} should fail, got {:?}", word(s, BK));
    }

    #[test]
    fn reference_env_example() {
        let lex = Lex::new('\\');
        let mut env: HashMap<String, String> = HashMap::new();
        for line in ["abc=hello", "abc=bye def=$abc", "ghi=$abc"] {
            let snapshot = env.clone();
            let pairs = lex.pairs(line, &|k| snapshot.get(k).cloned()).unwrap();
            env.extend(pairs);
        }
        assert_eq!(env["abc"], "bye");
        assert_eq!(env["def"], "hello");
        assert_eq!(env["ghi"], "bye");
    }

    #[test]
    fn reference_replacement_forms() {
        let foo = &[("foo", "/bar")];
        assert_eq!(word("${foo}_bar", foo).unwrap(), "/bar_bar");
        assert_eq!(word("$foo", foo).unwrap(), "/bar");
        assert_eq!(word("\\$foo", foo).unwrap(), "$foo");
        assert_eq!(word("\\${foo}", foo).unwrap(), "${foo}");
        assert_eq!(word("'$foo'", foo).unwrap(), "$foo");
        assert_eq!(word("\"$foo\"", foo).unwrap(), "/bar");
        assert_eq!(word("${variable:-word}", &[]).unwrap(), "word");
        assert_eq!(word("${variable:-word}", &[("variable", "set")]).unwrap(), "set");
        assert_eq!(word("${variable:+word}", &[("variable", "set")]).unwrap(), "word");
        assert_eq!(word("${variable:+word}", &[]).unwrap(), "");
    }

    #[test]
    fn colon_forms_treat_empty_as_unset() {
        let e = &[("E", "")];
        assert_eq!(word("${E:-d}", e).unwrap(), "d");
        assert_eq!(word("${E-d}", e).unwrap(), "");
        assert_eq!(word("${U-d}", e).unwrap(), "d");
        assert_eq!(word("${E:+w}", e).unwrap(), "");
        assert_eq!(word("${E+w}", e).unwrap(), "w");
        assert_eq!(word("${U+w}", e).unwrap(), "");
    }

    #[test]
    fn question_forms_fail_with_message() {
        assert_eq!(word("${X?need X}", &[]).unwrap_err(), "failed to process \"${X?need X}\": X: need X");
        assert!(word("${X:?}", &[]).unwrap_err().contains("X: is not allowed to be unset"));
        assert!(word("${X:?}", &[("X", "")]).unwrap_err().contains("X: is not allowed to be empty"));
        assert_eq!(word("${X?}", &[("X", "")]).unwrap(), "");
        assert_eq!(word("${X:?}", &[("X", "v")]).unwrap(), "v");
    }

    #[test]
    fn buildkit_basic_cases() {
        ok("hello", "hello");
        ok("he'll'o", "hello");
        ok("he\\'llo", "he'llo");
        ok("abc\\tdef", "abctdef");
        ok("\"abc\\tdef\"", "abc\\tdef");
        ok("\"abc\\\\tdef\"", "abc\\tdef");
        ok("'abc\\tdef'", "abc\\tdef");
        ok("hello\\", "hello");
        ok("hello\\\\", "hello\\");
        ok("\"hel'lo\"", "hel'lo");
        ok("'hello\\'", "hello\\");
        ok("\"''\"", "''");
        ok("'\"hello\"'", "\"hello\"");
        bad("he'llo");
        bad("he\\\\'llo");
        bad("\"hello");
        bad("\"hello\\\"");
        bad("'hello");
    }

    #[test]
    fn buildkit_dollar_cases() {
        ok("$.", "$.");
        ok("he$1x", "hex");
        ok("he$.x", "he$.x");
        ok("he$pwd.", "he.");
        ok("he$PWD", "he/home");
        ok("he\\$PWD", "he$PWD");
        ok("he\\\\$PWD", "he\\/home");
        ok("\"he\\$PWD\"", "he$PWD");
        ok("\"he\\\\$PWD\"", "he\\/home");
        ok("'\\$PWD'", "\\$PWD");
        ok("\"he'$PWD'\"", "he'/home'");
        ok("\\${}aaa", "${}aaa");
        ok("he${hi}xx", "hexx");
        ok("안녕$KOREAN", "안녕한국어");
        ok("$999aaa", "aaa");
        ok("${001:-bbb}aaa", "bbbaaa");
        ok("$@@@", "@@");
        ok("${0:-bbb}", "bbb");
        ok("${aaa}}", "}");
        bad("${}");
        bad("he${}xx");
        bad("he${.}");
        bad("he${PWD");
        bad("${{aaa}");
        bad("${:}");
        bad("${:-bbb}");
    }

    #[test]
    fn buildkit_modifier_cases() {
        ok("he${XXX:-000}xx", "he000xx");
        ok("he${PWD:-000}xx", "he/homexx");
        ok("he${XXX:-$PWD}xx", "he/homexx");
        ok("he${XXX:-${PWD:-yyy}}xx", "he/homexx");
        ok("he${XXX:-${YYY:-yyy}}xx", "heyyyxx");
        ok("he${PWD:+${SHELL}}xx", "hebashxx");
        ok("he${PWD:+${PWD}:}xx", "he/home:xx");
        ok("he${XXX:-\\$PWD:}xx", "he$PWD:xx");
        ok("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx");
        ok("he${NULL?}", "he");
        ok("${aaa:-bbb}}", "bbb}");
        ok("${aaa:-bbb {foo}", "bbb {foo");
        ok("${aaa:-\"}\"}", "}");
        bad("he${XXX:YYY}");
        bad("he${PWD:=000}xx");
        bad("he${XXX?}");
        bad("he${NULL:?}");
        bad("${aaa:-bbb ${foo}");
        bad("${aaa:-bbb");
    }

    #[test]
    fn pattern_modifiers() {
        let v = &[("F", "dir/sub/file.tar.gz")];
        assert_eq!(word("${F#*/}", v).unwrap(), "sub/file.tar.gz");
        assert_eq!(word("${F##*/}", v).unwrap(), "file.tar.gz");
        assert_eq!(word("${F%.*}", v).unwrap(), "dir/sub/file.tar");
        assert_eq!(word("${F%%.*}", v).unwrap(), "dir/sub/file");
        assert_eq!(word("${F/sub/SUB}", v).unwrap(), "dir/SUB/file.tar.gz");
        assert_eq!(word("${F//\\//_}", v).unwrap(), "dir_sub_file.tar.gz");
        assert_eq!(word("${F/x/y}", v).unwrap(), "dir/sub/file.tar.gz");
        assert_eq!(word("${F#nomatch}", v).unwrap(), "dir/sub/file.tar.gz");
        assert!(word("${F:#x}", v).is_err());
        assert!(word("${F#\\q}", v).is_err());
    }

    #[test]
    fn backtick_escape() {
        let lex = Lex::new('`');
        let env = |k: &str| (k == "foo").then(|| "bar".to_string());
        assert_eq!(lex.word("`$foo", &env).unwrap(), "$foo");
        assert_eq!(lex.word("C:\\path\\$foo", &env).unwrap(), "C:\\path\\bar");
        assert_eq!(lex.word("\"a`\"b\"", &env).unwrap(), "a\"b");
        assert_eq!(lex.word("\"a`tb\"", &env).unwrap(), "a`tb");
        assert_eq!(lex.words("a` b c", &env).unwrap(), vec!["a b", "c"]);
    }

    #[test]
    fn words_split_like_buildkit() {
        let sp = &[("space", "abc  def"), ("leading", "  ab c"), ("trailing", "ab c   ")];
        assert_eq!(words("hello${space}bye", sp), vec!["helloabc", "defbye"]);
        assert_eq!(words("hello\"${space}\"bye", sp), vec!["helloabc  defbye"]);
        assert_eq!(words("hello \"${space}\"bye", sp), vec!["hello", "abc  defbye"]);
        assert_eq!(words("hello${leading}def", sp), vec!["hello", "ab", "cdef"]);
        assert_eq!(words("hello${trailing}d", sp), vec!["helloab", "c", "d"]);
        assert_eq!(words("hel\"lo${trailing}\"", sp), vec!["helloab c   "]);
        assert_eq!(words("hello there     ", sp), vec!["hello", "there"]);
        assert_eq!(words("hello\\ there", sp), vec!["hello there"]);
        assert_eq!(words("hello\\\" there", sp), vec!["hello\"", "there"]);
        assert_eq!(words("hello'$there'", sp), vec!["hello$there"]);
        assert_eq!(words("a \"\" b", sp), vec!["a", "b"]);
        assert!(Lex::new('\\').words("hello\" there", &|_| None).is_err());
    }

    #[test]
    fn pairs_new_and_old_forms() {
        let lex = Lex::new('\\');
        let env = |k: &str| (k == "v").then(|| "x".to_string());
        assert_eq!(
            lex.pairs("a=1 b=\"two words\" c=$v d=\\$v", &env).unwrap(),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "two words".to_string()),
                ("c".to_string(), "x".to_string()),
                ("d".to_string(), "$v".to_string()),
            ]
        );
        assert_eq!(
            lex.pairs("MY_PATH  /a /b  $v", &env).unwrap(),
            vec![("MY_PATH".to_string(), "/a /b  x".to_string())]
        );
        assert_eq!(
            lex.pairs("name \"quoted value\"", &env).unwrap(),
            vec![("name".to_string(), "quoted value".to_string())]
        );
        assert_eq!(lex.pairs("e=", &env).unwrap(), vec![("e".to_string(), String::new())]);
        assert_eq!(lex.pairs("\"k\"=\"a=b\"", &env).unwrap(), vec![("k".to_string(), "a=b".to_string())]);
    }

    #[test]
    fn pairs_errors() {
        let lex = Lex::new('\\');
        let none = |_: &str| None;
        assert_eq!(
            lex.pairs_for("LABEL", "a=1 oops", &none).unwrap_err(),
            "Syntax error - can't find = in \"oops\". Must be of the form: name=value"
        );
        assert_eq!(lex.pairs_for("LABEL", "=x", &none).unwrap_err(), "LABEL names can not be blank");
        assert_eq!(lex.pairs("ONLYKEY", &none).unwrap_err(), "ENV must have two arguments");
        assert!(lex.pairs("", &none).is_err());
    }

    #[test]
    fn used_lists_referenced_names() {
        let lex = Lex::new('\\');
        assert_eq!(lex.used("echo $A ${B:-$C} '$D' \\$E \"$F\" ${A}"), vec!["A", "C", "B", "F"]);
        assert_eq!(lex.used("${X:?must be set}"), vec!["X"]);
        assert!(lex.used("no variables here").is_empty());
        assert_eq!(used("$HTTP_PROXY:${PORT}"), vec!["HTTP_PROXY", "PORT"]);
        assert_eq!(Lex::new('`').used("`$A \\$B"), vec!["B"]);
    }

    #[test]
    fn error_names_the_input() {
        let err = word("${A", &[]).unwrap_err();
        assert_eq!(err, "failed to process \"${A\": syntax error: missing '}'");
    }
}
