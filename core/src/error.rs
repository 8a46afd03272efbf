//! Every failure nml reports, as one typed error. Messages name the file (or input) and the
//! problem, and the row, index or line where there is one.

use std::path::PathBuf;

/// See the module documentation. New kinds of failure may be added, so matches need a `_` arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NmlError {
    /// A file that could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file or byte buffer that does not hold what it should; `source_name` names it and the
    /// message says where (row, index, key or line) and what is wrong.
    #[error("{source_name}: {message}")]
    Format { source_name: String, message: String },
    /// Arguments or configuration that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// Training produced a loss that is not a finite number.
    #[error("training diverged at epoch {epoch} (loss {loss}); lower the learning rate")]
    Diverged { epoch: usize, loss: f64 },
    /// A numerical method that did not converge.
    #[error("{0}")]
    Numerical(String),
    /// The compute backend failed (a device that did not start, a read that did not complete).
    #[error("backend: {0}")]
    Backend(String),
}

impl NmlError {
    pub fn format(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Format { source_name: source_name.into(), message: message.into() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// `Result` with [`NmlError`].
pub type Result<T, E = NmlError> = std::result::Result<T, E>;
