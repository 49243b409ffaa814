//! `file:line: message` diagnostics for P-Mode and configuration files.
//!
//! Operators fix configuration by line number, so every problem — syntax, unknown field,
//! semantic or profile violation — is reported against the line of the key at fault. Syntax and
//! shape errors come with a byte span from the `toml` parser; semantic checks name a key path
//! (`"security.suite"`, `"leg.1.action"`) that [`Locator`] maps back to the line of that key.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as it was opened (config dir joined with the relative path).
    pub file: PathBuf,
    /// 1-based line number; 1 when the problem concerns the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// A list of diagnostics as one error value (for `?` and `thiserror` sources).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct Diagnostics(pub Vec<Diagnostic>);

fn render(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// 1-based line of byte `offset` in `text`.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Maps dotted key paths of one TOML document to the line their key is written on.
///
/// Array elements are addressed by index (`leg.0.action`). A path that does not exist (a
/// missing key) resolves to its nearest existing ancestor, which is where the operator has to
/// add it.
#[derive(Debug, Default)]
pub struct Locator {
    lines: HashMap<String, usize>,
}

impl Locator {
    /// Builds the map; a document that does not parse gives an empty locator (everything on
    /// line 1), which only happens when the syntax error was already reported.
    pub fn new(text: &str) -> Self {
        let mut lines = HashMap::new();
        if let Ok(doc) = DeTable::parse(text) {
            walk_table(text, doc.get_ref(), "", &mut lines);
        }
        Locator { lines }
    }

    /// Line of `path`, or of its nearest existing ancestor, or 1.
    pub fn line(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(&l) = self.lines.get(p) {
                return l;
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return 1,
            }
        }
    }

    /// Whether the key path is written in the document.
    pub fn has(&self, path: &str) -> bool {
        self.lines.contains_key(path)
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_table(text: &str, t: &DeTable<'_>, prefix: &str, out: &mut HashMap<String, usize>) {
    for (k, v) in t.iter() {
        let path = join(prefix, k.get_ref());
        out.entry(path.clone())
            .or_insert_with(|| line_of_offset(text, k.span().start));
        walk_value(text, v.get_ref(), v.span().start, &path, out);
    }
}

fn walk_value(
    text: &str,
    v: &DeValue<'_>,
    start: usize,
    path: &str,
    out: &mut HashMap<String, usize>,
) {
    match v {
        DeValue::Table(t) => walk_table(text, t, path, out),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                let p = format!("{path}.{i}");
                let line = line_of_offset(text, item.span().start.max(start));
                out.entry(p.clone()).or_insert(line);
                walk_value(text, item.get_ref(), item.span().start, &p, out);
            }
        }
        _ => {}
    }
}

/// Collects diagnostics for one file.
#[derive(Debug)]
pub struct Sink<'a> {
    pub file: &'a Path,
    pub locator: &'a Locator,
    pub out: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub fn new(file: &'a Path, locator: &'a Locator) -> Self {
        Sink {
            file,
            locator,
            out: Vec::new(),
        }
    }

    /// Records `message` against the line of key `path`.
    pub fn at(&mut self, path: &str, message: impl Into<String>) {
        let line = self.locator.line(path);
        self.out.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            message: message.into(),
        });
    }
}

/// Turns a `toml` deserialization error into a diagnostic (its span gives the line).
pub fn from_toml_error(file: &Path, text: &str, e: &toml::de::Error) -> Diagnostic {
    let line = e.span().map(|s| line_of_offset(text, s.start)).unwrap_or(1);
    // The toml message is multi-line (with a source excerpt) only in Display; message() is the
    // bare sentence.
    Diagnostic {
        file: file.to_path_buf(),
        line,
        message: e.message().trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locator_finds_keys_tables_and_array_elements() {
        let text = "id = \"x\"\n\n[security]\nsuite = \"a\"\n\n[[leg]]\naction = \"A\"\n\n[[leg]]\nname = \"n\"\naction = \"B\"\n";
        let l = Locator::new(text);
        assert_eq!(l.line("id"), 1);
        assert_eq!(l.line("security.suite"), 4);
        assert_eq!(l.line("security.missing"), 3);
        assert_eq!(l.line("leg.0.action"), 7);
        assert_eq!(l.line("leg.1.action"), 11);
        assert_eq!(l.line("nothing.here"), 1);
    }
}
