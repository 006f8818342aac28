//! Loading human-written TOML files with errors that name the file, line and reason.

use std::{ops::Range, path::Path};

/// A problem in a file, located by line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct FileError {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A file's text, kept to turn byte spans into lines.
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|e| FileError {
            path: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        Ok(Self {
            path: path.display().to_string(),
            text,
        })
    }

    /// An error at byte `span` (start used); `None` puts it at line 1.
    pub fn error_at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> FileError {
        let offset = span.map_or(0, |s| s.start.min(self.text.len()));
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        FileError {
            path: self.path.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// The byte range of `key = ...` inside the `[section]` table, else of its header (`None`
    /// without one: line 1), so that an error about a field points at its line.
    pub fn key_span(&self, section: &str, key: &str) -> Option<Range<usize>> {
        let header = format!("[{section}]");
        let mut offset = 0;
        let mut header_span = None;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim_start();
            let at = offset + (line.len() - t.len());
            offset += line.len();
            if t.starts_with('[') {
                if header_span.is_some() {
                    break; // the next table
                }
                if t.starts_with(&header) {
                    header_span = Some(at..at + header.len());
                }
            } else if header_span.is_some() && is_key_line(t, key) {
                return Some(at..at + key.len());
            }
        }
        header_span
    }

    /// The byte range of `key = ...` in the table whose header starts at `table.start` (an
    /// `[[array]]` entry), else the header itself.
    pub fn key_in_table(&self, table: Range<usize>, key: &str) -> Range<usize> {
        let start = table.start.min(self.text.len());
        let mut offset = start;
        for (i, line) in self.text[start..].split_inclusive('\n').enumerate() {
            let t = line.trim_start();
            let at = offset + (line.len() - t.len());
            offset += line.len();
            if i > 0 && t.starts_with('[') {
                break;
            }
            if i > 0 && is_key_line(t, key) {
                return at..at + key.len();
            }
        }
        table
    }

    /// Deserialises the whole file, locating syntax and type errors.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, FileError> {
        toml::from_str(&self.text)
            .map_err(|e| self.error_at(e.span(), e.message().trim().to_string()))
    }
}

/// Whether a (left-trimmed) line assigns `key`.
fn is_key_line(line: &str, key: &str) -> bool {
    line.strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_columns() {
        let f = SourceFile {
            path: "x.toml".into(),
            text: "a = 1\nb = 2\n".into(),
        };
        let e = f.error_at(Some(8..9), "bad");
        assert_eq!((e.line, e.column), (2, 3));
        assert_eq!(e.to_string(), "x.toml:2:3: bad");
    }

    #[test]
    fn keys_are_found_in_their_own_table_only() {
        let f = SourceFile {
            path: "k.toml".into(),
            text: "[a]\nx = 1\n# [b]\n[b]\nxx = 2\nx = 3\n[[steps]]\ny = 1\n[[steps]]\nx = 4\n"
                .into(),
        };
        let line = |span: Option<Range<usize>>| f.error_at(span, "").line;
        assert_eq!(line(f.key_span("a", "x")), 2);
        assert_eq!(line(f.key_span("b", "x")), 6, "not xx, not [a]'s x");
        assert_eq!(line(f.key_span("b", "y")), 4, "absent: the header");
        assert_eq!(line(f.key_span("c", "x")), 1, "no such table");
        let second = f.text.rfind("[[steps]]").unwrap();
        let first = f.text.find("[[steps]]").unwrap();
        assert_eq!(line(Some(f.key_in_table(second..second + 9, "x"))), 10);
        assert_eq!(
            line(Some(f.key_in_table(first..first + 9, "x"))),
            7,
            "not the next entry's"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let f = SourceFile {
            path: "s.toml".into(),
            text: "name = \"x\"\nsteps = [\n".into(),
        };
        let e = f.parse::<toml::Table>().unwrap_err();
        assert_eq!(e.path, "s.toml");
        assert!(e.line >= 2, "{e}");
    }
}
