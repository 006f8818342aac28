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

    /// Deserialises the whole file, locating syntax and type errors.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, FileError> {
        toml::from_str(&self.text)
            .map_err(|e| self.error_at(e.span(), e.message().trim().to_string()))
    }
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
