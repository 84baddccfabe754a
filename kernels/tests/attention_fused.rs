//! Fused relative-key attention (channel-major, as the encoder runs it) = the naive `[T, T]` reference; the
//! reference = a hand-derived formula; output identical for any rayon thread count.

mod common;

use proptest::prelude::*;
use w2vbert_kernels::attention::{
    relative_attention_cm, relative_attention_cm_naive, AttnBlocks, RelPosAttention, DEFAULT_BLOCKS,
};

/// splitmix64 + Box–Muller: standard normal values from a seed (no dependency, reproducible).
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
    fn normals(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }
}

#[derive(Clone, Copy, Debug)]
enum Mask {
    None,
    Random,
    /// The last `n` keys are padding.
    Trailing(usize),
    /// Only key `j` is valid.
    OnlyOne(usize),
    All,
}

fn make_mask(kind: Mask, t: usize, rng: &mut Rng) -> Option<Vec<bool>> {
    match kind {
        Mask::None => None,
        Mask::Random => Some((0..t).map(|_| rng.uniform() < 0.7).collect()),
        Mask::Trailing(n) => Some((0..t).map(|j| j + n.min(t) < t).collect()),
        Mask::OnlyOne(j) => Some((0..t).map(|x| x == j.min(t - 1)).collect()),
        Mask::All => Some(vec![false; t]),
    }
}

/// One problem: q/k/v drawn as a fused `[t, 3d]` buffer (row stride 3d + 1) that starts at offset `off`, run
/// channel-major (see [`Problem::qkv_cm`]).
struct Problem {
    cfg: RelPosAttention,
    t: usize,
    off: usize,
    qkv: Vec<f32>, // [off + t*ldx]
    ldx: usize,
    emb: Vec<f32>, // [L+R+1, dh], std 1 so the bias matters as much as q·k
    mask: Option<Vec<bool>>,
}

impl Problem {
    fn new(cfg: RelPosAttention, t: usize, mask: Mask, seed: u64, off: usize) -> Self {
        let mut rng = Rng(seed);
        let ldx = 3 * cfg.width() + 1;
        let qkv = rng.normals(off + t * ldx);
        let emb = rng.normals(cfg.n_buckets() * cfg.head_dim);
        let mask = make_mask(mask, t, &mut rng);
        Problem {
            cfg,
            t,
            off,
            qkv,
            ldx,
            emb,
            mask,
        }
    }

    /// The channel-major view of the problem: q/k/v in a fused `[3d, t + 1]` buffer (row stride t + 1, so rows
    /// are unaligned) starting at offset `off` (outputs: `[d, t + 3]` at offset `off`, [`Problem::run_cm`]).
    fn qkv_cm(&self) -> (Vec<f32>, usize) {
        let (d3, ld) = (3 * self.cfg.width(), self.t + 1);
        let mut b = vec![0.0; self.off + d3 * ld];
        for i in 0..self.t {
            for c in 0..d3 {
                b[self.off + c * ld + i] = self.qkv[self.off + i * self.ldx + c];
            }
        }
        (b, ld)
    }

    /// Runs `f` (fused or naive) on the channel-major q/k/v (each with row stride `ld`) into a channel-major
    /// sentinel-filled output (row stride `ldo`); checks nothing outside it was written; returns the result as
    /// compact `[t, d]`.
    fn run_cm(&self, f: impl Fn(&mut [f32], usize, &[f32], &[f32], &[f32], usize)) -> Vec<f32> {
        let (d, t) = (self.cfg.width(), self.t);
        let (buf, ld) = self.qkv_cm();
        let ldo = t + 3;
        let mut out = vec![f32::NAN; self.off + d * ldo];
        let x = &buf[self.off..];
        f(&mut out[self.off..], ldo, x, &x[d * ld..], &x[2 * d * ld..], ld);
        for (idx, &o) in out.iter().enumerate() {
            let inside = idx >= self.off && (idx - self.off) % ldo < t;
            assert_eq!(inside, !o.is_nan(), "cm out[{idx}] = {o} (inside = {inside})");
        }
        (0..t * d).map(|e| out[self.off + (e % d) * ldo + e / d]).collect()
    }

    fn fused(&self, blocks: AttnBlocks) -> Vec<f32> {
        let m = self.mask.as_deref();
        self.run_cm(|out, ldo, q, k, v, ld| {
            relative_attention_cm(&self.cfg, blocks, out, ldo, q, ld, k, ld, v, ld, &self.emb, m, self.t)
        })
    }

    fn naive(&self) -> Vec<f32> {
        let m = self.mask.as_deref();
        self.run_cm(|out, ldo, q, k, v, ld| {
            relative_attention_cm_naive(&self.cfg, out, ldo, q, ld, k, ld, v, ld, &self.emb, m, self.t)
        })
    }
}

/// Relative-or-absolute closeness: |a - b| ≤ 1e-5 · max(1, |b|) everywhere (NaN sentinels must agree).
fn assert_close(fused: &[f32], naive: &[f32], what: &str) {
    assert_eq!(fused.len(), naive.len());
    for (i, (&a, &b)) in fused.iter().zip(naive).enumerate() {
        if a.is_nan() || b.is_nan() {
            assert!(a.is_nan() && b.is_nan(), "{what}: [{i}] fused {a} naive {b}");
            continue;
        }
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{what}: [{i}] fused {a} naive {b}"
        );
    }
}

fn cfg(n_heads: usize, head_dim: usize, left_max: usize, right_max: usize) -> RelPosAttention {
    RelPosAttention {
        n_heads,
        head_dim,
        left_max,
        right_max,
    }
}

#[test]
fn fused_matches_naive_named_cases() {
    let masks = |t: usize| {
        [
            Mask::None,
            Mask::Random,
            Mask::Trailing(t / 3 + 1),
            Mask::OnlyOne(t / 2),
            Mask::OnlyOne(t),
            Mask::All,
        ]
    };
    let mut seed = 1;
    for t in [1, 2, 63, 64, 65, 73, 137, 250] {
        for (c, blocks) in [
            (cfg(2, 64, 64, 8), DEFAULT_BLOCKS),
            (cfg(1, 64, 64, 8), AttnBlocks { q: 7, k: 13 }),
            (cfg(3, 24, 5, 3), AttnBlocks { q: 16, k: 32 }),
            (cfg(4, 8, 64, 8), AttnBlocks { q: 64, k: 64 }),
            (cfg(1, 40, 0, 0), AttnBlocks { q: 5, k: 100 }),
        ] {
            for mask in masks(t) {
                seed += 1;
                let p = Problem::new(c, t, mask, seed, seed as usize % 4);
                let what = format!("t={t} {c:?} {blocks:?} {mask:?}");
                assert_close(&p.fused(blocks), &p.naive(), &what);
            }
        }
    }
}

#[test]
fn fused_matches_naive_long_sequence_default_blocks() {
    // Three key blocks of the default size (512), so the online-softmax rescaling runs at real block sizes.
    for mask in [Mask::None, Mask::Trailing(300), Mask::Random] {
        let p = Problem::new(cfg(1, 64, 64, 8), 1100, mask, 99, 1);
        assert_close(&p.fused(DEFAULT_BLOCKS), &p.naive(), &format!("t=1100 {mask:?}"));
    }
}

#[test]
fn bias_changes_the_result() {
    // Guards the tests above against a bias that is silently ignored: zeroing E must change the output.
    let p = Problem::new(cfg(1, 64, 64, 8), 80, Mask::None, 5, 0);
    let mut p0 = Problem::new(cfg(1, 64, 64, 8), 80, Mask::None, 5, 0);
    p0.emb.fill(0.0);
    let (a, b) = (p.fused(DEFAULT_BLOCKS), p0.fused(DEFAULT_BLOCKS));
    let diff = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| !x.is_nan() && (*x - *y).abs() > 1e-2)
        .count();
    assert!(diff > a.len() / 4, "only {diff} of {} outputs moved", a.len());
}

#[test]
fn empty_sequence_is_a_no_op() {
    let c = cfg(2, 8, 4, 2);
    let emb = vec![0.0; c.n_buckets() * 8];
    let mut out: Vec<f32> = vec![];
    relative_attention_cm(
        &c,
        DEFAULT_BLOCKS,
        &mut out,
        0,
        &[],
        0,
        &[],
        0,
        &[],
        0,
        &emb,
        Some(&[]),
        0,
    );
    relative_attention_cm_naive(&c, &mut out, 0, &[], 0, &[], 0, &[], 0, &emb, None, 0);
}

/// T = 2 worked from the formula: with two keys, softmax is a sigmoid of the score difference, so
/// `o_i = v_0 + (v_1 - v_0)·σ(s_i1 - s_i0)`. dh = 4 (scale 1/2), L = R = 1 so buckets are E[j - i + 1].
#[test]
fn naive_reference_on_a_hand_checked_case() {
    let c = cfg(1, 4, 1, 1);
    let q = [[0.5f32, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 1.0]];
    let k = [[1.0f32, 2.0, -1.0, 0.5], [-0.5, 1.0, 0.0, 2.0]];
    let v = [[3.0f32, -1.0, 0.5, 2.0], [-2.0, 4.0, 1.0, 0.0]];
    let e = [[0.2f32, -0.4, 1.0, 0.0], [0.0, 0.3, -0.6, 1.2], [1.0, 1.0, -1.0, 0.5]]; // j-i = -1, 0, +1
    let dot = |a: &[f32; 4], b: &[f32; 4]| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>();
    let score = |i: usize, j: usize| (dot(&q[i], &k[j]) + dot(&q[i], &e[j + 1 - i])) / 2.0;
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    // q, k, v channel-major: [4 channels, 2 times] (row stride 2); E stays [3 buckets, 4].
    let cm = |m: &[[f32; 4]; 2]| (0..8).map(|idx| m[idx % 2][idx / 2]).collect::<Vec<f32>>();
    let (qf, kf, vf) = (cm(&q), cm(&k), cm(&v));
    let ef: Vec<f32> = e.iter().flatten().copied().collect();

    let run = |mask: Option<&[bool]>| {
        let mut out = vec![0f32; 8];
        relative_attention_cm_naive(&c, &mut out, 2, &qf, 2, &kf, 2, &vf, 2, &ef, mask, 2);
        let mut fused = vec![0f32; 8];
        relative_attention_cm(&c, DEFAULT_BLOCKS, &mut fused, 2, &qf, 2, &kf, 2, &vf, 2, &ef, mask, 2);
        assert_close(&fused, &out, "hand case");
        out
    };
    let check = |out: &[f32], expect: &dyn Fn(usize, usize) -> f64| {
        for i in 0..2 {
            for ch in 0..4 {
                let x = expect(i, ch);
                assert!(
                    (out[ch * 2 + i] as f64 - x).abs() < 1e-6,
                    "o[{i},{ch}] = {} want {x}",
                    out[ch * 2 + i]
                );
            }
        }
    };
    let unmasked = |i: usize, ch: usize| {
        let w1 = sigmoid(score(i, 1) - score(i, 0));
        v[0][ch] as f64 + (v[1][ch] as f64 - v[0][ch] as f64) * w1
    };
    check(&run(None), &unmasked);
    check(&run(Some(&[true, true])), &unmasked);
    // Key 1 masked: every row attends only to key 0. All masked: HF's uniform average.
    check(&run(Some(&[true, false])), &|_, ch| v[0][ch] as f64);
    check(&run(Some(&[false, false])), &|_, ch| {
        (v[0][ch] as f64 + v[1][ch] as f64) / 2.0
    });
}

#[test]
fn output_is_identical_for_any_thread_count() {
    let p = Problem::new(cfg(4, 64, 64, 8), 300, Mask::Random, 7, 2);
    let run_in = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("rayon pool");
        pool.install(|| p.fused(AttnBlocks { q: 64, k: 128 }))
    };
    let one = run_in(1);
    for threads in [2, 3] {
        let same = one
            .iter()
            .zip(&run_in(threads))
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{threads} threads differ from 1 thread");
    }
}

proptest! {
    #![proptest_config(common::cases(48))]

    #[test]
    fn fused_matches_naive(
        t in 1usize..=260,
        n_heads in 1usize..=4,
        head_dim in prop::sample::select(vec![1usize, 8, 24, 40, 64]),
        left_max in 0usize..=70,
        right_max in 0usize..=10,
        bq in 1usize..=80,
        bk in 1usize..=300,
        mask_kind in 0usize..6,
        seed in any::<u64>(),
        off in 0usize..4,
    ) {
        let mask = match mask_kind {
            0 => Mask::None,
            1 | 2 => Mask::Random,
            3 => Mask::Trailing((seed % t as u64) as usize),
            4 => Mask::OnlyOne((seed % t as u64) as usize),
            _ => Mask::All,
        };
        let p = Problem::new(cfg(n_heads, head_dim, left_max, right_max), t, mask, seed, off);
        let blocks = AttnBlocks { q: bq, k: bk };
        assert_close(&p.fused(blocks), &p.naive(), &format!("{mask:?}"));
    }
}
