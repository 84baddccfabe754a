//! The one error type. Every message names the file and, where there is one, the tensor or field.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening / reading / writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is malformed as a whole (bad safetensors header, bad JSON, truncated data, ...).
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// One tensor of a weights/stats file is missing or has the wrong shape / dtype / values.
    #[error("{}: tensor `{name}`: {msg}", path.display())]
    Tensor { path: PathBuf, name: String, msg: String },
    /// A config field is missing, malformed, or a setting we do not implement.
    #[error("{}: config field `{field}`: {msg}", path.display())]
    Config { path: PathBuf, field: String, msg: String },
    /// Audio that cannot be decoded or used (empty, too short, NaN/Inf samples, unsupported codec).
    #[error("{}: {msg}", path.display())]
    Audio { path: PathBuf, msg: String },
    /// A file the request needs does not exist (checkpoint files, stats); `hint` says what it is and where it
    /// comes from.
    #[error("{}: not found; {hint}", path.display())]
    NotFound { path: PathBuf, hint: String },
    /// A request that cannot be served (bad layer index, incompatible options, unsupported CPU, ...).
    #[error("{0}")]
    Invalid(String),
    /// The inputs of a corpus run name no audio file at all.
    #[error("{0}")]
    NoInputs(String),
    /// A worker of a corpus run died: a bug in this crate (the run stopped cleanly).
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub fn tensor(path: impl Into<PathBuf>, name: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Tensor {
            path: path.into(),
            name: name.into(),
            msg: msg.into(),
        }
    }
    pub fn config(path: impl Into<PathBuf>, field: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            field: field.into(),
            msg: msg.into(),
        }
    }
    pub fn not_found(path: impl Into<PathBuf>, hint: impl Into<String>) -> Self {
        Error::NotFound {
            path: path.into(),
            hint: hint.into(),
        }
    }
    /// The file system refused to store more: no space left, a quota reached, or mounted read-only. Every
    /// later output would fail the same way, so a corpus run stops here instead of computing them.
    pub fn is_storage_exhausted(&self) -> bool {
        use std::io::ErrorKind::{QuotaExceeded, ReadOnlyFilesystem, StorageFull};
        let Error::Io { source, .. } = self else {
            return false;
        };
        matches!(source.kind(), StorageFull | QuotaExceeded | ReadOnlyFilesystem)
    }
    pub fn audio(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Audio {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_exhausted_is_no_space_quota_or_read_only_and_nothing_else() {
        let io = |e: std::io::Error| Error::io("/out/x.npy", e);
        #[cfg(target_os = "linux")]
        for (errno, want) in [(28, true), (122, true), (30, true), (13, false), (2, false), (5, false)] {
            // ENOSPC, EDQUOT, EROFS; EACCES, ENOENT, EIO
            let e = io(std::io::Error::from_raw_os_error(errno));
            assert_eq!(e.is_storage_exhausted(), want, "errno {errno}: {e}");
        }
        assert!(io(std::io::ErrorKind::StorageFull.into()).is_storage_exhausted());
        assert!(!Error::format("/out/x.npy", "no space").is_storage_exhausted());
    }
}
