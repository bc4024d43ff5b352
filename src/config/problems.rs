//! Policy problems and where they are. Problems found while reading carry a byte span from the
//! TOML parser; problems found while compiling name a key path (`routes[0].query.page_size.max`),
//! resolved to a span of the parsed document only when they are printed. Either way the user sees
//! `FILE:LINE:COL: message` for every problem at once.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// The path of a key in the policy, e.g. `routes[1].params.order_id.pattern`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Seg>);

impl KeyPath {
    /// The document root.
    pub fn root() -> Self {
        Self::default()
    }

    /// This path followed by a table key.
    pub fn k(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    /// This path followed by an array index.
    pub fn i(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if n == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Location {
    Span(Range<usize>),
    Path(KeyPath),
}

/// Problems collected while reading and compiling one policy file.
#[derive(Debug, Default)]
pub struct Problems {
    items: Vec<(Location, String)>,
    /// Things that load but deserve a second look (`0.0.0.0/0` in an IP list); never a refusal.
    warnings: Vec<(Location, String)>,
}

impl Problems {
    /// A problem at a byte span of the policy text.
    pub fn at_span(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.items.push((Location::Span(span), message.into()));
    }

    /// A problem at a key of the policy.
    pub fn at(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.items
            .push((Location::Path(path.clone()), message.into()));
    }

    /// A warning at a key of the policy: printed by `ordergate check`, logged by `serve`.
    pub fn warn(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.warnings
            .push((Location::Path(path.clone()), message.into()));
    }

    /// The warnings so far, resolved like problems (see [`Problems::resolve`]), leaving none.
    pub fn take_warnings(
        &mut self,
        file: &Path,
        text: &str,
        doc: Option<&Spanned<DeTable<'_>>>,
    ) -> Vec<PolicyProblem> {
        let warnings = Problems {
            items: std::mem::take(&mut self.warnings),
            warnings: Vec::new(),
        };
        warnings.resolve(file, text, doc)
    }

    /// How many problems so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The messages alone, for tests.
    #[cfg(test)]
    pub fn messages(&self) -> Vec<String> {
        self.items.iter().map(|(_, m)| m.clone()).collect()
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Resolves every location to a line and column of `text`, in file order.
    pub fn resolve(
        self,
        file: &Path,
        text: &str,
        doc: Option<&Spanned<DeTable<'_>>>,
    ) -> Vec<PolicyProblem> {
        let mut out: Vec<PolicyProblem> = self
            .items
            .into_iter()
            .map(|(location, message)| {
                let offset = match location {
                    Location::Span(span) => span.start,
                    Location::Path(path) => doc.map(|d| span_of(d, &path).start).unwrap_or(0),
                };
                let (line, col) = line_col(text, offset);
                PolicyProblem {
                    file: file.to_path_buf(),
                    line,
                    col,
                    message,
                }
            })
            .collect();
        out.sort_by(|a, b| (a.line, a.col, &a.message).cmp(&(b.line, b.col, &b.message)));
        out.dedup();
        out
    }
}

/// A problem ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// The policy file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong, and what is expected.
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

/// The span of the deepest key of `path` present in the document: the value itself when the
/// whole path exists, otherwise the table where the missing key belongs.
fn span_of(doc: &Spanned<DeTable<'_>>, path: &KeyPath) -> Range<usize> {
    let mut span = doc.span();
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
    for seg in &path.0 {
        let next: Option<&Spanned<DeValue<'_>>> = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => t.get(k.as_str()),
            (Seg::Index(i), _, Some(a)) => a.get(*i),
            _ => None,
        };
        let Some(value) = next else { break };
        span = value.span();
        table = value.get_ref().as_table();
        array = value.get_ref().as_array().map(|a| a.as_ref());
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let text = "a = 1\nbé = 2\nc = 3";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 10), (2, 4));
        assert_eq!(line_col(text, 999), (3, 6));
    }

    #[test]
    fn paths_resolve_to_the_deepest_existing_key() {
        let text = "[server]\nlisten = \"x\"\n\n[[routes]]\nid = \"a\"\n[[routes]]\nid = \"b\"\nmethod = 3\n";
        let doc = DeTable::parse(text).unwrap();
        let mut problems = Problems::default();
        problems.at(&KeyPath::root().k("routes").i(1).k("method"), "bad method");
        problems.at(&KeyPath::root().k("server").k("listen"), "bad listen");
        let out = problems.resolve(Path::new("p.toml"), text, Some(&doc));
        assert_eq!(out[0].to_string(), "p.toml:2:10: bad listen");
        assert_eq!(out[1].to_string(), "p.toml:8:10: bad method");
        assert_eq!(
            KeyPath::root().k("routes").i(1).k("method").to_string(),
            "routes[1].method"
        );
    }
}
