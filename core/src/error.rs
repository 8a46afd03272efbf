use std::path::PathBuf;

/// Every failure nml reports. Messages name the file (or input) and the problem.
#[derive(Debug, thiserror::Error)]
pub enum NmlError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file or byte buffer that does not hold what it should; `source` names it.
    #[error("{source_name}: {message}")]
    Format {
        source_name: String,
        message: String,
    },
    /// Arguments or configuration that cannot be used.
    #[error("{0}")]
    Invalid(String),
    #[error("backend: {0}")]
    Backend(String),
}

impl NmlError {
    pub fn format(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Format {
            source_name: source_name.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = NmlError> = std::result::Result<T, E>;
