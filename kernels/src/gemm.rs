//! The one place that calls `gemm::gemm`.
//!
//! gemm computes `dst := alpha·dst + beta·(lhs·rhs)` (alpha scales the *old* dst, beta the product: the
//! reverse of BLAS). That inversion is handled here once; callers see `c = [c +] scale·a·b`.
//! All strides are in elements. Weights stored `[out, in]` (PyTorch Linear) are never transposed; the
//! channel-major linears copy them one L2-sized block at a time ([`linear_cm`]).

use crate::alignedbuf::AlignedBuf;
use gemm::Parallelism;
use rayon::prelude::*;
use std::cell::RefCell;

/// How many threads a matmul may use. Parallelize in one place only: big projections use gemm's own
/// threads (`Rayon(0)` = the rayon pool size); kernels that already run inside a rayon task use `Single`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    Single,
    Rayon(usize),
}

impl Threads {
    fn parallelism(self) -> Parallelism {
        match self {
            Threads::Single => Parallelism::None,
            Threads::Rayon(0) => Parallelism::Rayon(rayon::current_num_threads()),
            Threads::Rayon(n) => Parallelism::Rayon(n),
        }
    }
}

/// Highest element index touched by a `rows × cols` strided view, plus one (0 for an empty view).
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `c[m, n] (row stride ldc) = (accumulate ? c : 0) + scale · a[m, k] · b[k, n]`,
/// with `a[i, p] = a[i*a_rs + p*a_cs]` and `b[p, j] = b[p*b_rs + j*b_cs]`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    c: &mut [f32], // [m, n], row stride ldc
    ldc: usize,
    a: &[f32], // [m, k] strided
    a_rs: usize,
    a_cs: usize,
    b: &[f32], // [k, n] strided
    b_rs: usize,
    b_cs: usize,
    m: usize,
    k: usize,
    n: usize,
    scale: f32,
    accumulate: bool,
    threads: Threads,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n, "matmul: ldc {ldc} < n {n}");
    assert!(c.len() >= extent(m, n, ldc, 1), "matmul: c too small");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return;
    }
    assert!(a.len() >= extent(m, k, a_rs, a_cs), "matmul: a too small");
    assert!(b.len() >= extent(k, n, b_rs, b_cs), "matmul: b too small");
    // SAFETY: every index gemm touches lies inside the slices (checked above); c is exclusively borrowed
    // and cannot alias a or b.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            threads.parallelism(),
        );
    }
}

/// Scalar reference for [`matmul`]: the obvious triple loop, accumulated in f64.
#[allow(clippy::too_many_arguments)]
pub fn matmul_ref(
    c: &mut [f32],
    ldc: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    m: usize,
    k: usize,
    n: usize,
    scale: f32,
    accumulate: bool,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for p in 0..k {
                s += a[i * a_rs + p * a_cs] as f64 * b[p * b_rs + j * b_cs] as f64;
            }
            let old = if accumulate { c[i * ldc + j] } else { 0.0 };
            c[i * ldc + j] = old + scale * s as f32;
        }
    }
}

/// Rows of W (and of y) per task in the channel-major linears: `n` split evenly over the threads, one block
/// each. Every block is one single-threaded gemm call, and each call packs all of x once (gemm's packed lhs),
/// so fewer, taller blocks pack x fewer times: at 10 s on 2 vCPUs, one block per thread ran the whole process
/// 4 % faster than fixed 256-row blocks (16 A/B pairs; 256-row blocks packed x up to 16 times per linear).
///
/// The result does not depend on the split, hence not on the thread count: gemm sums each output element over
/// k in an order fixed by k and the cache sizes alone (its `kc` blocks; every microkernel accumulates k in
/// order), whatever the number of rows it is given, as long as the split never moves a call onto gemm's paths
/// for tiny operands, whose sums are ordered differently: at most 64 rows and 64 columns (`kc` capped at 512),
/// or one row or one column (gemv). So n is cut into at most n / [`MIN_BLOCK_ROWS`] blocks (and at most 64), which
/// leaves every block, the last included, more than 64 rows (n < 256 is one block for any thread count), and a
/// single column (t = 1, gemv whatever the split) is one block. Tested: 1 to 4 threads bit-identical, depths
/// past 512 and 1024 included.
pub fn block_rows(n: usize, t: usize, threads: Threads) -> usize {
    let threads = match threads {
        Threads::Single => 1,
        Threads::Rayon(0) => rayon::current_num_threads(),
        Threads::Rayon(p) => p,
    };
    let parts = if t <= 1 {
        1
    } else {
        threads.min(n / MIN_BLOCK_ROWS).clamp(1, 64)
    };
    n.div_ceil(parts).max(1)
}

/// Smallest block [`block_rows`] makes (see there).
pub const MIN_BLOCK_ROWS: usize = 128;

/// Calls `f(r0, y_block)` for each block of [`block_rows`] rows of `y[n, t]` (`y_block` = rows `r0..`), on the
/// rayon pool when `threads` is `Rayon`, in order otherwise: the split of the channel-major linears, and of any
/// row-wise pass over `[n, t]`.
pub fn row_blocks(
    y: &mut [f32], /* [n, t] */
    n: usize,
    t: usize,
    threads: Threads,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    if n == 0 || t == 0 {
        return;
    }
    let rows = block_rows(n, t, threads);
    let blocks = y[..n * t].chunks_mut(rows * t).enumerate();
    match threads {
        Threads::Single => blocks.for_each(|(b, yb)| f(b * rows, yb)),
        Threads::Rayon(_) => y[..n * t]
            .par_chunks_mut(rows * t)
            .enumerate()
            .for_each(|(b, yb)| f(b * rows, yb)),
    }
}

/// Seeds a block of output rows `yb` `[rows, t]` with the bias `[rows]` before gemm adds `scale · W·x` to it:
/// `y = b` for a store, `h = scale·b + h` (one rounding, an FMA) for a residual (`residual_scale`). Returns
/// whether gemm must add to what `yb` holds (false: a store without bias, which gemm overwrites).
pub fn seed_bias(yb: &mut [f32], bias: Option<&[f32]>, t: usize, residual_scale: Option<f32>) -> bool {
    if let Some(b) = bias {
        for (row, &bv) in yb.chunks_exact_mut(t.max(1)).zip(b) {
            match residual_scale {
                Some(s) => row.iter_mut().for_each(|v| *v = bv.mul_add(s, *v)),
                None => row.fill(bv),
            }
        }
    }
    bias.is_some() || residual_scale.is_some()
}

/// What happens to `acc = W · x` (`[n, t]`) on its way out: one type for the f32 linears ([`linear_cm`]) and the
/// bf16 ones (`bf16::linear_bf16_cm`, `bf16::linear_bf16_rows_cm`).
pub enum Epilogue<'a> {
    /// `y = acc + bias`
    Store { y: &'a mut [f32] /* [n, t] */ },
    /// `y = silu(acc + bias)`
    StoreSilu { y: &'a mut [f32] /* [n, t] */ },
    /// `h += scale · (acc + bias)` (residual branch; the conformer's ½ rides here)
    Accumulate {
        h: &'a mut [f32], /* [n, t] */
        scale: f32,
    },
}

impl<'a> Epilogue<'a> {
    pub(crate) fn out_len(&self) -> usize {
        match self {
            Epilogue::Store { y } | Epilogue::StoreSilu { y } => y.len(),
            Epilogue::Accumulate { h, .. } => h.len(),
        }
    }

    /// The output buffer, `[n, t]` of it.
    pub(crate) fn into_dst(self, len: usize) -> &'a mut [f32] {
        match self {
            Epilogue::Store { y } | Epilogue::StoreSilu { y } => &mut y[..len],
            Epilogue::Accumulate { h, .. } => &mut h[..len],
        }
    }
}

/// The epilogue without its buffer (so tasks can share it while each writes its own rows).
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Store,
    StoreSilu,
    Accumulate(f32),
}

pub(crate) fn out_kind(out: &Epilogue<'_>) -> Kind {
    match out {
        Epilogue::Store { .. } => Kind::Store,
        Epilogue::StoreSilu { .. } => Kind::StoreSilu,
        Epilogue::Accumulate { scale, .. } => Kind::Accumulate(*scale),
    }
}

/// Channel-major PyTorch Linear, `epilogue(w[n, k] · x[k, t] + bias[n])` (i.e. `yᵀ = W xᵀ + b` with the
/// activations stored one channel per row): `Store` writes y, `StoreSilu` applies SiLU to each block of rows as
/// soon as its gemm is done, on the same thread, while the block is still in cache (the feed-forward's first
/// half), `Accumulate` adds `scale · (W·x + b)` into the residual h on gemm's accumulate, so the product is
/// never stored on its own (`scale·bias` is added to h with one rounding, an FMA, before the product). `w` is
/// the checkpoint's `[out, in]` matrix, copied one `[≤ 512, ≤ 512]` block at a time into a buffer that stays
/// in L2 where L2 holds it (`ROWS`; [`WeightRows::Blocks`]) and multiplied from there as gemm's row-major lhs,
/// x its row-major rhs; one column (t = 1, gemv) reads W in place. Read in place from the mapping, the rows
/// gemm reads together are k apart (4 or 16 KiB); copied, 2 KiB, and the copy (`n·k` values per call, against
/// `2·n·k·t` flops) is read from memory once, ahead of gemm's pass over it. On a 2-vCPU AMD EPYC Zen 3 (AVX2)
/// whole fp32 runs took 0.93× the time of W read in place at 10 s (11 of 16 interleaved pairs) and 0.98–1.02×
/// at 51 s (7 of 10); the same bits (the depth blocks are gemm's own, [`gemm_depth_block`]). Parallel over
/// [`row_blocks`].
#[allow(clippy::too_many_arguments)]
pub fn linear_cm(
    out: Epilogue<'_>,
    x: &[f32],            // [k, t]
    w: &[f32],            // [n, k]
    bias: Option<&[f32]>, // [n]
    n: usize,
    k: usize,
    t: usize,
    threads: Threads,
) {
    assert!(
        out.out_len() >= n * t && x.len() >= k * t && w.len() >= n * k,
        "linear_cm: slice too small"
    );
    assert!(bias.is_none_or(|b| b.len() >= n), "linear_cm: bias too small");
    let kind = out_kind(&out);
    let y = out.into_dst(n * t);
    // More than one column: W copied block by block (see the doc above); one column reads it in place.
    let copy = |d: &mut [f32], r: usize, c0: usize| d.copy_from_slice(&w[r * k + c0..][..d.len()]);
    let w = if t > 1 {
        WeightRows::Blocks(&copy)
    } else {
        WeightRows::InPlace(w)
    };
    linear_cm_rows(y, x, w, bias, n, k, t, threads, kind)
}

/// Where [`linear_cm_rows`] finds W `[n, k]`.
#[derive(Clone, Copy)]
pub(crate) enum WeightRows<'a> {
    /// f32, row-major: gemm reads it in place.
    InPlace(&'a [f32]),
    /// Any storage, copied as f32 one `[≤ ROWS, ≤ DEPTH]` block at a time into a per-thread buffer that stays in
    /// L2 (a plain copy, a widening from bf16...) by `fill(dst [kc], row, c0)`: W's row `row`, columns
    /// `c0 .. c0 + kc`.
    Blocks(&'a (dyn Fn(&mut [f32], usize, usize) + Sync)),
}

/// Most rows of W copied at once: `[512, 512]` f32 is 1 MiB, which a 2 MiB L2 (the Xeons) holds beside gemm's
/// packed x; Zen 4's 1 MiB barely, Zen 3's 512 KiB half of it (where the copies still gained: [`linear_cm`]).
const ROWS: usize = 512;
/// Most columns of W copied at once: gemm's largest depth block ([`gemm_depth_block`]).
const DEPTH: usize = 512;

thread_local! {
    /// One block of W as f32 (`[≤ ROWS, ≤ DEPTH]`), reused across calls on the calling thread.
    static BLOCK: RefCell<AlignedBuf<f32>> = RefCell::new(AlignedBuf::zeroed(0));
}

/// The depth block gemm sums at a time when it multiplies `[rows, k]` by `[k, t]` (gemm-common 0.19,
/// `gemm_basic_generic`): all of k for one column (its gemv); `min(k, 512)` when both sides are ≤ 64 (its
/// small-size path); otherwise k cut into ⌈k / 512⌉ equal blocks (`kernel_params`: at least 512 on every cache
/// it sizes for). One gemm call per such block of copied W, each adding into y, therefore sums in the order of
/// one call over all of k (fp32 at 10 s gave the same bits as W read in place in one call, on Zen 3's AVX2).
/// Nothing relies on it: fp32 and WidenF32 take these same blocks, so they agree bit for bit on any CPU.
fn gemm_depth_block(rows: usize, k: usize, t: usize) -> usize {
    let k = k.max(1);
    if t == 1 {
        k
    } else if rows <= 64 && t <= 64 {
        k.min(DEPTH)
    } else {
        k.div_ceil(k.div_ceil(DEPTH))
    }
}

/// The body every channel-major linear shares: per [`row_blocks`] block, [`seed_bias`], single-threaded gemm
/// adding `scale · W·x` (`scale` = the residual's, else 1), then SiLU for [`Kind::StoreSilu`]. W in place is
/// one gemm call per block; copied, see [`copied_blocks`]. Either way the result does not depend on the thread
/// count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_cm_rows(
    y: &mut [f32], // [n, t]
    x: &[f32],     // [k, t]
    w: WeightRows<'_>,
    bias: Option<&[f32]>, // [n]
    n: usize,
    k: usize,
    t: usize,
    threads: Threads,
    kind: Kind,
) {
    let residual = match kind {
        Kind::Accumulate(s) => Some(s),
        Kind::Store | Kind::StoreSilu => None,
    };
    let post = |yb: &mut [f32]| {
        if let Kind::StoreSilu = kind {
            crate::activation::silu_inplace(yb)
        }
    };
    row_blocks(y, n, t, threads, |r0, yb| match w {
        WeightRows::InPlace(w) => {
            let rows = yb.len() / t;
            let add = seed_bias(yb, bias.map(|b| &b[r0..]), t, residual);
            let scale = residual.unwrap_or(1.0);
            matmul(
                yb,
                t,
                &w[r0 * k..],
                k,
                1,
                x,
                t,
                1,
                rows,
                k,
                t,
                scale,
                add,
                Threads::Single,
            );
            post(yb);
        }
        WeightRows::Blocks(fill) => {
            BLOCK.with(|cell| copied_blocks(&mut cell.borrow_mut(), yb, r0, x, fill, bias, k, t, residual, &post))
        }
    });
}

/// One row block `yb` (rows `r0..` of y `[n, t]`) with W copied by `fill` into `block`: its rows cut into equal
/// blocks of at most `ROWS` (t > 1; a single column takes whole rows, fewer of them), each of those into gemm's
/// depth blocks, one gemm call each adding into y, then `post` per block of rows. Every such block has more than
/// 64 rows whatever the thread count (when n does), and a single column is gemv for any rows, so the depth
/// blocks, and the result, do not depend on the thread count.
#[allow(clippy::too_many_arguments)]
fn copied_blocks(
    block: &mut AlignedBuf<f32>,
    yb: &mut [f32], // [rows, t]
    r0: usize,
    x: &[f32], // [k, t]
    fill: &(dyn Fn(&mut [f32], usize, usize) + Sync),
    bias: Option<&[f32]>, // [n]
    k: usize,
    t: usize,
    residual: Option<f32>,
    post: &impl Fn(&mut [f32]),
) {
    let rows = yb.len() / t;
    let most = if t == 1 { (ROWS * DEPTH / k.max(1)).max(1) } else { ROWS };
    let sub = rows.div_ceil(rows.div_ceil(most));
    for (i, yb) in yb.chunks_mut(sub * t).enumerate() {
        let (s0, rows) = (r0 + i * sub, yb.len() / t);
        let depth = gemm_depth_block(rows, k, t);
        block.grow(rows * depth);
        let mut add = seed_bias(yb, bias.map(|b| &b[s0..s0 + rows]), t, residual);
        // k = 0 still makes one (empty) call, which zeroes a store without bias.
        for c0 in (0..k.max(1)).step_by(depth) {
            let kc = depth.min(k - c0);
            let wb = &mut block[..rows * kc];
            for (r, d) in wb.chunks_exact_mut(kc.max(1)).enumerate() {
                fill(d, s0 + r, c0);
            }
            let (xc, scale) = (&x[c0 * t..], residual.unwrap_or(1.0));
            matmul(yb, t, wb, kc, 1, xc, t, 1, rows, kc, t, scale, add, Threads::Single);
            add = true;
        }
        post(yb);
    }
}

/// Scalar reference for [`linear_cm`]: the f64 triple loop, then the epilogue.
#[allow(clippy::too_many_arguments)]
pub fn linear_cm_ref(
    out: Epilogue<'_>,
    x: &[f32],            // [k, t]
    w: &[f32],            // [n, k]
    bias: Option<&[f32]>, // [n]
    n: usize,
    k: usize,
    t: usize,
) {
    let mut y = vec![0f32; n * t];
    matmul_ref(&mut y, t, w, k, 1, x, t, 1, n, k, t, 1.0, false);
    if let Some(b) = bias {
        for (row, &bv) in y.chunks_exact_mut(t.max(1)).zip(b) {
            row.iter_mut().for_each(|v| *v += bv);
        }
    }
    let kind = out_kind(&out);
    let dst = out.into_dst(n * t);
    match kind {
        Kind::Store => dst.copy_from_slice(&y),
        Kind::StoreSilu => {
            dst.copy_from_slice(&y);
            crate::activation::silu_inplace_ref(dst)
        }
        Kind::Accumulate(s) => dst.iter_mut().zip(&y).for_each(|(h, v)| *h += s * v),
    }
}
