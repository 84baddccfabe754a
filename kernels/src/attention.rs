//! Fused multi-head self-attention with Shaw relative-position keys (Wav2Vec2-BERT,
//! `position_embeddings_type = "relative_key"`).
//!
//! Per head `h`, with `q, k, v: [T, dh]` and the distance embedding `E: [L + R + 1, dh]`:
//! ```text
//! score[i, j] = (q_i · k_j) / √dh + (q_i · E[clamp(j - i, -L, R) + L]) / √dh
//! score[i, j] += f32::MIN              where key j is masked (what HF adds)
//! o_i = Σ_j softmax_j(score[i, ·]) v_j
//! ```
//! The bias depends on `j - i` only through `L + R + 1` buckets, so `P = q Eᵀ / √dh` (`[Bq, L+R+1]` per query
//! block) gives every bias value: `bias[i, j] = P[i, clamp(j - i, -L, R) + L]`. Keys are streamed in blocks
//! of `Bk` with an online softmax (running max and sum per row, accumulator rescaled when the max moves), so
//! neither `[T, T, dh]` (what HF builds) nor `[H, T, T]` ever exists: scratch is `O((Bq + dh)·Bk + Bq·dh)` per task.
//!
//! Masking: adding `f32::MIN` makes `exp(score - max)` exactly 0 in f32 for a masked key whenever the row has
//! one valid key, so the fused kernel simply gives masked keys probability 0 (and skips key blocks with no
//! valid key at all — trailing padding costs nothing). When *every* key is masked, HF's scores all round to
//! exactly `f32::MIN` (any |score| < 2¹⁰³ is absorbed) and its softmax is uniform: every output row is the
//! plain mean of `v`. Both kernels reproduce that. Masked *query* rows are computed like any other.
//!
//! Parallelism: rayon over (head × query block) tasks; each task's matmuls run single-threaded. A task's
//! result depends only on its own inputs, never on scheduling, so the output is bit-identical for any
//! thread count.

use rayon::prelude::*;

use crate::gemm::{matmul, Threads};

mod rowops;
pub use rowops::{exp_sub_sum, exp_sub_sum_ref, max_of, max_of_ref, transpose_block, transpose_block_ref};

/// Shapes of one relative-key attention call (`L = left_max`, `R = right_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelPosAttention {
    pub n_heads: usize,
    pub head_dim: usize,
    pub left_max: usize,
    pub right_max: usize,
}

impl RelPosAttention {
    /// Rows of the distance embedding: `L + R + 1`.
    pub fn n_buckets(&self) -> usize {
        self.left_max + self.right_max + 1
    }

    /// Width of q/k/v/out rows that the heads occupy: `n_heads · head_dim`.
    pub fn width(&self) -> usize {
        self.n_heads * self.head_dim
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }
}

/// Query/key block sizes of the fused kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnBlocks {
    /// Query rows per task (`Bq`).
    pub q: usize,
    /// Keys per streamed block (`Bk`).
    pub k: usize,
}

/// Chosen with the CPU-time sweep of `benches/attention.rs` (`W2VBERT_ATTN_TUNE=1`) on a 2-core AMD EPYC
/// (Zen 4), 16 heads × 64: 64×256 … 256×512 lie within ~15% of each other; Bq = 128 re-reads and re-transposes
/// each head's keys half as often as 64 and was ~10% faster, while still giving 2·16 tasks at T = 250 (256
/// would be ~5% faster again at T = 3000 but halves the tasks). Bk = 256 keeps the score tile at 128 KiB.
pub const DEFAULT_BLOCKS: AttnBlocks = AttnBlocks { q: 128, k: 256 };

/// Highest element index touched by `rows` rows of `cols` values with row stride `ld`, plus one.
fn extent(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

/// Size checks shared by both kernels: violations are engine bugs, not user input.
#[allow(clippy::too_many_arguments)]
fn check_sizes(
    cfg: &RelPosAttention,
    out: &[f32],
    ldo: usize,
    q: &[f32],
    ldq: usize,
    k: &[f32],
    ldk: usize,
    v: &[f32],
    ldv: usize,
    emb: &[f32],
    key_mask: Option<&[bool]>,
    t: usize,
) {
    let d = cfg.width();
    assert!(cfg.head_dim > 0, "attention: head_dim is 0");
    for (name, ld) in [("ldo", ldo), ("ldq", ldq), ("ldk", ldk), ("ldv", ldv)] {
        assert!(ld >= d, "attention: {name} {ld} < n_heads*head_dim {d}");
    }
    for (name, len, ld) in [
        ("out", out.len(), ldo),
        ("q", q.len(), ldq),
        ("k", k.len(), ldk),
        ("v", v.len(), ldv),
    ] {
        assert!(
            len >= extent(t, d, ld),
            "attention: {name} has {len} values, needs {}",
            extent(t, d, ld)
        );
    }
    assert!(emb.len() >= cfg.n_buckets() * cfg.head_dim, "attention: emb too small");
    if let Some(m) = key_mask {
        assert!(m.len() >= t, "attention: key_mask has {} entries, needs {t}", m.len());
    }
}

/// `out[i, h] = mean_j v[j, h]` for every row: HF's softmax when every key is masked.
#[allow(clippy::too_many_arguments)]
fn all_masked_mean(
    out: &mut [f32], // [t, d], row stride ldo
    ldo: usize,
    v: &[f32], // [t, ≥ d], row stride ldv
    ldv: usize,
    d: usize,
    t: usize,
) {
    let mut mean = vec![0f64; d];
    for j in 0..t {
        for (m, &x) in mean.iter_mut().zip(&v[j * ldv..j * ldv + d]) {
            *m += x as f64;
        }
    }
    for i in 0..t {
        for (o, &m) in out[i * ldo..i * ldo + d].iter_mut().zip(&mean) {
            *o = (m / t as f64) as f32;
        }
    }
}

/// Fused relative-key attention with [`DEFAULT_BLOCKS`]. See the module docs for the math.
#[allow(clippy::too_many_arguments)]
pub fn relative_attention(
    cfg: &RelPosAttention,
    out: &mut [f32], // [t, n_heads*head_dim], row stride ldo
    ldo: usize,
    q: &[f32], // [t, ≥ n_heads*head_dim], row stride ldq; head h in columns h*dh..(h+1)*dh
    ldq: usize,
    k: &[f32], // [t, ≥ n_heads*head_dim], row stride ldk
    ldk: usize,
    v: &[f32], // [t, ≥ n_heads*head_dim], row stride ldv
    ldv: usize,
    emb: &[f32],               // [left_max + right_max + 1, head_dim], shared by all heads
    key_mask: Option<&[bool]>, // [t], true = valid key
    t: usize,
) {
    relative_attention_blocked(cfg, DEFAULT_BLOCKS, out, ldo, q, ldq, k, ldk, v, ldv, emb, key_mask, t);
}

/// Output rows are written by many tasks at once, each into its own `[rows, head_dim]` rectangle.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: only used to hand disjoint rectangles of one exclusively borrowed slice to rayon tasks.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// A method (not field access) so closures capture the whole `Send` wrapper, not the raw pointer.
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// Row stride of the transposed key tile: not a multiple of 1 KiB (bk = 256 would be), so the 64 rows a
/// transposed key row is scattered over do not all fall into the same few L1 sets.
fn kt_stride(bk: usize) -> usize {
    bk + 8
}

/// Per-task scratch: `O(Bq·Bk + Bk·dh + Bq·(L+R+1) + Bq·dh)`.
struct Scratch {
    s: Vec<f32>,    // [bq, bk]: scores, then probabilities, of one key block
    kt: Vec<f32>,   // [dh, bk + 8]: this head's key block, transposed (row stride kt_stride(bk))
    bias: Vec<f32>, // [bq, L+R+1]: P = q_blk Eᵀ / √dh
    acc: Vec<f32>,  // [bq, dh]: unnormalized output accumulator
    max: Vec<f32>,  // [bq]: running row max
    sum: Vec<f32>,  // [bq]: running row sum of exp(score - max)
}

/// [`relative_attention`] with explicit block sizes (for tuning and for tests that make blocks tiny so
/// every block/band boundary case occurs at small T).
#[allow(clippy::too_many_arguments)]
pub fn relative_attention_blocked(
    cfg: &RelPosAttention,
    blocks: AttnBlocks,
    out: &mut [f32], // [t, n_heads*head_dim], row stride ldo
    ldo: usize,
    q: &[f32], // [t, ≥ n_heads*head_dim], row stride ldq
    ldq: usize,
    k: &[f32], // [t, ≥ n_heads*head_dim], row stride ldk
    ldk: usize,
    v: &[f32], // [t, ≥ n_heads*head_dim], row stride ldv
    ldv: usize,
    emb: &[f32],               // [left_max + right_max + 1, head_dim]
    key_mask: Option<&[bool]>, // [t], true = valid key
    t: usize,
) {
    check_sizes(cfg, out, ldo, q, ldq, k, ldk, v, ldv, emb, key_mask, t);
    assert!(blocks.q > 0 && blocks.k > 0, "attention: zero block size");
    let (dh, nb) = (cfg.head_dim, cfg.n_buckets());
    if t == 0 || cfg.n_heads == 0 {
        return;
    }
    let key_mask = key_mask.map(|m| &m[..t]);
    if let Some(m) = key_mask {
        if !m.iter().any(|&x| x) {
            all_masked_mean(out, ldo, v, ldv, cfg.width(), t);
            return;
        }
        // All keys valid: same as no mask, without the per-block checks.
    }
    let key_mask = key_mask.filter(|m| !m.iter().all(|&x| x));
    let (bq, bk) = (blocks.q.min(t), blocks.k.min(t));
    let n_qb = t.div_ceil(bq);
    let out_ptr = OutPtr(out.as_mut_ptr());

    (0..n_qb * cfg.n_heads).into_par_iter().for_each_init(
        || Scratch {
            s: vec![0.0; bq * bk],
            kt: vec![0.0; dh * kt_stride(bk)],
            bias: vec![0.0; bq * nb],
            acc: vec![0.0; bq * dh],
            max: vec![0.0; bq],
            sum: vec![0.0; bq],
        },
        |sc, task| {
            // Head-major: neighbouring tasks (which rayon tends to run on one thread) share k_h and v_h in cache.
            let (h, qb) = (task / n_qb, task % n_qb);
            let i0 = qb * bq;
            let mq = bq.min(t - i0);
            attend_block(cfg, sc, q, ldq, k, ldk, v, ldv, emb, key_mask, t, h, i0, mq, bk);
            // Normalize and store this task's rectangle: rows i0..i0+mq, columns h*dh..(h+1)*dh.
            for r in 0..mq {
                let inv = 1.0 / sc.sum[r];
                // SAFETY: `check_sizes` proved `out` holds (t-1)*ldo + n_heads*dh values with ldo ≥ n_heads*dh,
                // so this row segment is in bounds; tasks own distinct (query block, head) pairs, so no two
                // tasks' segments overlap, and `out` stays exclusively borrowed for the whole parallel loop.
                let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.at((i0 + r) * ldo + h * dh), dh) };
                for (o, &a) in dst.iter_mut().zip(&sc.acc[r * dh..(r + 1) * dh]) {
                    *o = a * inv;
                }
            }
        },
    );
}

/// One task: rows `i0..i0+mq` of head `h`, leaving the unnormalized output in `sc.acc` and row sums in `sc.sum`.
#[allow(clippy::too_many_arguments)]
fn attend_block(
    cfg: &RelPosAttention,
    sc: &mut Scratch,
    q: &[f32], // [t, ≥ d], row stride ldq
    ldq: usize,
    k: &[f32], // [t, ≥ d], row stride ldk
    ldk: usize,
    v: &[f32], // [t, ≥ d], row stride ldv
    ldv: usize,
    emb: &[f32],               // [nb, dh]
    key_mask: Option<&[bool]>, // [t], None when every key is valid
    t: usize,
    h: usize,
    i0: usize,
    mq: usize,
    bk: usize,
) {
    let (dh, nb, scale) = (cfg.head_dim, cfg.n_buckets(), cfg.scale());
    let ldkt = kt_stride(bk);
    let (l, r_max) = (cfg.left_max as isize, cfg.right_max as isize);
    let q_blk = &q[i0 * ldq + h * dh..];
    // bias[r, b] = (q_{i0+r} · E_b) / √dh: E read in place as [dh, nb] (row stride 1, column stride dh).
    matmul(
        &mut sc.bias,
        nb,
        q_blk,
        ldq,
        1,
        emb,
        1,
        dh,
        mq,
        dh,
        nb,
        scale,
        false,
        Threads::Single,
    );
    sc.acc[..mq * dh].fill(0.0);
    sc.max[..mq].fill(f32::NEG_INFINITY);
    sc.sum[..mq].fill(0.0);

    for j0 in (0..t).step_by(bk) {
        let nk = bk.min(t - j0);
        let block_mask = key_mask.map(|m| &m[j0..j0 + nk]);
        if let Some(m) = block_mask {
            if !m.iter().any(|&x| x) {
                continue; // every key masked: all probabilities exactly 0
            }
        }
        // s[r, c] = (q_{i0+r} · k_{j0+c}) / √dh. gemm needs k_blkᵀ [dh, nk]; handed k in place (row
        // stride 1, column stride ldk) it packs it with one scalar load per element, each from another
        // row of the [T, 3d] buffer (12 KiB apart): ~45% of the whole kernel's time. Transposing the block
        // into a cache-resident tile first, reading whole k rows, makes this copy and gemm's packing cheap.
        transpose_block(&mut sc.kt, ldkt, &k[j0 * ldk + h * dh..], ldk, nk, dh);
        let (s, kt) = (&mut sc.s, &sc.kt[..]);
        matmul(
            s,
            bk,
            q_blk,
            ldq,
            1,
            kt,
            ldkt,
            1,
            mq,
            dh,
            nk,
            scale,
            false,
            Threads::Single,
        );

        for r in 0..mq {
            let i = (i0 + r) as isize;
            let row = &mut sc.s[r * bk..r * bk + nk];
            let bias = &sc.bias[r * nb..(r + 1) * nb];
            // Keys j ≤ i - L all take bucket 0, keys j ≥ i + R all take bucket L + R: a per-row constant on
            // each side. Only the (L + R - 1)-wide band between needs a gather.
            let j0i = j0 as isize;
            let band_lo = (i - l + 1 - j0i).clamp(0, nk as isize) as usize;
            let band_hi = ((i + r_max - j0i).clamp(0, nk as isize) as usize).max(band_lo);
            add_scalar(&mut row[..band_lo], bias[0]);
            for (c, s) in row[band_lo..band_hi].iter_mut().enumerate() {
                // bucket = (j - i) + L with j = j0 + band_lo + c, in 1..L+R-1 by construction of the band.
                *s += bias[(j0i + (band_lo + c) as isize - i + l) as usize];
            }
            add_scalar(&mut row[band_hi..], bias[nb - 1]);
            if let Some(m) = block_mask {
                for (s, &valid) in row.iter_mut().zip(m) {
                    if !valid {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
            // Online softmax: the block has a valid key, so `new_max` is finite for finite inputs.
            let old_max = sc.max[r];
            let new_max = old_max.max(max_of(row));
            let sum = exp_sub_sum(row, new_max);
            let corr = (old_max - new_max).exp(); // 0 on the first block (old_max = -∞)
            sc.sum[r] = sc.sum[r] * corr + sum;
            sc.max[r] = new_max;
            if corr != 1.0 {
                for a in &mut sc.acc[r * dh..(r + 1) * dh] {
                    *a *= corr;
                }
            }
        }
        // acc[mq, dh] += p[mq, nk] · v_blk[nk, dh] (this head's values read in place, row stride ldv).
        let v_blk = &v[j0 * ldv + h * dh..];
        matmul(
            &mut sc.acc,
            dh,
            &sc.s,
            bk,
            1,
            v_blk,
            ldv,
            1,
            mq,
            nk,
            dh,
            1.0,
            true,
            Threads::Single,
        );
    }
}

/// `x[j] += c`: plain loop, auto-vectorized (no reference needed: it is its own reference).
fn add_scalar(x: &mut [f32], c: f32) {
    for v in x {
        *v += c;
    }
}

/// Reference attention: per head, materializes the `[T, T]` score matrix following HF's formula literally
/// (including `+ f32::MIN` on masked keys), everything accumulated in f64. Slow; for tests and benches.
#[allow(clippy::too_many_arguments)]
pub fn relative_attention_naive(
    cfg: &RelPosAttention,
    out: &mut [f32], // [t, n_heads*head_dim], row stride ldo
    ldo: usize,
    q: &[f32], // [t, ≥ n_heads*head_dim], row stride ldq
    ldq: usize,
    k: &[f32], // [t, ≥ n_heads*head_dim], row stride ldk
    ldk: usize,
    v: &[f32], // [t, ≥ n_heads*head_dim], row stride ldv
    ldv: usize,
    emb: &[f32],               // [left_max + right_max + 1, head_dim]
    key_mask: Option<&[bool]>, // [t], true = valid key
    t: usize,
) {
    check_sizes(cfg, out, ldo, q, ldq, k, ldk, v, ldv, emb, key_mask, t);
    let dh = cfg.head_dim;
    let scale = 1.0 / (dh as f64).sqrt();
    let (l, r_max) = (cfg.left_max as isize, cfg.right_max as isize);
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>();
    let mut scores = vec![0f64; t * t]; // [T, T], reused for each head
    for h in 0..cfg.n_heads {
        let c0 = h * dh;
        for i in 0..t {
            let qi = &q[i * ldq + c0..i * ldq + c0 + dh];
            for j in 0..t {
                let kj = &k[j * ldk + c0..j * ldk + c0 + dh];
                let bucket = ((j as isize - i as isize).clamp(-l, r_max) + l) as usize;
                let e = &emb[bucket * dh..(bucket + 1) * dh];
                let mut s = dot(qi, kj) * scale + dot(qi, e) * scale;
                if key_mask.is_some_and(|m| !m[j]) {
                    s += f32::MIN as f64;
                }
                scores[i * t + j] = s;
            }
            let row = &mut scores[i * t..(i + 1) * t];
            softmax_f64(row);
            let o = &mut out[i * ldo + c0..i * ldo + c0 + dh];
            for (c, oc) in o.iter_mut().enumerate() {
                *oc = row
                    .iter()
                    .enumerate()
                    .map(|(j, &p)| p * v[j * ldv + c0 + c] as f64)
                    .sum::<f64>() as f32;
            }
        }
    }
}

/// In-place softmax of one row, in f64 (the naive reference's only helper).
fn softmax_f64(x: &mut [f64]) {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - m).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}
