//! One `.safetensors` checkpoint, memory-mapped.
//!
//! File layout: `u64 LE header length n` | `n bytes of JSON header` | data. The header maps each tensor name
//! to `{dtype, shape, data_offsets: [start, end]}` with offsets relative to the data section, and an optional
//! `__metadata__` map of strings. The whole header is validated at `open`, with checked arithmetic, before
//! any tensor is touched, so a malformed or truncated file is an `Err` naming the file (and the tensor where
//! there is one), never a panic or an allocation sized by the file's claims.
//!
//! F32 tensors are handed out as zero-copy views into the mapping (`Tensor::mapped`) when their bytes are
//! 4-byte aligned, which is the normal case: both safetensors writers pad the header to 8 bytes and place the
//! widest dtypes first. F16/BF16 tensors are widened into owned f32 once, at load.
//!
//! The mapping assumes nobody truncates or rewrites the file while it is open (as every mmap-based loader
//! does: a file shrunk underneath us would fault on access).

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use memmap2::Mmap;
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Same limit as the safetensors crate and the Python reader: a header past this is treated as corrupt.
const MAX_HEADER_LEN: u64 = 100_000_000;

/// Where one tensor lives: `start..end` are absolute byte offsets into the file (header included).
#[derive(Debug, Clone)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

pub struct Weights {
    path: PathBuf,
    map: Arc<Mmap>,
    entries: BTreeMap<String, Entry>,
    metadata: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Weights({}, {} tensors)", self.path.display(), self.entries.len())
    }
}

impl Weights {
    /// Maps `path` and validates its header and tensor table.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if file_len < 8 {
            return Err(Error::format(
                path,
                format!("not a safetensors file: {file_len} bytes, shorter than the 8-byte header length"),
            ));
        }
        // SAFETY: read-only mapping; see the module comment about concurrent truncation.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        // Ask for 2 MiB pages before anything is read: a file not yet in the page cache is then read into 2 MiB
        // folios and mapped with one PMD entry per 2 MiB, so mapping the 17 layers takes ~3 ms instead of
        // 20–100 ms of page-table work per run (README, "Loading"). Advisory: failure changes nothing.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Self::from_map(path, map)
    }

    /// The same as [`Weights::open`] on a file holding `bytes`, without a file: the bytes are copied into an
    /// anonymous read-only mapping (so tensors are zero-copy views exactly as for a file). `source` names the
    /// input in errors. For in-memory checkpoints and the fuzz targets.
    pub fn from_bytes(source: &Path, bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 8 {
            return Err(Error::format(
                source,
                format!(
                    "not a safetensors file: {} bytes, shorter than the 8-byte header length",
                    bytes.len()
                ),
            ));
        }
        let mut map = memmap2::MmapMut::map_anon(bytes.len()).map_err(|e| Error::io(source, e))?;
        map.copy_from_slice(bytes);
        let map = map.make_read_only().map_err(|e| Error::io(source, e))?;
        Self::from_map(source, map)
    }

    fn from_map(path: &Path, map: Mmap) -> Result<Self> {
        let (entries, metadata) = parse(path, &map)?;
        Ok(Weights {
            path: path.to_path_buf(),
            map: Arc::new(map),
            entries,
            metadata,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.entries.get(name).map(|e| e.dtype)
    }

    /// The header's `__metadata__` string map, if the file has one.
    pub fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.as_ref()
    }

    /// The dtype holding the most bytes (for logging, e.g. "F32 checkpoint"); `None` for an empty file.
    pub fn storage_dtype(&self) -> Option<Dtype> {
        let mut bytes: Vec<(Dtype, usize)> = Vec::new();
        for e in self.entries.values() {
            match bytes.iter_mut().find(|(d, _)| *d == e.dtype) {
                Some((_, n)) => *n += e.end - e.start,
                None => bytes.push((e.dtype, e.end - e.start)),
            }
        }
        bytes.into_iter().max_by_key(|&(_, n)| n).map(|(d, _)| d)
    }

    /// Where `name`'s bytes lie in the file (absolute offsets, header included), for readers that stream
    /// tensors from the file instead of mapping them (e.g. `convert`).
    pub fn data_range(&self, name: &str) -> Option<Range<usize>> {
        self.entries.get(name).map(|e| e.start..e.end)
    }

    /// Address range of the mapping, so callers (and tests) can tell a zero-copy view from a copy.
    pub fn mapping_range(&self) -> Range<usize> {
        let base = self.map.as_ptr() as usize;
        base..base + self.map.len()
    }

    /// Loads `name`, which must have exactly `shape`. F32 is a zero-copy view when aligned (copied
    /// otherwise); BF16 is a view widened to f32 on first use ([`Tensor::raw_bf16`] reads it as stored); F16 is
    /// widened to owned f32; any other dtype is an error.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let entry = self.entry(name)?;
        if entry.shape != shape {
            return Err(Error::tensor(
                &self.path,
                name,
                format!("expected shape {shape:?}, found {:?} ({:?})", entry.shape, entry.dtype),
            ));
        }
        self.load(name, entry)
    }

    /// Loads `name` with whatever shape the file gives it.
    pub fn get_any_shape(&self, name: &str) -> Result<Tensor> {
        let entry = self.entry(name)?;
        self.load(name, entry)
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries.get(name).ok_or_else(|| {
            let close = closest_names(name, self.entries.keys().map(String::as_str), 3);
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!("; closest names: {}", close.join(", "))
            };
            Error::tensor(
                &self.path,
                name,
                format!("not found among the file's {} tensors{hint}", self.entries.len()),
            )
        })
    }

    fn load(&self, name: &str, e: &Entry) -> Result<Tensor> {
        // In bounds: `parse` checked every range against the file length.
        let bytes = &self.map[e.start..e.end];
        let shape = e.shape.clone();
        match e.dtype {
            Dtype::F32 => {
                // The mapped bytes are little-endian f32; a view is only correct on a little-endian host.
                if cfg!(target_endian = "little") {
                    if let Some(t) = Tensor::mapped(shape.clone(), Arc::clone(&self.map), e.start) {
                        return Ok(t);
                    }
                }
                let v = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Ok(Tensor::from_vec(shape, v))
            }
            Dtype::F16 => {
                let v = widen_f16(bytes);
                self.release(e);
                Ok(Tensor::from_vec(shape, v))
            }
            // A view: the bf16 matmul packs it as stored; f32 consumers widen it on first use (then its
            // mapped pages are released, so it is not resident twice).
            Dtype::BF16 => Ok(
                Tensor::mapped_bf16(shape.clone(), Arc::clone(&self.map), e.start).unwrap_or_else(|| {
                    let v = widen_bf16(bytes);
                    self.release(e);
                    Tensor::from_vec(shape, v)
                }),
            ),
            other => Err(Error::tensor(
                &self.path,
                name,
                format!("dtype {other:?} is not supported (expected F32, F16 or BF16)"),
            )),
        }
    }
}

impl Weights {
    /// Drops the mapped pages lying wholly inside a tensor that was just copied out (f16/bf16 widened into owned
    /// f32), so a 16-bit checkpoint is not resident twice (its f32 copy plus its mapped bytes: 2.36 GB instead
    /// of 1.60 GB for 17 full-size layers). A later read of the range faults the same bytes back in from the file.
    fn release(&self, e: &Entry) {
        #[cfg(unix)]
        {
            const PAGE: usize = 4096;
            // The mapping starts page-aligned; keep pages shared with neighbouring tensors.
            let base = self.map.as_ptr() as usize;
            let start = (base + e.start).next_multiple_of(PAGE) - base;
            let end = (base + e.end) / PAGE * PAGE - base;
            if end > start {
                // SAFETY: a read-only private mapping of a file nobody modifies while it is open (module comment):
                // MADV_DONTNEED only discards clean page-cache-backed pages, and any access afterwards re-reads
                // identical bytes, so no Rust reference into the mapping can observe a change. Failure is harmless
                // (the pages just stay resident).
                let _ = unsafe {
                    self.map
                        .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
                };
            }
        }
        #[cfg(not(unix))]
        let _ = e;
    }
}

/// Little-endian f16 bytes → f32, exact. Goes through `half`'s slice conversion, which uses F16C when the
/// build enables it (x86-64-v3), in blocks so the u16 staging buffer stays on the stack.
pub(crate) fn widen_f16(bytes: &[u8] /* [n * 2] */) -> Vec<f32> {
    use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
    const BLOCK: usize = 1024;
    let n = bytes.len() / 2;
    let mut out = vec![0.0f32; n];
    let mut bits = [0u16; BLOCK];
    for (src, dst) in bytes.chunks(2 * BLOCK).zip(out.chunks_mut(BLOCK)) {
        let bits = &mut bits[..dst.len()];
        for (b, c) in bits.iter_mut().zip(src.chunks_exact(2)) {
            *b = u16::from_le_bytes([c[0], c[1]]);
        }
        bits.reinterpret_cast::<half::f16>().convert_to_f32_slice(dst);
    }
    out
}

/// Little-endian bf16 bytes → f32. bf16 is the top half of an f32, so widening is a shift (exact, and NaN
/// payloads are kept as PyTorch keeps them).
pub(crate) fn widen_bf16(bytes: &[u8] /* [n * 2] */) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
        .collect()
}

type Table = BTreeMap<String, Entry>;

/// Validates the whole header: lengths, JSON schema, dtypes, shape × dtype size = byte range, and that the
/// ranges tile the data section exactly (no overlap, no hole, no trailing bytes: the safetensors rules).
fn parse(path: &Path, file: &[u8]) -> Result<(Table, Option<BTreeMap<String, String>>)> {
    let bad = |msg: String| Error::format(path, msg);
    let file_len = file.len();
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(
        file.get(..8)
            .ok_or_else(|| bad(format!("{file_len} bytes is too short")))?,
    );
    let n = u64::from_le_bytes(len8);
    if n > MAX_HEADER_LEN {
        return Err(bad(format!(
            "header length {n} is absurd (> {MAX_HEADER_LEN} bytes): corrupt or not a safetensors file"
        )));
    }
    // n <= 1e8, so this cannot overflow.
    let data_start = 8 + n as usize;
    if data_start > file_len {
        return Err(bad(format!(
            "header length {n} runs past the end of the file ({file_len} bytes): truncated or corrupt"
        )));
    }
    let text = std::str::from_utf8(&file[8..data_start]).map_err(|e| bad(format!("header is not UTF-8: {e}")))?;
    let raw: RawHeader = serde_json::from_str(text).map_err(|e| bad(format!("header is not a JSON object: {e}")))?;

    let mut metadata = None;
    let mut entries = Table::new();
    for (name, value) in raw.0 {
        if name == "__metadata__" {
            if metadata.is_some() {
                return Err(bad("header has `__metadata__` twice".into()));
            }
            let m: BTreeMap<String, String> = serde_json::from_value(value)
                .map_err(|e| bad(format!("`__metadata__` must be a map of strings: {e}")))?;
            metadata = Some(m);
            continue;
        }
        let info: RawInfo =
            serde_json::from_value(value).map_err(|e| Error::tensor(path, &name, format!("bad header entry: {e}")))?;
        let entry = check_entry(path, &name, info, data_start)?;
        if entries.insert(name.clone(), entry).is_some() {
            return Err(Error::tensor(path, &name, "appears twice in the header"));
        }
    }

    // Tile check in file order. Sorting by (start, end) puts empty tensors before the one they share a start
    // with, so they pass; any other shared byte is an overlap.
    let mut order: Vec<(&String, &Entry)> = entries.iter().collect();
    order.sort_by_key(|(_, e)| (e.start, e.end));
    let mut cursor = data_start;
    let mut prev: Option<&str> = None;
    for (name, e) in order {
        if e.start < cursor {
            let with = prev.unwrap_or("the header");
            return Err(Error::tensor(
                path,
                name,
                format!("byte range overlaps tensor `{with}`"),
            ));
        }
        if e.start > cursor {
            return Err(Error::tensor(
                path,
                name,
                format!(
                    "{} unused bytes before this tensor (holes are not allowed)",
                    e.start - cursor
                ),
            ));
        }
        cursor = e.end;
        prev = Some(name);
    }
    if cursor > file_len {
        return Err(bad(format!(
            "truncated: the header describes {} data bytes, the file holds {}",
            cursor - data_start,
            file_len - data_start
        )));
    }
    if cursor < file_len {
        return Err(bad(format!(
            "{} trailing bytes after the last tensor (not a valid safetensors file)",
            file_len - cursor
        )));
    }
    Ok((entries, metadata))
}

/// One entry's own checks: known dtype, ordered offsets, element count × dtype size = byte range (checked).
fn check_entry(path: &Path, name: &str, info: RawInfo, data_start: usize) -> Result<Entry> {
    let err = |msg: String| Error::tensor(path, name, msg);
    let dtype: Dtype = serde_json::from_value(serde_json::Value::String(info.dtype.clone()))
        .map_err(|_| err(format!("unknown dtype `{}`", info.dtype)))?;
    let [s, e] = info.data_offsets;
    if e < s {
        return Err(err(format!("data_offsets [{s}, {e}] end before they start")));
    }
    let nbytes = info
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|count| count.checked_mul(dtype.size()))
        .ok_or_else(|| err(format!("shape {:?} × {dtype:?} overflows", info.shape)))?;
    if (e - s) as u128 != nbytes as u128 {
        return Err(err(format!(
            "shape {:?} × {dtype:?} is {nbytes} bytes but data_offsets [{s}, {e}] span {}",
            info.shape,
            e - s
        )));
    }
    let abs = |o: u64| {
        usize::try_from(o)
            .ok()
            .and_then(|o| o.checked_add(data_start))
            .ok_or_else(|| err(format!("data_offsets [{s}, {e}] lie past the end of the file")))
    };
    Ok(Entry {
        dtype,
        shape: info.shape,
        start: abs(s)?,
        end: abs(e)?,
    })
}

#[derive(serde::Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// The header object's entries in file order, duplicates kept (a plain map would silently keep the last).
struct RawHeader(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for RawHeader {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawHeader;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> std::result::Result<RawHeader, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = m.next_entry::<String, serde_json::Value>()? {
                    v.push(kv);
                }
                Ok(RawHeader(v))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// Up to `k` names nearest to `want` by edit distance (only on the error path: a few hundred names).
fn closest_names<'a>(want: &str, names: impl Iterator<Item = &'a str>, k: usize) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> = names.map(|n| (edit_distance(want, n), n)).collect();
    scored.sort();
    // Far-off names are noise, not hints.
    let limit = want.len().max(4) / 2;
    scored
        .into_iter()
        .filter(|&(d, _)| d <= limit)
        .take(k)
        .map(|(_, n)| n)
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a = a.as_bytes();
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}
