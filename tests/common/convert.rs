//! Helpers of the `convert` tests (convert.rs, convert_errors.rs).

use std::path::{Path, PathBuf};
use w2vbert::convert::{convert, ConvertOptions, OutDtype};

/// The small checkpoint shipped in checkpoints/ (24 layers, F16 storage, stats).
pub fn tiny() -> PathBuf {
    super::repo().join("checkpoints/tiny-random")
}

pub fn opts(layers: usize, dtype: OutDtype) -> ConvertOptions {
    ConvertOptions {
        layers,
        dtype,
        ..ConvertOptions::default()
    }
}

/// `src` converted with `o` into a fresh temporary directory (kept alive by the first value).
pub fn converted(src: &Path, o: &ConvertOptions) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    convert(src, &out, o).unwrap_or_else(|e| panic!("convert {}: {e}", src.display()));
    (tmp, out)
}
