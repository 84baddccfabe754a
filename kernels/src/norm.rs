//! PyTorch `LayerNorm` over the channels: `y = (x - mean) / sqrt(var + eps) · gamma + beta`, biased var, on
//! channel-major activations `[c, t]` (row = one channel over time), normalized over the c rows of each column.
//!
//! Statistics use the corrected two-pass algorithm (Chan, Golub & LeVeque): a first pass gives an
//! approximate mean `m0`; a second sums `x - m0` and `(x - m0)²`, whose terms are small and nearly exact
//! even when the column sits on a large offset (1e4 + noise), so `mean = m0 + Σ(x-m0)/c` and
//! `var = Σ(x-m0)²/c - (Σ(x-m0)/c)²` lose nothing to cancellation. The output subtracts `m0` and then the
//! small correction, so the mean is never rounded to f32 as a whole either.
//!
//! Vectorized across time: a tile of CM_TILE columns, copied into a task's buffer (c × CM_TILE values, 128 KiB
//! for c = 1024: stays in L2 across the three passes), is reduced over all rows to per-column `m0`, `delta`,
//! `rstd`, then normalized and written back; tiles are the parallel tasks. Each column's result comes from the
//! same lane arithmetic whatever the tile split or thread count (a ragged last tile is zero-padded in the
//! buffer and run through the same code), so the output is bit-identical for any rayon pool size.

use rayon::prelude::*;
use wide::f32x8;

use crate::bf16::{ColumnSink, PackedX};
use crate::math::{fma8, load8, store8, LANES};

/// Below this many elements the rayon fork/join costs more than it saves.
const PAR_MIN_ELEMS: usize = 1 << 18;

/// Columns (time steps) per statistics tile: 4 vectors, so pass 2's accumulators fit in registers.
const CM_VECS: usize = 4;
const CM_TILE: usize = CM_VECS * LANES;
/// Rows summed into a partial before it is added to the column total: the f32 rounding error grows with
/// `CM_ROWS + c / CM_ROWS` instead of `c`.
const CM_ROWS: usize = 32;

/// Statistics of `CM_TILE` columns of `x` (`[c, ≥ CM_TILE]`, row stride `ld`) into `m0`/`delta`/`rstd` `[CM_TILE]`.
#[inline]
fn cm_stats_tile(m0: &mut [f32], delta: &mut [f32], rstd: &mut [f32], x: &[f32], ld: usize, c: usize, eps: f32) {
    let inv_c = f32x8::splat(1.0 / c as f32);
    let col = |r: usize, v: usize| load8(&x[r * ld + v * LANES..]);

    // Pass 1: approximate mean.
    let mut tot = [f32x8::ZERO; CM_VECS];
    for r0 in (0..c).step_by(CM_ROWS) {
        let mut part = [f32x8::ZERO; CM_VECS];
        for r in r0..(r0 + CM_ROWS).min(c) {
            for (v, p) in part.iter_mut().enumerate() {
                *p += col(r, v);
            }
        }
        for (tv, p) in tot.iter_mut().zip(part) {
            *tv += p;
        }
    }
    let vm0 = tot.map(|s| s * inv_c);

    // Pass 2: sums of the centred values and of their squares.
    let (mut t1, mut t2) = ([f32x8::ZERO; CM_VECS], [f32x8::ZERO; CM_VECS]);
    for r0 in (0..c).step_by(CM_ROWS) {
        let (mut p1, mut p2) = ([f32x8::ZERO; CM_VECS], [f32x8::ZERO; CM_VECS]);
        for r in r0..(r0 + CM_ROWS).min(c) {
            for v in 0..CM_VECS {
                let d = col(r, v) - vm0[v];
                p1[v] += d;
                p2[v] = fma8(d, d, p2[v]);
            }
        }
        for v in 0..CM_VECS {
            t1[v] += p1[v];
            t2[v] += p2[v];
        }
    }
    for v in 0..CM_VECS {
        let dl = t1[v] * inv_c;
        let var = (t2[v] * inv_c - dl * dl).fast_max(f32x8::ZERO);
        let rs = f32x8::ONE / (var + f32x8::splat(eps)).sqrt();
        store8(&mut m0[v * LANES..], vm0[v]);
        store8(&mut delta[v * LANES..], dl);
        store8(&mut rstd[v * LANES..], rs);
    }
}

/// `x` and `y` `[c, t]` (possibly the same buffer) for the column tiles' tasks: each task reads and writes only
/// its own columns.
#[derive(Clone, Copy)]
struct Columns {
    x: *const f32,
    y: Out,
    /// [`Then::keep`] (`[t]`), null for none.
    keep: *const bool,
    silu: bool,
}

/// Where the normalized columns go.
#[derive(Clone, Copy)]
enum Out {
    /// y `[c, t]` f32 (x itself for in place).
    F32(*mut f32),
    /// The bf16 tile kernels' packed input ([`NormOut::Packed`]).
    Packed(ColumnSink),
}

/// What a LayerNorm does to each normalized row of a column tile before writing it, while the tile is in
/// cache: SiLU (the conv module's depthwise LayerNorm and activation), then zeroing the time steps whose `keep`
/// is false (HF's `masked_fill` after the conv module's first LayerNorm). The default does neither.
#[derive(Clone, Copy, Default)]
pub struct Then<'a> {
    pub silu: bool,
    pub keep: Option<&'a [bool]>, // [t]
}

// SAFETY: tasks touch disjoint columns (`layer_norm_columns`).
unsafe impl Send for Columns {}
unsafe impl Sync for Columns {}

impl Columns {
    /// Row r's columns j0..j0 + w of x (methods, so closures capture the whole `Columns`, which is Sync).
    ///
    /// # Safety
    /// In bounds, and no task writes them meanwhile.
    unsafe fn x_row(&self, r: usize, t: usize, j0: usize, w: usize) -> &[f32] {
        std::slice::from_raw_parts(self.x.add(r * t + j0), w)
    }

    /// Applies [`Then`] to row `v` (columns j0.. of one row of the tile, normalized), then writes it to y when the
    /// output is f32.
    ///
    /// # Safety
    /// In bounds (`keep` too), and no other task reads or writes them meanwhile.
    unsafe fn put_row(&self, r: usize, t: usize, j0: usize, v: &mut [f32]) {
        if self.silu {
            crate::activation::silu_inplace(v);
        }
        if !self.keep.is_null() {
            let keep = std::slice::from_raw_parts(self.keep.add(j0), v.len());
            for (v, _) in v.iter_mut().zip(keep).filter(|(_, &k)| !k) {
                *v = 0.0;
            }
        }
        if let Out::F32(y) = self.y {
            std::ptr::copy_nonoverlapping(v.as_ptr(), y.add(r * t + j0), v.len())
        }
    }

    /// Packs the finished tile j (`tile` `[c, CM_TILE]`, its first w columns valid) when the output is packed.
    ///
    /// # Safety
    /// Tile j is a column block of the sink's `[c, t]`, written by this task only.
    unsafe fn put_tile(&self, j: usize, tile: &[f32], w: usize) {
        if let Out::Packed(sink) = self.y {
            sink.put(j, tile, w)
        }
    }
}

/// `y = LN(x)` over `[c, t]`, one task per tile of [`CM_TILE`] columns: the tile is copied into the thread's
/// buffer `[c, CM_TILE]` (zero-padded when ragged; 128 KiB at c = 1024, so it stays in L2), reduced to its
/// statistics, then normalized and written back: x is read from memory once, in one parallel pass.
///
/// # Safety
/// `x` and `y` point to `c·t` valid values each (the same buffer for in place), not otherwise accessed
/// during the call.
unsafe fn layer_norm_columns(cols: Columns, gamma: &[f32], beta: &[f32], eps: f32, c: usize, t: usize) {
    let tile = |j: usize| {
        TILE.with(|cell| {
            let buf = &mut *cell.borrow_mut();
            buf.resize(c * CM_TILE, 0.0);
            // SAFETY: the caller's guarantee; tile j is this task's alone.
            unsafe { norm_tile(cols, buf, gamma, beta, eps, c, t, j) }
        })
    };
    if c * t >= PAR_MIN_ELEMS {
        (0..t.div_ceil(CM_TILE)).into_par_iter().for_each(tile);
    } else {
        (0..t.div_ceil(CM_TILE)).for_each(tile);
    }
}

thread_local! {
    /// A task's `[c, CM_TILE]` copy of its column tile (128 KiB at c = 1024), reused across calls on each thread.
    static TILE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Column tile `j` of [`layer_norm_columns`] through `buf` `[c, CM_TILE]`.
///
/// # Safety
/// As [`layer_norm_columns`]; tile j's columns are touched by this call only.
#[allow(clippy::too_many_arguments)]
unsafe fn norm_tile(
    cols: Columns,
    buf: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    c: usize,
    t: usize,
    j: usize,
) {
    let (j0, w) = (j * CM_TILE, CM_TILE.min(t - j * CM_TILE));
    for (r, row) in buf.chunks_exact_mut(CM_TILE).enumerate() {
        // SAFETY: row r's columns j0..j0 + w lie inside x; no task writes them but this one.
        row[..w].copy_from_slice(unsafe { cols.x_row(r, t, j0, w) });
        row[w..].fill(0.0); // a ragged tile's padding (the buffer is reused)
    }
    let (mut m0, mut dl, mut rs) = ([0f32; CM_TILE], [0f32; CM_TILE], [0f32; CM_TILE]);
    cm_stats_tile(&mut m0, &mut dl, &mut rs, buf, CM_TILE, c, eps);
    for (r, row) in buf.chunks_exact_mut(CM_TILE).enumerate() {
        let (vg, vb) = (f32x8::splat(gamma[r]), f32x8::splat(beta[r]));
        for v in (0..CM_TILE).step_by(LANES) {
            let xh = (load8(&row[v..]) - load8(&m0[v..]) - load8(&dl[v..])) * load8(&rs[v..]);
            store8(&mut row[v..], fma8(xh, vg, vb));
        }
        // SAFETY: as above, for y and keep (while the row is in L1).
        unsafe { cols.put_row(r, t, j0, &mut row[..w]) };
    }
    // SAFETY: as above, for the packed output.
    unsafe { cols.put_tile(j, &buf[..c * CM_TILE], w) };
}

/// Channel-major LayerNorm: `y[:, j] = LN(x[:, j])` for every column j (statistics over the c rows).
pub fn layer_norm_cm(
    y: &mut [f32], // [c, t]
    x: &[f32],     // [c, t]
    gamma: &[f32], // [c]
    beta: &[f32],  // [c]
    eps: f32,
    c: usize,
    t: usize,
) {
    layer_norm_cm_to(NormOut::F32(y), x, gamma, beta, eps, Then::default(), c, t)
}

/// Where [`layer_norm_cm_to`] leaves its output: f32 `[c, t]`, or the bf16 tile kernels' packed input.
pub enum NormOut<'a> {
    F32(&'a mut [f32]),      // [c, t]
    Packed(&'a mut PackedX), // [c, t] packed
}

/// [`layer_norm_cm`], each normalized tile passed through `then` before it is written (the same bits as
/// [`layer_norm_cm`], then [`crate::activation::silu_inplace`] over y, then the masked columns zeroed, without
/// the extra passes), into f32 or packed: each column tile packed as it leaves the normalization, so the next
/// linear (which rounds its input to bf16 anyway) reads no f32 output back; the same values as
/// [`PackedX::pack`] of the f32 output, bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_cm_to(
    out: NormOut<'_>,
    x: &[f32],     // [c, t]
    gamma: &[f32], // [c]
    beta: &[f32],  // [c]
    eps: f32,
    then: Then<'_>,
    c: usize,
    t: usize,
) {
    assert!(x.len() >= c * t, "layer_norm_cm: x too small");
    let y = match out {
        NormOut::F32(y) => {
            assert!(y.len() >= c * t, "layer_norm_cm: y too small");
            Out::F32(y.as_mut_ptr())
        }
        NormOut::Packed(p) => Out::Packed(p.columns(c, t)),
    };
    // SAFETY: x (and y) hold c·t values (asserted) and are borrowed for the call; a sink covers [c, t].
    unsafe { layer_norm_into(x.as_ptr(), y, then, gamma, beta, eps, c, t) };
}

/// Channel-major LayerNorm in place (`x: [c, t]`).
pub fn layer_norm_cm_inplace(
    x: &mut [f32], // [c, t]
    gamma: &[f32], // [c]
    beta: &[f32],  // [c]
    eps: f32,
    c: usize,
    t: usize,
) {
    assert!(x.len() >= c * t, "layer_norm_cm_inplace: x too small");
    let p = x.as_mut_ptr();
    // SAFETY: x holds c·t values (asserted) and is borrowed for the call.
    unsafe { layer_norm_into(p, Out::F32(p), Then::default(), gamma, beta, eps, c, t) };
}

/// The entry points' common part: checks gamma, beta and `then.keep`, then runs the tiles.
///
/// # Safety
/// `x` (and `y` when f32) point to `c·t` valid values each, not otherwise accessed during the call (the same
/// buffer for in place).
#[allow(clippy::too_many_arguments)]
unsafe fn layer_norm_into(
    x: *const f32,
    y: Out,
    then: Then<'_>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    c: usize,
    t: usize,
) {
    assert!(
        gamma.len() >= c && beta.len() >= c,
        "layer_norm: gamma or beta too small"
    );
    assert!(then.keep.is_none_or(|m| m.len() >= t), "layer_norm: mask too small");
    let keep = then.keep.map_or(std::ptr::null(), |m| m.as_ptr());
    if c > 0 && t > 0 {
        layer_norm_columns(
            Columns {
                x,
                y,
                keep,
                silu: then.silu,
            },
            gamma,
            beta,
            eps,
            c,
            t,
        )
    }
}

/// f64 reference for [`layer_norm_cm`] (exact two-pass statistics per column, one rounding at the end).
pub fn layer_norm_cm_ref(
    y: &mut [f32], // [c, t]
    x: &[f32],     // [c, t]
    gamma: &[f32], // [c]
    beta: &[f32],  // [c]
    eps: f32,
    c: usize,
    t: usize,
) {
    for j in 0..t {
        let mean = (0..c).map(|r| x[r * t + j] as f64).sum::<f64>() / c as f64;
        let var = (0..c).map(|r| (x[r * t + j] as f64 - mean).powi(2)).sum::<f64>() / c as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for r in 0..c {
            let xh = (x[r * t + j] as f64 - mean) * rstd;
            y[r * t + j] = (xh * gamma[r] as f64 + beta[r] as f64) as f32;
        }
    }
}
