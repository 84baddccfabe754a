//! `SemanticStats`: bit parity with PyTorch on a converted stats file, the `std` form, half-precision
//! storage, and every malformed stats file an error naming the file and the tensor.
//!
//! Fixtures (written by `scripts/stats_pt_to_safetensors.py --selftest tests/fixtures/io`, torch 2.7.1):
//! `stats_1024.safetensors` = a torch.save'd `{mean, var}` dict converted by the script;
//! `stats_parity.safetensors` = `h` [4, 1024], `std_torch` = `torch.sqrt(var)` [1024] and torch's
//! `semantic = (h - mean) / std_torch` [4, 1024].

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::path::{Path, PathBuf};
use w2vbert::stats::SemanticStats;
use w2vbert::weights::Weights;
use w2vbert::Error;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/io")
        .join(name)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes f32 tensors `(name, shape, values)` to `dir/file`.
type F32Tensor = (&'static str, Vec<usize>, Vec<f32>);

fn write_f32(dir: &Path, file: &str, tensors: &[F32Tensor]) -> PathBuf {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| f32_bytes(v)).collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| (n.to_string(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    let p = dir.join(file);
    safetensors::serialize_to_file(views, &None, &p).unwrap();
    p
}

/// Sub-then-divide is bit-exact with PyTorch given PyTorch's std. (torch.sqrt on CPU is not correctly
/// rounded, up to ~0.75 ulp; we take the IEEE sqrt, as CUDA and numpy do, and check it is within 1 ulp.)
#[test]
fn matches_pytorch_bit_for_bit() {
    let stats = SemanticStats::load(&fixture("stats_1024.safetensors"), 1024).unwrap();
    assert_eq!(stats.dim(), 1024);
    let parity = Weights::open(&fixture("stats_parity.safetensors")).unwrap();
    let h0 = parity.get("h", &[4, 1024]).unwrap().into_vec();
    let std_torch = parity.get("std_torch", &[1024]).unwrap().into_vec();
    let want = parity.get("semantic", &[4, 1024]).unwrap().into_vec();
    let bits_differ = |a: &[f32], b: &[f32]| a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();

    // Our sqrt(var): correctly rounded, so within 1 ulp of torch's, and not identical (else this
    // fixture would not exercise the difference).
    let ulps: Vec<i32> = stats
        .std()
        .iter()
        .zip(&std_torch)
        .map(|(a, b)| a.to_bits() as i32 - b.to_bits() as i32)
        .collect();
    assert!(ulps.iter().all(|d| d.abs() <= 1), "std more than 1 ulp from torch.sqrt");
    assert!(ulps.iter().any(|&d| d != 0));
    for (i, (&s, &v)) in stats
        .std()
        .iter()
        .zip(
            &Weights::open(&fixture("stats_1024.safetensors"))
                .unwrap()
                .get("var", &[1024])
                .unwrap()
                .into_vec(),
        )
        .enumerate()
    {
        assert_eq!(
            s,
            (v as f64).sqrt() as f32,
            "std[{i}] is not the correctly rounded sqrt"
        );
    }

    // With torch's std, the normalization itself is bit-exact.
    let exact = SemanticStats::from_mean_std(stats.mean().to_vec(), std_torch.clone(), Path::new("t")).unwrap();
    let mut h = h0.clone();
    exact.normalize_inplace(&mut h);
    let diffs = bits_differ(&h, &want);
    assert_eq!(diffs, 0, "{diffs} of {} values differ from PyTorch", h.len());
    // Row 3 of h equals the mean, so it normalizes to exactly 0.
    assert!(h[3 * 1024..].iter().all(|&x| x == 0.0));

    // The fixture can tell the right formula from a near miss: multiplying by a precomputed 1/std
    // rounds differently on a good share of the values.
    let recip: Vec<f32> = h0
        .chunks_exact(1024)
        .flat_map(|row| {
            let (m, s) = (stats.mean(), &std_torch);
            row.iter().enumerate().map(move |(c, &x)| (x - m[c]) * (1.0 / s[c]))
        })
        .collect();
    let recip_diffs = bits_differ(&recip, &want);
    assert!(recip_diffs > 100, "fixture too weak: only {recip_diffs} values differ");

    // From the var file as shipped: the 1-ulp std difference moves results by at most ~1e-7 relative.
    let mut h = h0;
    stats.normalize_inplace(&mut h);
    for (i, (&a, &b)) in h.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 2.5e-7 * b.abs(), "[{i}]: {a} vs torch {b}");
    }
    eprintln!(
        "var path: {} of {} values differ from torch CPU (by <= 2.5e-7 rel)",
        bits_differ(&h, &want),
        h.len()
    );
}

#[test]
fn var_gives_sqrt_and_std_is_used_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let mean = vec![1.0, -2.0, 0.5];
    let var = vec![4.0, 0.25, 2.0];
    let p = write_f32(
        dir.path(),
        "v.safetensors",
        &[("mean", vec![3], mean.clone()), ("var", vec![3], var)],
    );
    let s = SemanticStats::load(&p, 3).unwrap();
    assert_eq!(s.mean(), &mean[..]);
    assert_eq!(s.std(), &[2.0, 0.5, std::f32::consts::SQRT_2]);

    let std = vec![3.0, 0.1, 7.0];
    let p = write_f32(
        dir.path(),
        "s.safetensors",
        &[("mean", vec![3], mean.clone()), ("std", vec![3], std.clone())],
    );
    let s = SemanticStats::load(&p, 3).unwrap();
    assert_eq!(s.std(), &std[..]);

    // Broadcast over rows: element [r, c] uses channel c, checked element by element.
    let mut h: Vec<f32> = (0..12).map(|i| i as f32 * 1.25 - 4.0).collect();
    let h0 = h.clone();
    s.normalize_inplace(&mut h);
    for r in 0..4 {
        for c in 0..3 {
            assert_eq!(h[r * 3 + c], (h0[r * 3 + c] - mean[c]) / std[c], "[{r}, {c}]");
        }
    }
    // Zero rows is fine.
    s.normalize_inplace(&mut []);
}

#[test]
fn half_precision_stats_are_widened() {
    let dir = tempfile::tempdir().unwrap();
    let mean: Vec<u8> = [0.5f32, -1.0]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let var: Vec<u8> = [4.0f32, 9.0]
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let p = dir.path().join("h.safetensors");
    safetensors::serialize_to_file(
        [
            ("mean", TensorView::new(Dtype::F16, vec![2], &mean).unwrap()),
            ("var", TensorView::new(Dtype::BF16, vec![2], &var).unwrap()),
        ],
        &None,
        &p,
    )
    .unwrap();
    let s = SemanticStats::load(&p, 2).unwrap();
    assert_eq!(s.mean(), &[0.5, -1.0]);
    assert_eq!(s.std(), &[2.0, 3.0]);
}

#[test]
fn bad_stats_are_errors_naming_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let ok = vec![1.0f32, 2.0, 3.0];
    let s3 = || vec![3usize];
    // (what, tensors in the file, tensor the error must name, text it must contain)
    let cases: Vec<(&str, Vec<F32Tensor>, &str, &str)> = vec![
        ("no mean", vec![("var", s3(), ok.clone())], "mean", "missing"),
        ("no var or std", vec![("mean", s3(), ok.clone())], "var", "neither"),
        (
            "both var and std",
            vec![
                ("mean", s3(), ok.clone()),
                ("var", s3(), ok.clone()),
                ("std", s3(), ok.clone()),
            ],
            "std",
            "ambiguous",
        ),
        (
            "mean wrong size",
            vec![("mean", vec![4], vec![0.0; 4]), ("var", s3(), ok.clone())],
            "mean",
            "[3]",
        ),
        (
            "var wrong rank",
            vec![("mean", s3(), ok.clone()), ("var", vec![1, 3], ok.clone())],
            "var",
            "[1, 3]",
        ),
        (
            "negative var",
            vec![("mean", s3(), ok.clone()), ("var", s3(), vec![1.0, -1e-3, 1.0])],
            "var",
            "negative",
        ),
        (
            "zero var",
            vec![("mean", s3(), ok.clone()), ("var", s3(), vec![1.0, 1.0, 0.0])],
            "var",
            "zero",
        ),
        (
            "negative zero var",
            vec![("mean", s3(), ok.clone()), ("var", s3(), vec![-0.0, 1.0, 1.0])],
            "var",
            "zero",
        ),
        (
            "zero std",
            vec![("mean", s3(), ok.clone()), ("std", s3(), vec![1.0, 0.0, 1.0])],
            "std",
            "zero",
        ),
        (
            "negative std",
            vec![("mean", s3(), ok.clone()), ("std", s3(), vec![-1.0, 1.0, 1.0])],
            "std",
            "negative",
        ),
        (
            "nan mean",
            vec![("mean", s3(), vec![1.0, f32::NAN, 1.0]), ("var", s3(), ok.clone())],
            "mean",
            "non-finite",
        ),
        (
            "inf var",
            vec![("mean", s3(), ok.clone()), ("var", s3(), vec![f32::INFINITY, 1.0, 1.0])],
            "var",
            "non-finite",
        ),
        (
            "nan std",
            vec![("mean", s3(), ok.clone()), ("std", s3(), vec![1.0, 1.0, f32::NAN])],
            "std",
            "non-finite",
        ),
    ];
    for (what, tensors, tensor, needle) in cases {
        let p = write_f32(dir.path(), "bad_stats.safetensors", &tensors);
        match SemanticStats::load(&p, 3) {
            Ok(s) => panic!("{what}: loaded {s:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(matches!(e, Error::Tensor { .. }), "{what}: {msg}");
                assert!(msg.contains("bad_stats.safetensors"), "{what}: {msg}");
                assert!(msg.contains(&format!("`{tensor}`")), "{what}: {msg}");
                assert!(msg.contains(needle), "{what}: expected `{needle}` in: {msg}");
            }
        }
    }

    // Unsupported dtype for mean: the Weights error, naming the tensor.
    let p = dir.path().join("i64.safetensors");
    let b = vec![0u8; 24];
    let v = f32_bytes(&ok);
    safetensors::serialize_to_file(
        [
            ("mean", TensorView::new(Dtype::I64, vec![3], &b).unwrap()),
            ("var", TensorView::new(Dtype::F32, vec![3], &v).unwrap()),
        ],
        &None,
        &p,
    )
    .unwrap();
    let msg = SemanticStats::load(&p, 3).unwrap_err().to_string();
    assert!(
        msg.contains("`mean`") && msg.contains("I64") && msg.contains("i64.safetensors"),
        "{msg}"
    );

    // Not a safetensors file at all, a missing file, dim 0.
    let p = dir.path().join("junk.safetensors");
    std::fs::write(&p, b"PK\x03\x04 this is a zip, not safetensors").unwrap();
    assert!(matches!(SemanticStats::load(&p, 3), Err(Error::Format { .. })));
    assert!(matches!(
        SemanticStats::load(&dir.path().join("nope.safetensors"), 3),
        Err(Error::Io { .. })
    ));
    assert!(SemanticStats::load(&fixture("stats_1024.safetensors"), 0).is_err());
    // The real-size file asked for the wrong dim.
    let msg = SemanticStats::load(&fixture("stats_1024.safetensors"), 768)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("[768]") && msg.contains("[1024]"), "{msg}");
}

#[test]
fn constructors_check_lengths() {
    let p = Path::new("origin");
    assert!(SemanticStats::from_mean_var(vec![0.0; 3], vec![1.0; 2], p).is_err());
    assert!(SemanticStats::from_mean_std(vec![], vec![], p).is_err());
    let s = SemanticStats::from_mean_var(vec![0.0; 2], vec![1.0, 16.0], p).unwrap();
    assert_eq!(s.std(), &[1.0, 4.0]);
}

#[test]
#[should_panic(expected = "not rows of 3")]
fn normalize_rejects_ragged_input() {
    let s = SemanticStats::from_mean_std(vec![0.0; 3], vec![1.0; 3], Path::new("x")).unwrap();
    s.normalize_inplace(&mut [0.0; 4]);
}
