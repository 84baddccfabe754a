//! A streaming `.safetensors` writer: the header is computed from the tensors' names, dtypes and shapes, then
//! each tensor's bytes are produced by the caller and written one at a time, so only one tensor is ever in
//! memory.
//!
//! Why not `safetensors::serialize_to_file`: it streams too, but pulls each tensor through the infallible
//! `View::data()`, so a read or cast error in the middle of the file could not be reported as an error naming
//! the tensor. The format is the crate's (8-byte LE header length, JSON header padded with spaces, data in
//! header order without holes), with the header padded further so that the data starts on a 64-byte boundary
//! ([`DATA_ALIGN`]); files written here are re-read by `Weights::open`, whose parser
//! checks exactly those rules, and loaded by the Python `safetensors` / transformers (see tests/convert.rs and
//! the README).

use crate::error::{Error, Result};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// The data section starts at a multiple of this many bytes from the file's start (so, in a mapping, on a cache
/// line): the header is padded with spaces, as the format allows.
pub const DATA_ALIGN: usize = 64;

/// One tensor of the file to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl OutTensor {
    pub fn nbytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

/// Writes `tensors` in the order given to a new file at `path` (fsynced before returning) and returns its size.
/// `fill(i, buf)` must leave exactly tensor `i`'s little-endian bytes in `buf` (cleared by the callee).
pub fn write_safetensors(
    path: &Path,
    metadata: &BTreeMap<String, String>,
    tensors: &[OutTensor],
    mut fill: impl FnMut(usize, &mut Vec<u8>) -> Result<()>,
) -> Result<u64> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::json!(metadata));
    }
    let mut offset = 0usize;
    for t in tensors {
        let end = offset + t.nbytes();
        let dtype = serde_json::to_value(t.dtype)
            .map_err(|e| Error::tensor(path, &t.name, format!("cannot name dtype {:?}: {e}", t.dtype)))?;
        let entry = serde_json::json!({ "dtype": dtype, "shape": t.shape, "data_offsets": [offset, end] });
        if header.insert(t.name.clone(), entry).is_some() || t.name == "__metadata__" {
            return Err(Error::tensor(path, &t.name, "name given twice"));
        }
        offset = end;
    }
    let mut text = serde_json::to_string(&header)
        .map_err(|e| Error::format(path, format!("cannot write the safetensors header: {e}")))?;
    // The data section (after the 8-byte length and the header) starts DATA_ALIGN-aligned: every f32 tensor
    // lands 4-aligned, and every tensor after only whole multiples of DATA_ALIGN bytes on a cache line.
    text.push_str(&" ".repeat((DATA_ALIGN - (8 + text.len()) % DATA_ALIGN) % DATA_ALIGN));

    let io = |e: std::io::Error| Error::io(path, e);
    let mut f = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
    f.write_all(&(text.len() as u64).to_le_bytes()).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    let mut buf = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        buf.clear();
        fill(i, &mut buf)?;
        if buf.len() != t.nbytes() {
            return Err(Error::tensor(
                path,
                &t.name,
                format!(
                    "{} bytes produced for a {:?} {:?} tensor of {} bytes",
                    buf.len(),
                    t.dtype,
                    t.shape,
                    t.nbytes()
                ),
            ));
        }
        f.write_all(&buf).map_err(io)?;
    }
    let f = f.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)?;
    forget_cached_pages(&f);
    Ok(8 + text.len() as u64 + offset as u64)
}

/// Drop the written file's pages from the page cache (Linux; written and synced, so they are clean). Pages a
/// process writes stay cached in small pages, and mapping ~0.8 GB of them costs every later run 20–30 ms of
/// page-table work; read back from disk once, the file is cached in 2 MiB folios and maps in a few ms
/// (docs/loading.md, "Page size"). Advice only: nothing is lost if the kernel ignores it.
fn forget_cached_pages(f: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; posix_fadvise only reads its arguments.
        let _ = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}
