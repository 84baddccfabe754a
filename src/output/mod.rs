//! Output writers: `.npy` (one f32 array) and `.safetensors` (several named f32 arrays).
//!
//! Both are atomic: the bytes go to a temporary file beside the target (`.<name>.w2vbert-tmp.<pid>`, see
//! [`temp_path`]), fsynced, then renamed over it, so a failure or SIGKILL never leaves a partial output file; a
//! leftover temporary file is never mistaken for an output (its name differs) and [`remove_stale_temps`] deletes
//! them. [`check_npy`] / [`check_safetensors`] tell a complete output (valid header, file size exactly what the
//! header says) from anything else, which is what a resumed run trusts.

mod payload;

pub use payload::{Expected, Format, Payload};

use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Marker between a target's name and the writer's pid in temporary file names.
const TEMP_MARK: &str = ".w2vbert-tmp.";

/// The temporary file [`write_atomic`] writes `path`'s bytes to: `.<name>.w2vbert-tmp.<pid>` in the same directory.
pub fn temp_path(path: &Path) -> Result<PathBuf> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: not a file path", path.display())))?;
    Ok(dir.join(format!(".{}{TEMP_MARK}{}", name.to_string_lossy(), std::process::id())))
}

/// The target name a temporary file of [`temp_path`]'s naming was written for (any pid), or None.
pub fn temp_target(file_name: &OsStr) -> Option<OsString> {
    let s = file_name.to_str()?;
    let rest = s.strip_prefix('.')?;
    let at = rest.rfind(TEMP_MARK)?;
    let pid = &rest[at + TEMP_MARK.len()..];
    (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then(|| OsString::from(&rest[..at]))
}

/// Delete the temporary files (any pid) left in `dir` for the file names in `targets` — what a killed writer of
/// those outputs leaves behind. Others' temporaries (names not in `targets`) are left alone, so concurrent shards
/// writing into one directory never delete each other's in-flight files. Returns how many were removed.
pub fn remove_stale_temps(dir: &Path, targets: &HashSet<OsString>) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if temp_target(&entry.file_name()).is_some_and(|t| targets.contains(&t)) {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// [`remove_stale_temps`] for every output in `outputs`, directory by directory.
pub fn remove_stale_temps_of(outputs: &[&Path]) -> Result<usize> {
    let mut by_dir: BTreeMap<&Path, HashSet<OsString>> = BTreeMap::new();
    for out in outputs {
        let dir = out.parent().unwrap_or(Path::new(""));
        by_dir
            .entry(dir)
            .or_default()
            .insert(out.file_name().unwrap_or_default().to_os_string());
    }
    let mut n = 0;
    for (dir, names) in &by_dir {
        n += remove_stale_temps(
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            },
            names,
        )?;
    }
    Ok(n)
}

/// `Ok` when files can be created in `dir` or, if it does not exist yet, in its nearest existing ancestor
/// (checked by creating and removing a probe file).
pub fn check_writable_dir(dir: &Path) -> Result<()> {
    let mut probe_dir = dir;
    while !probe_dir.exists() {
        probe_dir = match probe_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
    }
    if !probe_dir.is_dir() {
        return Err(Error::Invalid(format!("{}: not a directory", probe_dir.display())));
    }
    let probe = probe_dir.join(format!(".w2vbert-dry-run-probe.{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| Error::io(probe_dir, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Write `bytes` to `path` atomically (temp file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path)?;
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// The bytes of a NumPy `.npy` v1.0 file holding a little-endian f32 C-order array of `shape`.
pub fn npy_bytes(data: &[f32], shape: &[usize]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "npy_bytes: shape/data mismatch"
    );
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // magic(6) + version(2) + header_len(2) + header + '\n' must be a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Write an f32 array as `.npy`, atomically.
pub fn write_npy(path: &Path, data: &[f32], shape: &[usize]) -> Result<()> {
    write_atomic(path, &npy_bytes(data, shape))
}

/// Shape and data offset of an f32 `.npy` header at the start of `bytes` (which may stop after the header).
fn parse_npy_header(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, usize)> {
    let bad = |msg: &str| Error::format(path, format!("not an f32 .npy file: {msg}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing magic"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unsupported version")),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(bad("dtype must be <f4, C order"));
    }
    let open = header.find("'shape': (").ok_or_else(|| bad("no shape"))? + 10;
    let close = header[open..].find(')').ok_or_else(|| bad("no shape"))? + open;
    let shape = header[open..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("bad shape")))
        .collect::<Result<Vec<_>>>()?;
    // A shape whose byte count overflows would wrap the size checks below into agreeing with a short file.
    if shape.iter().try_fold(4usize, |a, &d| a.checked_mul(d)).is_none() {
        return Err(bad("shape overflows"));
    }
    Ok((shape, start + hlen))
}

/// Read an f32 `.npy` file written by [`write_npy`] or NumPy (little-endian `<f4`, C order).
pub fn read_npy(path: &Path) -> Result<(Vec<f32>, Vec<usize>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (shape, start) = parse_npy_header(&bytes, path)?;
    let n: usize = shape.iter().product();
    if bytes.len() - start != n * 4 {
        return Err(Error::format(
            path,
            "not an f32 .npy file: data length does not match shape",
        ));
    }
    let data = bytes[start..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((data, shape))
}

/// Is `path` a complete f32 `.npy` file? Reads the header only: valid magic, `<f4` C-order header, and a file
/// size of exactly header + 4·Πshape bytes. Returns the shape.
pub fn check_npy(path: &Path) -> Result<Vec<usize>> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = Vec::with_capacity(4096);
    Read::by_ref(&mut f)
        .take(65_536 + 12)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    let (shape, start) = parse_npy_header(&head, path)?;
    let want = start as u64 + 4 * shape.iter().map(|&d| d as u64).product::<u64>();
    if len != want {
        return Err(Error::format(
            path,
            format!("incomplete: {len} bytes, the header says {want}"),
        ));
    }
    Ok(shape)
}

/// Is `path` a complete `.safetensors` file of f32 tensors? Reads the header only: valid JSON, every tensor F32
/// with `data_offsets` matching its shape, the offsets tiling the data section, and a file size of exactly
/// 8 + header + data. Returns `(name, shape)` of every tensor, sorted by name.
pub fn check_safetensors(path: &Path) -> Result<Vec<(String, Vec<usize>)>> {
    let bad = |msg: String| Error::format(path, format!("not a complete safetensors file: {msg}"));
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut n8 = [0u8; 8];
    f.read_exact(&mut n8).map_err(|_| bad("shorter than 8 bytes".into()))?;
    let n = u64::from_le_bytes(n8);
    if n > 100_000_000 || 8 + n > len {
        return Err(bad(format!("header length {n} for a {len}-byte file")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header is not a JSON object: {e}")))?;
    let mut out = Vec::new();
    let mut spans = Vec::new();
    for (name, v) in &json {
        if name == "__metadata__" {
            continue;
        }
        let dtype = v.get("dtype").and_then(|d| d.as_str());
        if dtype != Some("F32") {
            return Err(bad(format!("{name}: dtype {dtype:?}, expected F32")));
        }
        let dims = |key: &str| -> Option<Vec<u64>> { v.get(key)?.as_array()?.iter().map(|x| x.as_u64()).collect() };
        let nbytes = |shape: &[u64]| shape.iter().try_fold(4u64, |a, &d| a.checked_mul(d));
        let shape = dims("shape").ok_or_else(|| bad(format!("{name}: no shape")))?;
        let off = dims("data_offsets").filter(|o| o.len() == 2 && o[0] <= o[1]);
        let off = off.ok_or_else(|| bad(format!("{name}: bad data_offsets")))?;
        if Some(off[1] - off[0]) != nbytes(&shape) {
            return Err(bad(format!(
                "{name}: data_offsets {off:?} do not match shape {shape:?}"
            )));
        }
        spans.push((off[0], off[1]));
        out.push((name.clone(), shape.iter().map(|&d| d as usize).collect()));
    }
    spans.sort();
    let mut end = 0;
    for (a, b) in spans {
        if a != end {
            return Err(bad("tensor data has gaps or overlaps".into()));
        }
        end = b;
    }
    if (end as u128) + 8 + n as u128 != len as u128 {
        return Err(bad(format!("incomplete: {len} bytes, the header says {}", 8 + n + end)));
    }
    out.sort();
    Ok(out)
}

/// Write several named f32 arrays as one `.safetensors` file, atomically. Names are kept in the order given.
pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, &[f32])]) -> Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::tensor(path, name, format!("cannot serialize: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let out = safetensors::tensor::serialize(views, &None)
        .map_err(|e| Error::format(path, format!("cannot serialize safetensors: {e}")))?;
    write_atomic(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_roundtrip_and_header_alignment() {
        let dir = tempfile::tempdir().unwrap();
        for shape in [vec![3usize, 5], vec![7], vec![2, 0]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let p = dir.path().join("a.npy");
            write_npy(&p, &data, &shape).unwrap();
            let raw = std::fs::read(&p).unwrap();
            let hlen = u16::from_le_bytes([raw[8], raw[9]]) as usize;
            assert_eq!((10 + hlen) % 64, 0);
            let (back, s) = read_npy(&p).unwrap();
            assert_eq!(s, shape);
            assert_eq!(back, data);
        }
    }

    #[test]
    fn validators_accept_complete_files_and_reject_truncated_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let data: Vec<f32> = (0..30).map(|i| i as f32).collect();
        write_npy(&p, &data, &[10, 3]).unwrap();
        assert_eq!(check_npy(&p).unwrap(), vec![10, 3]);
        let full = std::fs::read(&p).unwrap();
        for cut in [0, 5, 64, full.len() - 1] {
            std::fs::write(&p, &full[..cut]).unwrap();
            assert!(check_npy(&p).is_err(), "npy cut at {cut} accepted");
        }
        let mut longer = full.clone();
        longer.push(0);
        std::fs::write(&p, &longer).unwrap();
        assert!(check_npy(&p).is_err());

        let s = dir.path().join("b.safetensors");
        let mask = [1.0f32, 0.0];
        write_safetensors(
            &s,
            &[
                ("x".into(), vec![2, 3], &data[..6]),
                ("mask".into(), vec![2], &mask[..]),
            ],
        )
        .unwrap();
        assert_eq!(
            check_safetensors(&s).unwrap(),
            vec![("mask".into(), vec![2]), ("x".into(), vec![2, 3])]
        );
        let full = std::fs::read(&s).unwrap();
        for cut in [0, 7, 8, 20, full.len() - 1] {
            std::fs::write(&s, &full[..cut]).unwrap();
            assert!(check_safetensors(&s).is_err(), "safetensors cut at {cut} accepted");
        }
    }

    #[test]
    fn temp_names_round_trip_and_stale_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let t = temp_path(&dir.path().join("x.npy")).unwrap();
        assert_eq!(temp_target(t.file_name().unwrap()), Some(OsString::from("x.npy")));
        assert_eq!(temp_target(OsStr::new("x.npy")), None);
        assert_eq!(temp_target(OsStr::new(".x.npy.w2vbert-tmp.")), None);
        for n in [".x.npy.w2vbert-tmp.123", ".y.npy.w2vbert-tmp.9", "x.npy"] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let targets: HashSet<OsString> = [OsString::from("x.npy")].into();
        assert_eq!(remove_stale_temps(dir.path(), &targets).unwrap(), 1);
        assert!(
            dir.path().join(".y.npy.w2vbert-tmp.9").exists(),
            "another shard's temp was removed"
        );
        assert!(dir.path().join("x.npy").exists());
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("x.npy");
        assert!(write_npy(&p, &[1.0], &[1]).is_err());
        assert!(!p.exists());
    }
}
