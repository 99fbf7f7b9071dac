//! `.dockerignore`: which files of the build context the builder may see.
//!
//! When you run `docker build DIR`, the client does not let the builder read
//! `DIR` piece by piece as instructions ask for files. It packs the whole
//! directory (the *build context*) into one tar stream and sends it to the
//! daemon before the first instruction runs. A context that holds `.git`,
//! `node_modules` or a few gigabytes of build output is therefore slow to
//! send, and every file in it can end up in an image by a careless
//! `COPY . .`. The `.dockerignore` file at the root of the context lists the
//! paths that are left out of that stream; for the builder they simply do
//! not exist.
//!
//! The file holds one pattern per line. A line whose very first character
//! is `#` is a comment (docker checks this before trimming, so `  # x` is a
//! pattern). Blank lines are ignored and surrounding whitespace is trimmed.
//! A leading `!` turns the line into an *exception*: paths it matches are put
//! back into the context. Every pattern is cleaned lexically like Go's
//! `filepath.Clean` (`./` and `//` collapse, `a/../b` becomes `b`, a
//! trailing `/` goes) and a leading `/` is dropped, because all paths are
//! relative to the context root anyway: `/foo`, `./foo` and `foo/` are the
//! same pattern. A line that is a lone `!` is an error, as in docker.
//!
//! Patterns use the syntax of Go's `filepath.Match`: `*` matches any run of
//! characters other than `/`, `?` one character other than `/`, `[a-z]` a
//! character class (`[^a-z]` negates it; Go knows no `[!...]` form), and `\`
//! makes the next character literal. On top of that `**` matches any number
//! of directories, zero included: `**/*.go` matches `main.go` and
//! `cmd/x/main.go`. A pattern excludes a path when it matches the path
//! itself or any of its parent directories, so `build` also excludes
//! `build/out/app`. The patterns are read top to bottom and the last one that
//! matches decides.
//!
//! A worked example. With the file
//!
//! ```text
//! *.md
//! !README*.md
//! README-secret.md
//! ```
//!
//! `notes.md` is excluded by line 1; `README.md` is excluded by line 1 and
//! put back by line 2; `README-secret.md` matches all three lines and the
//! last one excludes it again. Swap the last two lines and `README-secret.md`
//! stays in the context, because the exception now comes last.
//!
//! A second one: `*/temp*` excludes `docs/temporary.txt` and the directory
//! `src/tempdir` with everything under it, but not `temp.txt` at the root
//! (the `*` must match one whole path element) nor `a/b/temp.txt` (that
//! needs `*/*/temp*`, or `**/temp*`).
//!
//! A walker that collects the context skips an excluded directory entirely,
//! unless some exception could match inside it: with `vendor` and
//! `!vendor/keep.txt` it must still enter `vendor` to find `keep.txt`.
//! [`Ignore::may_include_beneath`] answers that question.

/// One element of a compiled pattern.
#[derive(Debug, Clone)]
enum Tok {
    /// A character that must appear as is.
    Lit(char),
    /// `*`: any run of characters, none of them `/`.
    Star,
    /// `?`: exactly one character that is not `/`.
    Quest,
    /// `[...]`: one character inside (or, negated, outside) the ranges.
    Class { negated: bool, ranges: Vec<(char, char)> },
    /// `**` not at the end (with the `/` after it, if any): nothing, or any
    /// run of characters that ends with `/`.
    AnyDirs,
    /// `**` at the end of the pattern: any run of characters at all.
    AnyAll,
}

impl Tok {
    /// Whether this single-character element accepts `c`.
    fn accepts(&self, c: char) -> bool {
        match self {
            Tok::Lit(l) => *l == c,
            Tok::Quest => c != '/',
            Tok::Class { negated, ranges } => {
                let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                inside != *negated
            }
            Tok::Star | Tok::AnyDirs | Tok::AnyAll => false,
        }
    }
}

/// How a pattern is compared with a path.
#[derive(Debug, Clone)]
enum Matcher {
    /// The general case: the element list must match the whole path.
    Tokens(Vec<Tok>),
    /// A pattern that is `**` followed only by plain characters. Docker
    /// compares such a pattern as a plain suffix test on the path (or the
    /// path equals the suffix without its leading `/`), so `**.log` matches
    /// `a/b.log` as well as `ab.log`.
    Suffix(String),
}

/// One line of a `.dockerignore` file after cleaning.
#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern, without the `!`.
    text: String,
    /// The line started with `!`: a match puts the path back.
    exception: bool,
    matcher: Matcher,
}

/// The parsed rules of a `.dockerignore` file.
///
/// Paths given to its methods are relative to the root of the build context
/// and slash-separated (`src/main.rs`); a leading `/` or `./` is tolerated
/// and removed.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Parses the text of a `.dockerignore` file.
    ///
    /// A UTF-8 byte order mark at the start is dropped. Lines whose first
    /// character is `#` are comments, blank lines are skipped, every other
    /// line is trimmed, cleaned like Go's `filepath.Clean` and stripped of a
    /// leading `/`. A bad pattern (an unclosed `[`, an empty class `[]`, a
    /// range such as `[a-]`, a trailing `\`) or a line that is only `!`
    /// yields an error naming the line number.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let exception = pattern.starts_with('!');
            if exception {
                pattern = pattern[1..].trim();
            }
            if pattern.is_empty() {
                return Err(format!(".dockerignore line {number}: illegal exclusion pattern \"!\""));
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let matcher = compile(&cleaned)
                .map_err(|e| format!(".dockerignore line {number}: bad pattern {:?}: {e}", line.trim()))?;
            patterns.push(Pattern { text: cleaned, exception, matcher });
        }
        Ok(Ignore { patterns })
    }

    /// Whether the file holds no pattern at all (then nothing is excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the path `rel` is left out of the build context.
    ///
    /// Every pattern is tried against the path and against each of its parent
    /// directories (`a`, `a/b` for `a/b/c`); a pattern that matches any of
    /// them applies, and the last pattern that applies decides: an ordinary
    /// pattern excludes, an exception includes. No applying pattern means
    /// included. The context root itself (`""` or `.`) is never excluded.
    pub fn excluded(&self, rel: &str) -> bool {
        let path = normalize(rel);
        if path == "." {
            return false;
        }
        let chars: Vec<char> = path.chars().collect();
        let mut result = false;
        for pattern in &self.patterns {
            if pattern.exception != result {
                // This line could not change the outcome: skip the work.
                continue;
            }
            if applies(&pattern.matcher, &chars) {
                result = !pattern.exception;
            }
        }
        result
    }

    /// Whether a directory that is itself excluded may still hold included
    /// paths, because some exception pattern could match beneath it; a
    /// walker must then descend into it and test each entry with
    /// [`Ignore::excluded`] instead of skipping it whole.
    ///
    /// The answer errs on the side of `true`: it is `true` when an exception
    /// matches the directory or one of its parents, or when the start of an
    /// exception can match `rel_dir/` (so `!vendor/keep.txt` and `!**/*.go`
    /// both keep `vendor` open). Descending without need only costs time.
    /// Docker's classic archiver is stricter: it descends only when an
    /// exception's text literally begins with `rel_dir/`, so there `**` plus
    /// `!**/*.go` drops everything, while BuildKit descends as this does.
    pub fn may_include_beneath(&self, rel_dir: &str) -> bool {
        let dir = normalize(rel_dir);
        let dir_chars: Vec<char> = dir.chars().collect();
        let mut prefix = dir_chars.clone();
        if dir != "." {
            prefix.push('/');
        } else {
            prefix.clear();
        }
        self.patterns.iter().filter(|p| p.exception).any(|p| match &p.matcher {
            Matcher::Suffix(_) => true,
            Matcher::Tokens(toks) => (dir != "." && applies(&p.matcher, &dir_chars)) || can_start_with(toks, &prefix),
        })
    }

    /// The cleaned patterns in file order, each with `!` in front when it is
    /// an exception; handy for messages and for tests.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns.iter().map(|p| if p.exception { format!("!{}", p.text) } else { p.text.clone() }).collect()
    }
}

/// Go's `filepath.Match` on slash-separated names, without `**`: the rule
/// COPY and ADD use for wildcard sources.
///
/// `*` matches any run of characters other than `/`, `?` one character other
/// than `/`, `[...]` one character of a class (ranges `a-z`, negation with a
/// leading `^`, `\` escapes inside), `\` makes the next character literal.
/// The whole name must match. A malformed pattern is an error even when the
/// name would not have matched, as in Go.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, String> {
    let toks = tokenize(pattern, false).map_err(|e| format!("bad pattern {pattern:?}: {e}"))?;
    let chars: Vec<char> = name.chars().collect();
    Ok(full_match(&toks, &chars))
}

/// Whether `s` holds a glob meta character (`*`, `?` or `[`) that is not
/// escaped by a `\`; a path without one names exactly one file.
pub fn has_meta(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Removes a leading `/` and cleans the path the way patterns are cleaned.
fn normalize(rel: &str) -> String {
    let cleaned = clean(rel);
    match cleaned.strip_prefix('/') {
        Some("") => ".".to_string(),
        Some(rest) => rest.to_string(),
        None => cleaned,
    }
}

/// Go's `filepath.Clean` for `/`-separated paths: the shortest lexically
/// equal path. Empty elements and `.` go, `x/..` pairs cancel, `..` at the
/// root of an absolute path is dropped, and an empty result becomes `.`.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Compiles a cleaned `.dockerignore` pattern.
fn compile(pattern: &str) -> Result<Matcher, String> {
    if let Some(rest) = pattern.strip_prefix("**") {
        if !rest.contains(['*', '?', '[', ']', '\\']) {
            return Ok(Matcher::Suffix(rest.to_string()));
        }
    }
    tokenize(pattern, true).map(Matcher::Tokens)
}

/// Splits a pattern into elements. With `double_star`, `**` is the
/// any-directories element; without it, it is two plain stars.
fn tokenize(pattern: &str, double_star: bool) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if double_star && chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                toks.push(if i == chars.len() { Tok::AnyAll } else { Tok::AnyDirs });
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Quest),
            '\\' => match chars.get(i) {
                Some(&next) => {
                    toks.push(Tok::Lit(next));
                    i += 1;
                }
                None => return Err("trailing \\ escapes nothing".to_string()),
            },
            '[' => {
                let (tok, next) = parse_class(&chars, i)?;
                toks.push(tok);
                i = next;
            }
            other => toks.push(Tok::Lit(other)),
        }
    }
    Ok(toks)
}

/// Parses a character class whose `[` was just before `start`; returns the
/// class and the index after its `]`. Follows Go's rules: the class must not
/// be empty, `-` and `]` cannot start a range, `\` escapes inside.
fn parse_class(chars: &[char], start: usize) -> Result<(Tok, usize), String> {
    let mut i = start;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(i) == Some(&']') && !ranges.is_empty() {
            return Ok((Tok::Class { negated, ranges }, i + 1));
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1)?;
            hi = h;
            i = next;
        }
        ranges.push((lo, hi));
    }
}

/// Reads one (possibly escaped) character of a class at `i`.
fn class_char(chars: &[char], mut i: usize) -> Result<(char, usize), String> {
    match chars.get(i) {
        None => return Err("unclosed [ character class".to_string()),
        Some('-') | Some(']') => return Err("character class misses a character before - or ]".to_string()),
        Some('\\') => i += 1,
        Some(_) => {}
    }
    let c = *chars.get(i).ok_or_else(|| "unclosed [ character class".to_string())?;
    if i + 1 >= chars.len() {
        return Err("unclosed [ character class".to_string());
    }
    Ok((c, i + 1))
}

/// Whether the matcher matches the path or one of its parent directories.
fn applies(matcher: &Matcher, path: &[char]) -> bool {
    if matches_one(matcher, path) {
        return true;
    }
    path.iter().enumerate().filter(|&(_, &c)| c == '/').any(|(i, _)| matches_one(matcher, &path[..i]))
}

/// Whether the matcher matches exactly this path.
fn matches_one(matcher: &Matcher, path: &[char]) -> bool {
    match matcher {
        Matcher::Tokens(toks) => full_match(toks, path),
        Matcher::Suffix(suffix) => {
            let path: String = path.iter().collect();
            path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|s| path == s)
        }
    }
}

/// Runs the elements over the text and returns, for each text position,
/// whether the whole element list can have consumed exactly that prefix;
/// `reach[t * (n + 1) + i]` says the first `t` elements match `text[..i]`.
fn reach_table(toks: &[Tok], text: &[char]) -> Vec<bool> {
    let n = text.len();
    let width = n + 1;
    let mut reach = vec![false; (toks.len() + 1) * width];
    reach[0] = true;
    for (t, tok) in toks.iter().enumerate() {
        let (row, next) = (t * width, (t + 1) * width);
        for i in 0..=n {
            if !reach[row + i] {
                continue;
            }
            match tok {
                Tok::Star => {
                    reach[next + i] = true;
                    for j in i..n {
                        if text[j] == '/' {
                            break;
                        }
                        reach[next + j + 1] = true;
                    }
                }
                Tok::AnyAll => {
                    for j in i..=n {
                        reach[next + j] = true;
                    }
                }
                Tok::AnyDirs => {
                    reach[next + i] = true;
                    for j in i..n {
                        if text[j] == '/' {
                            reach[next + j + 1] = true;
                        }
                    }
                }
                single => {
                    if i < n && single.accepts(text[i]) {
                        reach[next + i + 1] = true;
                    }
                }
            }
        }
    }
    reach
}

/// Whether the elements match the whole text.
fn full_match(toks: &[Tok], text: &[char]) -> bool {
    let reach = reach_table(toks, text);
    reach[toks.len() * (text.len() + 1) + text.len()]
}

/// Whether some text that begins with `prefix` could be matched by the
/// elements: some leading part of the elements consumes all of `prefix`
/// (the rest is assumed satisfiable by a suitable file name).
fn can_start_with(toks: &[Tok], prefix: &[char]) -> bool {
    let reach = reach_table(toks, prefix);
    let width = prefix.len() + 1;
    (0..=toks.len()).any(|t| reach[t * width + prefix.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> Ignore {
        Ignore::parse(text).expect("valid .dockerignore")
    }

    #[test]
    fn docs_star_slash_temp() {
        let ig = ignore("*/temp*");
        assert!(ig.excluded("somedir/temporary.txt"));
        assert!(ig.excluded("somedir/temp"));
        assert!(ig.excluded("somedir/tempdir/file"));
        assert!(!ig.excluded("temp.txt"));
        assert!(!ig.excluded("a/b/temp.txt"));
    }

    #[test]
    fn docs_two_levels_temp() {
        let ig = ignore("*/*/temp*");
        assert!(ig.excluded("somedir/subdir/temporary.txt"));
        assert!(!ig.excluded("somedir/temporary.txt"));
        assert!(!ig.excluded("temp"));
    }

    #[test]
    fn docs_question_mark() {
        let ig = ignore("temp?");
        assert!(ig.excluded("tempa"));
        assert!(ig.excluded("tempb"));
        assert!(!ig.excluded("temp"));
        assert!(!ig.excluded("tempab"));
        assert!(!ig.excluded("dir/tempa"));
    }

    #[test]
    fn double_star_go_files() {
        let ig = ignore("**/*.go");
        assert!(ig.excluded("main.go"));
        assert!(ig.excluded("cmd/x/main.go"));
        assert!(!ig.excluded("main.rs"));
        assert!(!ig.excluded("go"));
    }

    #[test]
    fn double_star_in_the_middle_and_alone() {
        let ig = ignore("a/**/b");
        assert!(ig.excluded("a/b"));
        assert!(ig.excluded("a/x/b"));
        assert!(ig.excluded("a/x/y/b/c"));
        assert!(!ig.excluded("a/xb"));
        assert!(!ig.excluded("b"));
        let all = ignore("**");
        assert!(all.excluded("anything"));
        assert!(all.excluded("deep/down/file"));
        let tail = ignore("logs/**");
        assert!(tail.excluded("logs/a/b.txt"));
        assert!(!tail.excluded("logsx"));
    }

    #[test]
    fn double_star_with_plain_suffix_is_a_suffix_test() {
        let ig = ignore("**.log");
        assert!(ig.excluded("a.log"));
        assert!(ig.excluded("dir/b.log"));
        let dir = ignore("**/cache");
        assert!(dir.excluded("cache"));
        assert!(dir.excluded("x/y/cache/z"));
        assert!(!dir.excluded("xcache"));
    }

    #[test]
    fn docs_markdown_with_readme_exception() {
        let ig = ignore("*.md\n!README.md\n");
        assert!(ig.excluded("CHANGELOG.md"));
        assert!(!ig.excluded("README.md"));
        assert!(!ig.excluded("main.c"));
    }

    #[test]
    fn docs_readme_secret_ordering() {
        let ig = ignore("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(ig.excluded("notes.md"));
        assert!(!ig.excluded("README.md"));
        assert!(!ig.excluded("README-public.md"));
        assert!(ig.excluded("README-secret.md"));

        let swapped = ignore("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(!swapped.excluded("README-secret.md"));
        assert!(!swapped.excluded("README.md"));
        assert!(swapped.excluded("notes.md"));
    }

    #[test]
    fn exception_after_directory_exclusion() {
        let ig = ignore("vendor\n!vendor/keep.txt\n");
        assert!(ig.excluded("vendor"));
        assert!(ig.excluded("vendor/other.txt"));
        assert!(!ig.excluded("vendor/keep.txt"));
        assert!(ig.may_include_beneath("vendor"));
        assert!(!ig.may_include_beneath("other"));
    }

    #[test]
    fn directory_pattern_excludes_everything_beneath() {
        let ig = ignore("build");
        assert!(ig.excluded("build"));
        assert!(ig.excluded("build/out/app"));
        assert!(!ig.excluded("builder"));
        assert!(!ig.excluded("src/build"));
        assert!(!ig.may_include_beneath("build"));
    }

    #[test]
    fn may_include_beneath_with_wildcard_exceptions() {
        let ig = ignore("**\n!**/*.go\n");
        assert!(ig.may_include_beneath("src"));
        assert!(ig.excluded("src/readme.txt"));
        assert!(!ig.excluded("src/main.go"));
        let star = ignore("*\n!*/keep\n");
        assert!(star.may_include_beneath("a"));
        assert!(!star.may_include_beneath("a/b"));
        let reinclude = ignore("docs\n!docs\n");
        assert!(!reinclude.excluded("docs/x"));
        assert!(reinclude.may_include_beneath("docs"));
    }

    #[test]
    fn leading_slash_and_dot_slash_are_cleaned() {
        let ig = ignore("/secret.txt\n./build/\nsrc//gen/../tmp\n");
        assert_eq!(ig.patterns(), vec!["secret.txt", "build", "src/tmp"]);
        assert!(ig.excluded("secret.txt"));
        assert!(ig.excluded("build/a"));
        assert!(ig.excluded("src/tmp/x"));
        assert!(!ig.excluded("src/gen"));
        assert!(ig.excluded("/secret.txt"));
        assert!(ig.excluded("./secret.txt"));
    }

    #[test]
    fn comments_blank_lines_and_whitespace() {
        let ig = ignore("# a comment\n\n   \n  *.tmp  \r\n#*.txt\n");
        assert_eq!(ig.patterns(), vec!["*.tmp"]);
        assert!(ig.excluded("a.tmp"));
        assert!(!ig.excluded("a.txt"));
        let indented = ignore("  # not a comment");
        assert_eq!(indented.patterns(), vec!["# not a comment"]);
        assert!(ignore("# only\n").is_empty());
        assert!(!indented.is_empty());
    }

    #[test]
    fn byte_order_mark_is_dropped() {
        let ig = ignore("\u{feff}*.o\n");
        assert_eq!(ig.patterns(), vec!["*.o"]);
        assert!(ig.excluded("x.o"));
    }

    #[test]
    fn exception_marker_rules() {
        let ig = ignore("*\n! keep.txt\n");
        assert_eq!(ig.patterns(), vec!["*", "!keep.txt"]);
        assert!(!ig.excluded("keep.txt"));
        let err = Ignore::parse("a\n!\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn bad_patterns_name_the_line() {
        let err = Ignore::parse("ok\n[abc\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("[abc"), "{err}");
        assert!(Ignore::parse("x[]").is_err());
        assert!(Ignore::parse("x[a-]").is_err());
        assert!(Ignore::parse("x\\").is_err());
    }

    #[test]
    fn root_is_never_excluded() {
        let ig = ignore("*\n");
        assert!(!ig.excluded(""));
        assert!(!ig.excluded("."));
        assert!(ig.excluded("a"));
    }

    #[test]
    fn escapes_in_ignore_patterns() {
        let ig = ignore("star\\*\n");
        assert!(ig.excluded("star*"));
        assert!(!ig.excluded("starx"));
    }

    #[test]
    fn glob_match_classes_and_ranges() {
        assert_eq!(glob_match("[a-c]", "b"), Ok(true));
        assert_eq!(glob_match("[a-c]", "d"), Ok(false));
        assert_eq!(glob_match("[^a]", "b"), Ok(true));
        assert_eq!(glob_match("[^a]", "a"), Ok(false));
        assert_eq!(glob_match("[^a-c]x", "dx"), Ok(true));
        assert_eq!(glob_match("[!a]", "!"), Ok(true));
        assert_eq!(glob_match("[!a]", "b"), Ok(false));
        assert_eq!(glob_match("a[\\]]b", "a]b"), Ok(true));
        assert_eq!(glob_match("[\\-]", "-"), Ok(true));
        assert_eq!(glob_match("[a-bd-e]", "e"), Ok(true));
    }

    #[test]
    fn glob_match_star_and_question() {
        assert_eq!(glob_match("abc", "abc"), Ok(true));
        assert_eq!(glob_match("*", "abc"), Ok(true));
        assert_eq!(glob_match("*c", "abc"), Ok(true));
        assert_eq!(glob_match("a*", "a"), Ok(true));
        assert_eq!(glob_match("a*/b", "abc/b"), Ok(true));
        assert_eq!(glob_match("a*", "ab/c"), Ok(false));
        assert_eq!(glob_match("*", "a/b"), Ok(false));
        assert_eq!(glob_match("a*b*c*d*e*/f", "axbxcxdxe/f"), Ok(true));
        assert_eq!(glob_match("a*b*c*d*e*/f", "axbxcxdxexxx/fff"), Ok(false));
        assert_eq!(glob_match("a?b", "a/b"), Ok(false));
        assert_eq!(glob_match("a?b", "axb"), Ok(true));
        assert_eq!(glob_match("**", "a/b"), Ok(false));
    }

    #[test]
    fn glob_match_escapes() {
        assert_eq!(glob_match("\\*", "*"), Ok(true));
        assert_eq!(glob_match("\\*", "x"), Ok(false));
        assert_eq!(glob_match("a\\?", "a?"), Ok(true));
        assert_eq!(glob_match("a\\b", "ab"), Ok(true));
    }

    #[test]
    fn glob_match_bad_patterns() {
        assert!(glob_match("[", "a").is_err());
        assert!(glob_match("[^", "a").is_err());
        assert!(glob_match("[]a]", "]").is_err());
        assert!(glob_match("[-]", "-").is_err());
        assert!(glob_match("[x-]", "x").is_err());
        assert!(glob_match("a[", "b").is_err());
        assert!(glob_match("\\", "a").is_err());
    }

    #[test]
    fn has_meta_detects_unescaped_meta() {
        assert!(has_meta("*.txt"));
        assert!(has_meta("file?.txt"));
        assert!(has_meta("[ab].txt"));
        assert!(!has_meta("plain/file.txt"));
        assert!(!has_meta("star\\*.txt"));
        assert!(has_meta("a\\*b*"));
    }

    #[test]
    fn clean_follows_go() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("a/./b/"), "a/b");
        assert_eq!(clean("a//b"), "a/b");
        assert_eq!(clean("a/../.."), "..");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("../a/b/../c"), "../a/c");
        assert_eq!(clean("/"), "/");
    }
}
