//! Engine errors and panics → the Python exceptions of `w2vbert/_errors.py`, and the one place the GIL is
//! released around engine work.

use pyo3::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use w2vbert::Error;

pyo3::import_exception!(w2vbert._errors, AudioError);
pyo3::import_exception!(w2vbert._errors, CheckpointError);
pyo3::import_exception!(w2vbert._errors, RequestError);
pyo3::import_exception!(w2vbert._errors, FileError);
pyo3::import_exception!(w2vbert._errors, MissingFileError);
pyo3::import_exception!(w2vbert._errors, InternalError);

/// The exception for `e`, its message prefixed by `context` (e.g. which item of a batch) when given.
pub fn to_py(e: Error, context: Option<&str>) -> PyErr {
    let msg = match context {
        Some(c) => format!("{c}: {e}"),
        None => e.to_string(),
    };
    match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => MissingFileError::new_err(msg),
        Error::Io { .. } => FileError::new_err(msg),
        Error::NotFound { .. } => MissingFileError::new_err(msg),
        Error::Format { .. } | Error::Tensor { .. } | Error::Config { .. } => CheckpointError::new_err(msg),
        Error::Audio { .. } => AudioError::new_err(msg),
        Error::Invalid(_) | Error::NoInputs(_) => RequestError::new_err(msg),
        Error::Internal(_) => InternalError::new_err(msg),
    }
}

/// Run `f` with the GIL released; an engine error becomes its exception, a panic an `InternalError`
/// (no unwind crosses into Python).
pub fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, Error> + Send) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(e, None)),
        Err(payload) => Err(InternalError::new_err(format!(
            "internal error: the engine panicked ({}); the panic was caught, nothing was returned. Please report it",
            w2vbert::error::panic_text(payload.as_ref())
        ))),
    }
}
