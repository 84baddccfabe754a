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
//! neither `[T, T, dh]` (what HF builds) nor `[H, T, T]` ever exists: scratch is `O(Bq·(Bk + L + R + 1 + dh))` per
//! task.
//!
//! Masking: adding `f32::MIN` makes `exp(score - max)` exactly 0 in f32 for a masked key whenever the row has
//! one valid key, so the fused kernel simply gives masked keys probability 0 (and skips key blocks with no
//! valid key at all — trailing padding costs nothing). When *every* key is masked, HF's scores all round to
//! exactly `f32::MIN` (any |score| < 2¹⁰³ is absorbed) and its softmax is uniform: every output row is the
//! plain mean of `v`. The fused kernel and the naive reference both reproduce that. Masked *query* rows are
//! computed like any other.
//!
//! Layout: q/k/v/out are channel-major `[d, T]`, one channel per row (what the encoder holds): head h is rows
//! `h·dh..(h+1)·dh`. A task copies its query block once (`[dh, Bq]`, zero-padded to a multiple of 16 queries);
//! every other matrix is `[·, queries]` with the queries as vector lanes: scores `[Bk, Bq]`, the bias
//! `[L+R+1, Bq]`, the output accumulator `[dh, Bq]`. Keys, values and E are read in place, one value at a time,
//! and broadcast (`outer.rs`): nothing is packed or transposed, the softmax runs down columns (vertical max, exp
//! and sums, no horizontal reductions) and the output leaves channel-major.
//!
//! Parallelism: rayon over (head × query block) tasks; each task's matmuls run single-threaded. A task's
//! result depends only on its own inputs, never on scheduling, so the output is bit-identical for any
//! thread count.

use rayon::prelude::*;

mod colops;
mod naive;
mod outer;
pub use colops::{col_max, col_max_ref, exp_sub_cols, exp_sub_cols_ref, transpose_block, transpose_block_ref};
pub use naive::relative_attention_cm_naive;
pub use outer::{outer_acc, outer_acc_ref, Strided, P_BLOCK};

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
/// (Zen 4), 16 heads × 64, then on a time-major kernel since deleted: 64×256 … 256×512 lie within ~15% of each
/// other; Bq = 128 re-reads and re-transposes each head's keys half as often as 64 and was ~10% faster, while
/// still giving 2·16 tasks at T = 250 (256 would be ~5% faster again at T = 3000 but halves the tasks). Bk = 256
/// keeps the score tile at 128 KiB. Re-checked on the no-AMX Xeon for the channel-major kernel the encoder runs:
/// 256×512 took 12 % less CPU than 128×256 at T = 3000 in the kernel alone, but the whole CLI at 51 s measured
/// 0.994 and 0.988 (4 of 8 and 9 of 16 interleaved pairs: ~1 %, and not bit-identical, since Bk sets the online
/// softmax's sums), and 256×256 1.030 (3 of 8): no change. Once the bf16 projections had become fast, Bk = 512
/// (on the Xeon with AMX, 2 threads, whole CLI against 128×256, `scripts/ab_cli.py`): bf16 checkpoint 0.975 at
/// 10 s (7 of 8 pairs; a 10 s file is then one key block, 3 gemm calls per task instead of 5) and 0.971 at 51 s
/// (4 of 4), fp32 0.988 at 10 s (6 of 8); 256×512 0.996 and 128×1024 0.995 against it: no further change. With
/// the outer-product kernel (`outer.rs`, no gemm calls; sweep in CPU time, Xeon with AMX): 64×128 … 128×512 within
/// noise of each other at T = 500 (10.8–11.6 ms per call) and T = 3000 (355–378 ms), 256-query blocks ~15 % slower.
pub const DEFAULT_BLOCKS: AttnBlocks = AttnBlocks { q: 128, k: 512 };

/// Where element (time i, channel c) of a q/k/v/out buffer lives: index `i·ts + c·cs`. Channel-major `[≥ d, t]`
/// (one channel per row, row stride `ld ≥ t`) is `{ ts: 1, cs: ld }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Strides {
    ts: usize,
    cs: usize,
}

impl Strides {
    /// `[≥ d, t]`, row stride `ld` (channel c of time i at `c·ld + i`).
    fn channel_major(ld: usize) -> Self {
        Strides { ts: 1, cs: ld }
    }

    /// Highest index touched by `t` time steps of `d` channels, plus one.
    fn extent(self, t: usize, d: usize) -> usize {
        if t == 0 || d == 0 {
            0
        } else {
            (t - 1) * self.ts + (d - 1) * self.cs + 1
        }
    }

    /// True when distinct (time, channel) pairs below `(t, d)` map to distinct indices: whole time rows or
    /// whole channel rows are disjoint.
    fn injective(self, t: usize, d: usize) -> bool {
        if t == 0 || d == 0 {
            return true; // nothing is written
        }
        if t == 1 || d == 1 {
            return (t <= 1 || self.ts >= 1) && (d <= 1 || self.cs >= 1);
        }
        (self.cs >= 1 && self.ts > (d - 1) * self.cs) || (self.ts >= 1 && self.cs > (t - 1) * self.ts)
    }
}

/// Size checks shared by all kernels: violations are engine bugs, not user input.
#[allow(clippy::too_many_arguments)]
fn check_sizes(
    cfg: &RelPosAttention,
    out: &[f32],
    so: Strides,
    q: &[f32],
    sq: Strides,
    k: &[f32],
    sk: Strides,
    v: &[f32],
    sv: Strides,
    emb: &[f32],
    key_mask: Option<&[bool]>,
    t: usize,
) {
    let d = cfg.width();
    assert!(cfg.head_dim > 0, "attention: head_dim is 0");
    assert!(
        so.injective(t, d),
        "attention: output strides {so:?} overlap for t = {t}, d = {d}"
    );
    for (name, len, st) in [
        ("out", out.len(), so),
        ("q", q.len(), sq),
        ("k", k.len(), sk),
        ("v", v.len(), sv),
    ] {
        assert!(
            len >= st.extent(t, d),
            "attention: {name} has {len} values, needs {} ({st:?})",
            st.extent(t, d)
        );
    }
    assert!(emb.len() >= cfg.n_buckets() * cfg.head_dim, "attention: emb too small");
    if let Some(m) = key_mask {
        assert!(m.len() >= t, "attention: key_mask has {} entries, needs {t}", m.len());
    }
}

/// `out[i, c] = mean_j v[j, c]` for every time step: HF's softmax when every key is masked.
fn all_masked_mean(
    out: &mut [f32], // (t, d) view `so`
    so: Strides,
    v: &[f32], // (t, d) view `sv`
    sv: Strides,
    d: usize,
    t: usize,
) {
    let mut mean = vec![0f64; d];
    for j in 0..t {
        for (c, m) in mean.iter_mut().enumerate() {
            *m += v[j * sv.ts + c * sv.cs] as f64;
        }
    }
    for i in 0..t {
        for (c, &m) in mean.iter().enumerate() {
            out[i * so.ts + c * so.cs] = (m / t as f64) as f32;
        }
    }
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

/// Per-task scratch: `O(Bq·(Bk + L+R+1 + 2·dh))`, queries padded to `bqp` (a multiple of 16).
struct Scratch {
    q: Vec<f32>,    // [dh, bqp]: the query block, zero-padded
    s: Vec<f32>,    // [bk, bqp]: scores, then probabilities, of one key block
    bias: Vec<f32>, // [L+R+1, bqp]: Pᵀ = E q_blkᵀ / √dh
    acc: Vec<f32>,  // [dh, bqp]: unnormalized output accumulator
    max: Vec<f32>,  // [bqp]: running column max
    sum: Vec<f32>,  // [bqp]: running column sum of exp(score - max)
    blk: Vec<f32>,  // [bqp]: one key block's max, then its sum
}

impl Scratch {
    /// Room for `dh` channels, `bqp` queries, `bk` keys and `nb` buckets (the buffers only grow; every task
    /// writes what it reads).
    fn fit(&mut self, dh: usize, bqp: usize, bk: usize, nb: usize) {
        for (v, len) in [
            (&mut self.q, dh * bqp),
            (&mut self.s, bk * bqp),
            (&mut self.bias, nb * bqp),
            (&mut self.acc, dh * bqp),
            (&mut self.max, bqp),
            (&mut self.sum, bqp),
            (&mut self.blk, bqp),
        ] {
            if v.len() < len {
                v.resize(len, 0.0);
            }
        }
    }
}

thread_local! {
    /// A task's scratch, per thread, kept across calls (one call per layer: no allocation and no fresh pages per
    /// layer; `s` alone is 256 KiB at the default blocks).
    static SCRATCH: std::cell::RefCell<Scratch> = const { std::cell::RefCell::new(Scratch {
        q: Vec::new(),
        s: Vec::new(),
        bias: Vec::new(),
        acc: Vec::new(),
        max: Vec::new(),
        sum: Vec::new(),
        blk: Vec::new(),
    }) };
}

/// Fused relative-key attention on channel-major buffers (see the module docs): head h is rows `h·dh..(h+1)·dh`.
/// Scores `Q_blk·K_blkᵀ` read K in place as a row-major rhs (no key transpose). `blocks`: [`DEFAULT_BLOCKS`] in the
/// encoder; tiny ones in tests, so every block/band boundary case occurs at small T; others when tuning.
#[allow(clippy::too_many_arguments)]
pub fn relative_attention_cm(
    cfg: &RelPosAttention,
    blocks: AttnBlocks,
    out: &mut [f32], // [n_heads*head_dim, t], row stride ldo ≥ t
    ldo: usize,
    q: &[f32], // [≥ n_heads*head_dim, t], row stride ldq
    ldq: usize,
    k: &[f32], // [≥ n_heads*head_dim, t], row stride ldk
    ldk: usize,
    v: &[f32], // [≥ n_heads*head_dim, t], row stride ldv
    ldv: usize,
    emb: &[f32],               // [left_max + right_max + 1, head_dim]
    key_mask: Option<&[bool]>, // [t], true = valid key
    t: usize,
) {
    let cm = Strides::channel_major;
    let (so, sq, sk, sv) = (cm(ldo), cm(ldq), cm(ldk), cm(ldv));
    check_sizes(cfg, out, so, q, sq, k, sk, v, sv, emb, key_mask, t);
    assert!(blocks.q > 0 && blocks.k > 0, "attention: zero block size");
    let (dh, nb) = (cfg.head_dim, cfg.n_buckets());
    if t == 0 || cfg.n_heads == 0 {
        return;
    }
    let key_mask = key_mask.map(|m| &m[..t]);
    if let Some(m) = key_mask {
        if !m.iter().any(|&x| x) {
            all_masked_mean(out, so, v, sv, cfg.width(), t);
            return;
        }
        // All keys valid: same as no mask, without the per-block checks.
    }
    let key_mask = key_mask.filter(|m| !m.iter().all(|&x| x));
    let (bq, bk) = (blocks.q.min(t), blocks.k.min(t));
    let n_qb = t.div_ceil(bq);
    let out_ptr = OutPtr(out.as_mut_ptr());

    let bqp = bq.next_multiple_of(16);
    (0..n_qb * cfg.n_heads).into_par_iter().for_each(|task| {
        SCRATCH.with(|cell| {
            let sc = &mut *cell.borrow_mut();
            sc.fit(dh, bqp, bk, nb);
            // Head-major: neighbouring tasks (which rayon tends to run on one thread) share k_h and v_h in cache.
            let (h, qb) = (task / n_qb, task % n_qb);
            let i0 = qb * bq;
            let mq = bq.min(t - i0);
            let lds = Lds { q: ldq, k: ldk, v: ldv };
            attend_block(cfg, sc, &lds, q, k, v, emb, key_mask, t, h, i0, mq, bk);
            // Normalize and store this task's rectangle: times i0..i0+mq, channels h*dh..(h+1)*dh.
            // SAFETY: `check_sizes` proved every (time < t, channel < d) index of `so` lies inside `out` and that
            // `so` is injective; tasks own distinct (query block, head) pairs, so no two tasks write the same
            // element, and `out` stays exclusively borrowed for the whole parallel loop.
            let rq = mq.next_multiple_of(16);
            for r in 0..mq {
                sc.max[r] = 1.0 / sc.sum[r];
            }
            for c in 0..dh {
                let base = (h * dh + c) * so.cs + i0 * so.ts;
                let row = &sc.acc[c * rq..c * rq + mq];
                for (r, (&a, &inv)) in row.iter().zip(&sc.max).enumerate() {
                    unsafe { *out_ptr.at(base + r * so.ts) = a * inv };
                }
            }
        })
    });
}

/// Row strides of the channel-major q, k, v.
struct Lds {
    q: usize,
    k: usize,
    v: usize,
}

/// One task: queries `i0..i0+mq` of head `h`, leaving the unnormalized output `[dh, rq]` in `sc.acc` and the
/// column sums in `sc.sum` (`rq` = mq rounded up to 16: the padding queries are zeros, computed and dropped).
#[allow(clippy::too_many_arguments)]
fn attend_block(
    cfg: &RelPosAttention,
    sc: &mut Scratch,
    ld: &Lds,
    q: &[f32],                 // [≥ d, t], row stride ld.q
    k: &[f32],                 // [≥ d, t], row stride ld.k
    v: &[f32],                 // [≥ d, t], row stride ld.v
    emb: &[f32],               // [nb, dh]
    key_mask: Option<&[bool]>, // [t], None when every key is valid
    t: usize,
    h: usize,
    i0: usize,
    mq: usize,
    bk: usize,
) {
    let (dh, nb, scale) = (cfg.head_dim, cfg.n_buckets(), cfg.scale());
    let rq = mq.next_multiple_of(16);
    // The query block, [dh, rq], zero-padded.
    for c in 0..dh {
        let src = &q[(h * dh + c) * ld.q + i0..][..mq];
        let row = &mut sc.q[c * rq..(c + 1) * rq];
        row[..mq].copy_from_slice(src);
        row[mq..].fill(0.0);
    }
    let qt = &sc.q[..dh * rq];
    // bias[b, r] = (E_b · q_{i0+r}) / √dh: E read in place (bucket stride dh, channel stride 1).
    let e = Strided {
        data: emb,
        sa: dh,
        sp: 1,
    };
    outer_acc(&mut sc.bias, rq, e, qt, rq, nb, dh, rq, scale, false);
    sc.acc[..dh * rq].fill(0.0);
    sc.max[..rq].fill(f32::NEG_INFINITY);
    sc.sum[..rq].fill(0.0);

    for j0 in (0..t).step_by(bk) {
        let nk = bk.min(t - j0);
        let block_mask = key_mask.map(|m| &m[j0..j0 + nk]);
        if let Some(m) = block_mask {
            if !m.iter().any(|&x| x) {
                continue; // every key masked: all probabilities exactly 0
            }
        }
        // s[j, r] = (k_{j0+j} · q_{i0+r}) / √dh: this head's keys in place (key stride 1, channel stride ld.k).
        let kb = Strided {
            data: &k[h * dh * ld.k + j0..],
            sa: 1,
            sp: ld.k,
        };
        outer_acc(&mut sc.s, rq, kb, qt, rq, nk, dh, rq, scale, false);
        for j in 0..nk {
            let row = &mut sc.s[j * rq..(j + 1) * rq];
            if block_mask.is_some_and(|m| !m[j]) {
                row.fill(f32::NEG_INFINITY);
                continue;
            }
            let d = (j0 + j) as isize - i0 as isize;
            add_bias_row(row, &sc.bias[..nb * rq], d, cfg.left_max, cfg.right_max);
        }
        let s = &mut sc.s[..nk * rq];
        softmax_block(
            s,
            &mut sc.acc[..dh * rq],
            &mut sc.max,
            &mut sc.sum[..rq],
            &mut sc.blk,
            rq,
            nk,
        );
        // acc[c, r] += Σ_j v[c, j0 + j] · p[j, r]: this head's values in place (channel stride ld.v, key stride 1).
        let vb = Strided {
            data: &v[h * dh * ld.v + j0..],
            sa: ld.v,
            sp: 1,
        };
        outer_acc(&mut sc.acc, rq, vb, &sc.s[..nk * rq], rq, dh, nk, rq, 1.0, true);
    }
}

/// Adds the relative-position bias to the scores of one key, `row[r] += bias[clamp(d - r, -L, R) + L, r]` for
/// every query r of the block (`d` = the key's time minus the block's first query's; `bias: [L+R+1, rq]`): the
/// last bucket for r ≤ d - R, the first for r ≥ d + L, and bucket d - r + L on the band between.
fn add_bias_row(
    row: &mut [f32], /* [rq] */
    bias: &[f32],    /* [L+R+1, rq] */
    d: isize,
    left: usize,
    right: usize,
) {
    let rq = row.len();
    let (l, r_max, nb) = (left as isize, right as isize, left + right + 1);
    let lo = (d - r_max + 1).clamp(0, rq as isize) as usize;
    let hi = ((d + l).clamp(0, rq as isize) as usize).max(lo);
    add_row(&mut row[..lo], &bias[(nb - 1) * rq..][..lo]);
    for (r, s) in row[lo..hi].iter_mut().enumerate() {
        // bucket = d - (lo + r) + L, in 1..L+R-1 by construction of the band.
        *s += bias[(d - (lo + r) as isize + l) as usize * rq + lo + r];
    }
    add_row(&mut row[hi..], &bias[hi..rq]);
}

/// One key block's step of the online softmax, per column (query) of the block's scores `s`: the running `max`
/// moves to the block's, the accumulator `acc` and the running `sum` are rescaled by `exp(old max - new max)` (0 on
/// the first block, old max = -∞), then the scores become `exp(score - max)`, summed into `sum`. The block has a
/// valid key, so the new max is finite for finite inputs. `blk` is scratch (`[≥ rq]`, as is `max`).
fn softmax_block(
    s: &mut [f32],   // [nk, rq]
    acc: &mut [f32], // [dh, rq]
    max: &mut Vec<f32>,
    sum: &mut [f32], // [rq]
    blk: &mut Vec<f32>,
    rq: usize,
    nk: usize,
) {
    blk[..rq].copy_from_slice(&max[..rq]);
    col_max(&mut blk[..rq], s, rq, nk);
    std::mem::swap(blk, max); // max = new max, blk = old max
    let mut moved = false;
    for r in 0..rq {
        let corr = (blk[r] - max[r]).exp();
        moved |= corr != 1.0;
        blk[r] = corr;
    }
    if moved {
        for row in acc.chunks_exact_mut(rq) {
            row.iter_mut().zip(&blk[..rq]).for_each(|(a, &c)| *a *= c);
        }
    }
    for (sum, &corr) in sum.iter_mut().zip(&blk[..rq]) {
        *sum *= corr;
    }
    exp_sub_cols(s, rq, nk, &max[..rq], &mut blk[..rq]);
    for (sum, &b) in sum.iter_mut().zip(&blk[..rq]) {
        *sum += b;
    }
}

/// `x[r] += b[r]`: plain loop, auto-vectorized (no reference needed: it is its own reference).
fn add_row(x: &mut [f32], b: &[f32]) {
    for (v, &b) in x.iter_mut().zip(b) {
        *v += b;
    }
}
