//! `Weights`: zero-copy f32, exact f16/bf16 widening, errors naming file + tensor, and every malformed file
//! an `Err` (never a panic). Valid files are written by the safetensors crate; broken ones are made from
//! them byte-wise or from hand-written headers.

use proptest::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::path::{Path, PathBuf};
use w2vbert::weights::Weights;
use w2vbert::Error;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `tensors` with the safetensors crate's own writer.
fn write_st(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, &None, path).unwrap();
}

/// A file from a hand-written header (padded with spaces to 8 bytes, as the writers do) and raw data.
fn craft(header: impl AsRef<[u8]>, data: &[u8]) -> Vec<u8> {
    let mut h = header.as_ref().to_vec();
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

struct Dir(tempfile::TempDir);
impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

fn sample_values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.37 - 2.0).sin() * 10.0f32.powi(i as i32 % 7 - 3))
        .collect()
}

/// A small valid file: f32 matrix and vector, an f16 vector, a bf16 scalar-ish tensor, an i64 tensor.
fn valid_file(dir: &Dir) -> PathBuf {
    let p = dir.path("valid.safetensors");
    let h16: Vec<u8> = [1.5f32, -2.0, 0.25]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let b16: Vec<u8> = [3.0f32]
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    write_st(
        &p,
        &[
            ("enc.w", Dtype::F32, vec![3, 4], f32_bytes(&sample_values(12))),
            ("enc.b", Dtype::F32, vec![4], f32_bytes(&sample_values(4))),
            ("half", Dtype::F16, vec![3], h16),
            ("brain", Dtype::BF16, vec![1], b16),
            ("ids", Dtype::I64, vec![2], vec![7u8; 16]),
        ],
    );
    p
}

fn err_text(r: w2vbert::Result<impl std::fmt::Debug>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn f32_is_mapped_zero_copy_and_equal() {
    let dir = Dir::new();
    let p = valid_file(&dir);
    let w = Weights::open(&p).unwrap();
    assert_eq!(w.path(), p.as_path());
    assert_eq!(w.names(), vec!["brain", "enc.b", "enc.w", "half", "ids"]);
    assert!(w.contains("enc.w") && !w.contains("enc"));
    assert_eq!(w.shape("enc.w"), Some(&[3usize, 4][..]));
    assert_eq!(w.dtype("half"), Some(Dtype::F16));
    assert_eq!(w.storage_dtype(), Some(Dtype::F32));

    let t = w.get("enc.w", &[3, 4]).unwrap();
    assert!(t.is_mapped());
    let range = w.mapping_range();
    let ptr = t.data().as_ptr() as usize;
    assert!(
        range.contains(&ptr) && ptr + 12 * 4 <= range.end,
        "data must point into the mapping"
    );
    assert_eq!(t.data(), sample_values(12).as_slice());
    assert_eq!(t.shape(), &[3, 4]);

    let b = w.get_any_shape("enc.b").unwrap();
    assert!(b.is_mapped());
    assert_eq!(b.data(), sample_values(4).as_slice());
    // The view outlives the Weights that made it (the Arc keeps the mapping).
    drop(w);
    assert_eq!(t.data(), sample_values(12).as_slice());
}

#[test]
fn misaligned_f32_is_copied_and_equal() {
    let dir = Dir::new();
    let vals = sample_values(6);
    let mut data = vec![0xAB];
    data.extend(f32_bytes(&vals));
    let header = r#"{"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"F32","shape":[2,3],"data_offsets":[1,25]}}"#;
    let p = dir.file("odd.safetensors", &craft(header, &data));
    let w = Weights::open(&p).unwrap();
    let t = w.get("x", &[2, 3]).unwrap();
    assert!(!t.is_mapped(), "a misaligned f32 tensor must be copied");
    assert!(!w.mapping_range().contains(&(t.data().as_ptr() as usize)));
    assert_eq!(t.data(), vals.as_slice());
}

/// f16 value of bit pattern `b`, computed from the IEEE definition in f64 (independent of `half`).
fn f16_by_definition(b: u16) -> f64 {
    let sign = if b & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((b >> 10) & 0x1f) as i32;
    let man = (b & 0x3ff) as f64;
    match exp {
        0 => sign * man / 1024.0 * 2f64.powi(-14),
        31 if man == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        _ => sign * (1.0 + man / 1024.0) * 2f64.powi(exp - 15),
    }
}

fn bf16_by_definition(b: u16) -> f64 {
    let sign = if b & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((b >> 7) & 0xff) as i32;
    let man = (b & 0x7f) as f64;
    match exp {
        0 => sign * man / 128.0 * 2f64.powi(-126),
        255 if man == 0.0 => sign * f64::INFINITY,
        255 => f64::NAN,
        _ => sign * (1.0 + man / 128.0) * 2f64.powi(exp - 127),
    }
}

/// Every one of the 65536 bit patterns, for both half types (NaNs must stay NaN).
#[test]
fn f16_and_bf16_widen_exactly() {
    let dir = Dir::new();
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let bytes: Vec<u8> = all.iter().flat_map(|b| b.to_le_bytes()).collect();
    let p = dir.path("half.safetensors");
    write_st(
        &p,
        &[
            ("h", Dtype::F16, vec![256, 256], bytes.clone()),
            ("b", Dtype::BF16, vec![65536], bytes),
        ],
    );
    let w = Weights::open(&p).unwrap();
    let h = w.get("h", &[256, 256]).unwrap();
    let b = w.get("b", &[65536]).unwrap();
    // f16 is widened at load; bf16 stays a view of the mapping (widened on first data()), readable as is.
    assert!(!h.is_mapped() && b.is_mapped());
    assert!(h.raw_bf16().is_none());
    assert_eq!(b.raw_bf16().expect("bf16 view"), &all[..]);
    for (i, &bits) in all.iter().enumerate() {
        for (got, want) in [
            (h.data()[i], f16_by_definition(bits)),
            (b.data()[i], bf16_by_definition(bits)),
        ] {
            if want.is_nan() {
                assert!(got.is_nan(), "bits {bits:#06x}: {got} should be NaN");
            } else {
                // Both widen exactly, so equality must hold in f64, sign of zero included.
                assert_eq!(got as f64, want, "bits {bits:#06x}");
                assert_eq!(got.is_sign_negative(), want.is_sign_negative(), "bits {bits:#06x}");
            }
        }
    }
    // The widened tensors' mapped pages are released after widening (weights.rs `release`): loading them again
    // re-reads the same bytes from the file, bit for bit.
    let again = (w.get("h", &[256, 256]).unwrap(), w.get("b", &[65536]).unwrap());
    let bits = |t: &w2vbert::tensor::Tensor| t.data().iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    assert!(bits(&again.0) == bits(&h) && bits(&again.1) == bits(&b));
    // Also through the small valid file.
    let w = Weights::open(&valid_file(&dir)).unwrap();
    assert_eq!(w.get("half", &[3]).unwrap().data(), &[1.5, -2.0, 0.25]);
    assert_eq!(w.get("brain", &[1]).unwrap().data(), &[3.0]);
}

#[test]
fn tensor_errors_name_tensor_and_file() {
    let dir = Dir::new();
    let p = valid_file(&dir);
    let w = Weights::open(&p).unwrap();
    let file = p.display().to_string();

    let e = err_text(w.get("enc.w", &[4, 3]));
    assert!(
        e.contains(&file) && e.contains("enc.w") && e.contains("[4, 3]") && e.contains("[3, 4]"),
        "{e}"
    );

    let e = err_text(w.get("enc.wx", &[3, 4]));
    assert!(
        e.contains(&file) && e.contains("enc.wx") && e.contains("not found"),
        "{e}"
    );
    assert!(
        e.contains("enc.w,") || e.contains("enc.w\n") || e.ends_with("enc.w") || e.contains("enc.w "),
        "{e}"
    );

    let e = err_text(w.get("ids", &[2]));
    assert!(e.contains(&file) && e.contains("ids") && e.contains("I64"), "{e}");
    assert!(matches!(w.get_any_shape("ids"), Err(Error::Tensor { .. })));

    let e = err_text(Weights::open(&dir.path("absent.safetensors")));
    assert!(e.contains("absent.safetensors"), "{e}");
    // A directory opens as a file on Linux but cannot be mapped or is too short: still an error.
    assert!(Weights::open(dir.0.path()).is_err());
}

#[test]
fn empty_and_zero_sized_tensors() {
    let dir = Dir::new();
    let p = dir.path("empty.safetensors");
    write_st(&p, &[]);
    let w = Weights::open(&p).unwrap();
    assert!(w.is_empty() && w.storage_dtype().is_none());

    let p = dir.path("zero.safetensors");
    write_st(
        &p,
        &[
            ("z", Dtype::F32, vec![0, 5], vec![]),
            ("a", Dtype::F32, vec![2], f32_bytes(&[1.0, 2.0])),
        ],
    );
    let w = Weights::open(&p).unwrap();
    assert!(w.get("z", &[0, 5]).unwrap().is_empty());
    assert_eq!(w.get("a", &[2]).unwrap().data(), &[1.0, 2.0]);
}

/// One corrupt file per rule; each must be an error that names the file.
#[test]
fn corrupt_files_are_errors() {
    let dir = Dir::new();
    let valid = std::fs::read(valid_file(&dir)).unwrap();
    let d8 = vec![0u8; 8];
    let one = |dtype: &str, shape: &str, offs: &str| {
        format!(r#"{{"t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offs}}}}}"#)
    };
    let mut huge_len = valid.clone();
    huge_len[..8].copy_from_slice(&200_000_000u64.to_le_bytes());
    let mut max_len = valid.clone();
    max_len[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut past_end = valid.clone();
    past_end[..8].copy_from_slice(&(valid.len() as u64).to_le_bytes());

    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("empty file", "shorter than the 8-byte", vec![]),
        ("7 bytes", "shorter than the 8-byte", vec![1, 0, 0, 0, 0, 0, 0]),
        ("header length absurd", "absurd", huge_len),
        ("header length u64::MAX", "absurd", max_len),
        ("header length past end", "runs past the end", past_end),
        ("truncated", "truncated", valid[..valid.len() - 3].to_vec()),
        ("trailing bytes", "trailing bytes", [valid.clone(), vec![0; 4]].concat()),
        ("header not utf-8", "not UTF-8", craft(b"{\"t\xff\":1}", &[])),
        ("header not JSON", "not a JSON object", craft("{not json", &[])),
        ("header a JSON array", "not a JSON object", craft("[]", &[])),
        ("entry not an object", "`t`: bad header entry", craft(r#"{"t":5}"#, &[])),
        (
            "entry missing dtype",
            "missing field `dtype`",
            craft(r#"{"t":{"shape":[2],"data_offsets":[0,8]}}"#, &d8),
        ),
        (
            "unknown dtype",
            "unknown dtype `F99`",
            craft(one("F99", "[2]", "[0,8]"), &d8),
        ),
        (
            "negative dim",
            "`t`: bad header entry",
            craft(one("F32", "[-2]", "[0,8]"), &d8),
        ),
        (
            "three offsets",
            "`t`: bad header entry",
            craft(one("F32", "[2]", "[0,4,8]"), &d8),
        ),
        (
            "offsets reversed",
            "end before they start",
            craft(one("F32", "[2]", "[8,0]"), &d8),
        ),
        ("offsets past end", "truncated", craft(one("F32", "[4]", "[0,16]"), &d8)),
        (
            "shape vs range",
            "is 12 bytes but",
            craft(one("F32", "[3]", "[0,8]"), &d8),
        ),
        (
            "shape overflow",
            "overflows",
            craft(one("F32", "[4611686018427387904,4611686018427387904]", "[0,8]"), &d8),
        ),
        (
            "size overflow",
            "overflows",
            craft(one("F64", "[4611686018427387904]", "[0,8]"), &d8),
        ),
        (
            "huge range, tiny file",
            "past the end",
            craft(one("U8", "[18446744073709551615]", "[0,18446744073709551615]"), &d8),
        ),
        (
            "does not start at 0",
            "unused bytes",
            craft(one("F32", "[1]", "[4,8]"), &d8),
        ),
        (
            "overlap",
            "overlaps tensor `a`",
            craft(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &d8,
            ),
        ),
        (
            "hole",
            "`b`: 2 unused bytes",
            craft(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}}"#,
                &d8,
            ),
        ),
        (
            "duplicate name",
            "appears twice",
            craft(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &d8,
            ),
        ),
        (
            "metadata not strings",
            "`__metadata__`",
            craft(
                r#"{"__metadata__":{"format":1},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &d8,
            ),
        ),
    ];
    for (what, expect, bytes) in cases {
        let p = dir.file("bad.safetensors", &bytes);
        match Weights::open(&p) {
            Ok(w) => panic!("{what}: opened {w:?}"),
            Err(e) => {
                let s = e.to_string();
                eprintln!("{what}: {s}");
                assert!(
                    s.contains("bad.safetensors"),
                    "{what}: error does not name the file: {s}"
                );
                assert!(s.contains(expect), "{what}: expected `{expect}` in: {s}");
            }
        }
    }
}

#[test]
fn metadata_is_exposed() {
    let dir = Dir::new();
    let header = r#"{"__metadata__":{"format":"pt"},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let p = dir.file("meta.safetensors", &craft(header, &f32_bytes(&[1.0, -1.0])));
    let w = Weights::open(&p).unwrap();
    assert_eq!(
        w.metadata().and_then(|m| m.get("format")).map(String::as_str),
        Some("pt")
    );
    assert_eq!(w.names(), vec!["t"]);
    assert_eq!(w.get("t", &[2]).unwrap().data(), &[1.0, -1.0]);
}

/// Opens `bytes` and loads every tensor; must return, never panic.
fn open_and_load_all(path: &Path) {
    if let Ok(w) = Weights::open(path) {
        for name in w.names() {
            let _ = w
                .get_any_shape(name)
                .map(|t| t.data().iter().map(|x| x.to_bits() as u64).sum::<u64>());
        }
    }
}

proptest! {
    // No persistence file: a failure found here gets pinned as a named case in `corrupt_files_are_errors`.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_corruption_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = Dir::new();
        let mut bytes = std::fs::read(valid_file(&dir)).unwrap();
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        if let Some(c) = cut {
            let n = c.index(bytes.len() + 1);
            bytes.truncate(n);
        }
        let p = dir.file("fuzz.safetensors", &bytes);
        open_and_load_all(&p);
    }

    /// Corruption aimed at the header text (digits and brackets), where the interesting parse paths are.
    #[test]
    fn header_corruption_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), prop::sample::select(
            b"0123456789[]{},:\"- eE.".to_vec())), 1..4),
    ) {
        let dir = Dir::new();
        let mut bytes = std::fs::read(valid_file(&dir)).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (at, v) in edits {
            let i = 8 + at.index(n);
            bytes[i] = v;
        }
        let p = dir.file("fuzz.safetensors", &bytes);
        open_and_load_all(&p);
    }
}

/// Timing on a real-size checkpoint (not run by default): `W2VBERT_BIG_ST=/path/model.safetensors
/// cargo test --release --test weights big_checkpoint_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn big_checkpoint_timing() {
    let Ok(path) = std::env::var("W2VBERT_BIG_ST") else {
        eprintln!("set W2VBERT_BIG_ST to a .safetensors file");
        return;
    };
    let t0 = std::time::Instant::now();
    let w = Weights::open(Path::new(&path)).unwrap();
    let t_open = t0.elapsed();
    let t1 = std::time::Instant::now();
    let tensors: Vec<_> = w.names().into_iter().map(|n| w.get_any_shape(n).unwrap()).collect();
    let t_get = t1.elapsed();
    let t2 = std::time::Instant::now();
    // Touch one value per 4 KiB page: the page-fault cost of first use of mapped tensors.
    let sum: f64 = tensors
        .iter()
        .map(|t| t.data().iter().step_by(1024).map(|&x| x as f64).sum::<f64>())
        .sum();
    let t_touch = t2.elapsed();
    let values: usize = tensors.iter().map(|t| t.len()).sum();
    let mapped = tensors.iter().filter(|t| t.is_mapped()).count();
    eprintln!(
        "{path}: {} tensors ({mapped} mapped), {values} values, dtype {:?}: open {t_open:?}, get all {t_get:?}, \
         touch every page {t_touch:?} (sum {sum:.3})",
        tensors.len(),
        w.storage_dtype()
    );
}

/// Widening throughput (not run by default): `W2VBERT_BIG_ST=/path/one_big_f16_tensor.safetensors
/// cargo test --release --test weights widen_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn widen_timing() {
    let Ok(path) = std::env::var("W2VBERT_BIG_ST") else {
        return;
    };
    let w = Weights::open(Path::new(&path)).unwrap();
    let widened = |n: &&str| matches!(w.dtype(n), Some(Dtype::F32 | Dtype::F16 | Dtype::BF16));
    for name in w.names().into_iter().filter(widened) {
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            let t = w.get_any_shape(name).unwrap();
            let mut v = t.into_vec();
            let dt = t0.elapsed();
            v[0] += 1.0;
            eprintln!(
                "{name} {:?}: {:.2} ns/value ({dt:?})",
                w.dtype(name),
                dt.as_nanos() as f64 / v.len() as f64
            );
        }
    }
}
