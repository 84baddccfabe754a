//! The weights the bf16 kernels read ([`Bf16Weights`]: bf16 rows in place, or f32 rows the tile kernels round as
//! they copy them), copies of them ([`owned_rows`]), and the prefetch of the block a task reads next
//! ([`NextPanel`]).

use super::{bf16_from_f32, bf16_from_f32_slice, bf16_to_f32, k_padded, round_up, Bf16Kernel, K_CHUNK, ROW_BLOCK};
use crate::alignedbuf::AlignedBuf;
use rayon::prelude::*;

/// bf16 weights `[n, k]`, row-major with row stride `ld`, as the tile kernels read them in place: a bf16
/// checkpoint's mapping as stored, or f32 weights rounded once at load ([`owned_rows`]), or an f32
/// checkpoint's weights as stored ([`Bf16Weights::from_f32`]), rounded as the kernel copies each block of W.
/// Nothing is packed at load: the `vdpbf16ps` kernel broadcasts value pairs from the rows, and AMX packs a
/// 16 KiB micro-panel at a time inside the matmul (module docs).
///
/// The kernels read whole blocks of [`ROW_BLOCK`] rows × [`K_CHUNK`] columns: rows up to n rounded up to 32 and
/// columns up to k rounded up to 32 must lie inside `bits`, and the columns from k on must be zero (they meet
/// x's zero padding; rows past n only feed outputs that are dropped). A dense `[n, k]` matrix qualifies when
/// [`tiles_read_in_place`]; [`owned_rows`] pads any other.
#[derive(Clone, Copy)]
pub struct Bf16Weights<'a> {
    src: Rows<'a>,
    pub n: usize,
    pub k: usize,
    ld: usize,
}

/// Where a [`Bf16Weights`]' values are.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    Bf16(&'a [u16]), // [n_pad rows of ld], ld ≥ k_pad
    F32(&'a [f32]),  // [n, k], n and k multiples of 32 (ld = k)
}

impl<'a> Bf16Weights<'a> {
    /// Panics if `bits` does not hold the blocks the kernels read, or a padding column is not zero.
    pub fn new(bits: &'a [u16] /* [n_pad, ld] */, n: usize, k: usize, ld: usize) -> Self {
        let (n_pad, k_pad) = (round_up(n, ROW_BLOCK), k_padded(k));
        assert!(
            ld >= k_pad,
            "Bf16Weights: row stride {ld} < k = {k} rounded up to {K_CHUNK}"
        );
        assert!(
            n == 0 || bits.len() >= (n_pad - 1) * ld + k_pad,
            "Bf16Weights: {} values cannot hold [{n}, {k}] padded to [{n_pad}, {k_pad}] at row stride {ld}",
            bits.len()
        );
        assert!(
            (0..n).all(|r| bits[r * ld + k..r * ld + k_pad].iter().all(|&v| v == 0)),
            "Bf16Weights: the padding columns {k}..{k_pad} must be zero"
        );
        Bf16Weights {
            src: Rows::Bf16(bits),
            n,
            k,
            ld,
        }
    }

    /// f32 weights `[n, k]` (row-major, dense) that the tile kernel rounds to bf16 (nearest even, as
    /// [`bf16_from_f32`] and [`owned_rows`]) as it copies each block (AMX: a micro-panel; AVX512-BF16: a row
    /// block's k block), so nothing is done per weight at load: the result is the same bit for bit as from
    /// [`owned_rows`]' copy. Read by the tile kernels ([`Bf16Kernel::packs_tiles`]). Panics unless
    /// [`tiles_read_in_place`]`(n, k)` and `w` holds `[n, k]`.
    pub fn from_f32(w: &'a [f32] /* [n, k] */, n: usize, k: usize) -> Self {
        assert!(
            tiles_read_in_place(n, k) && w.len() >= n * k,
            "Bf16Weights::from_f32: {} values as [{n}, {k}] (both must be multiples of {ROW_BLOCK})",
            w.len()
        );
        Bf16Weights {
            src: Rows::F32(w),
            n,
            k,
            ld: k,
        }
    }

    pub(crate) fn rows(&self) -> Rows<'a> {
        self.src
    }

    /// Row stride in values.
    pub(crate) fn ld(&self) -> usize {
        self.ld
    }

    /// `W[r, c]` as f32, after rounding to bf16 (exact), for references and tests.
    pub fn get(&self, r: usize, c: usize) -> f32 {
        match self.src {
            Rows::Bf16(bits) => bf16_to_f32(bits[r * self.ld + c]),
            Rows::F32(w) => bf16_to_f32(bf16_from_f32(w[r * self.ld + c])),
        }
    }
}

/// The block of W a thread's next task reads, where it lies (rows `r0 .. r0 + 32`, k chunks `c0 .. c0 + nc`):
/// the tile kernels fetch its 64-byte lines (`32·nc` of bf16, twice as many of f32) into L2 while their
/// current block computes, spread over its steps ([`NextPanel::fetch_until`]), so that the next task reads L2
/// instead of waiting on memory for 32 short row streams. AMX: the next micro-panel, which `pack_panel` then
/// copies (copying it inside the tile loop instead was slower: 1.07x the wall time of a 10 s bf16 run);
/// AVX512-BF16: the next row block (which `round_rows` rounds first when W is f32).
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // read by the x86-64 kernels only
pub(crate) struct NextPanel<'a> {
    pub w: &'a Bf16Weights<'a>,
    pub r0: usize,
    pub c0: usize,
    pub nc: usize,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl NextPanel<'_> {
    /// Lines per row of the panel: 64 bytes hold 32 bf16 or 16 f32 values.
    fn per_row(&self) -> usize {
        match self.w.rows() {
            Rows::Bf16(_) => self.nc,
            Rows::F32(_) => 2 * self.nc,
        }
    }

    /// Line `l`: row `l / per_row`, its `l % per_row`-th line from chunk `c0`.
    fn line(&self, l: usize) -> *const u8 {
        let (row, i) = (self.r0 + l / self.per_row(), l % self.per_row());
        let at = row * self.w.ld() + self.c0 * K_CHUNK;
        let start: *const u8 = match self.w.rows() {
            Rows::Bf16(bits) => bits[at..].as_ptr().cast(),
            Rows::F32(f) => f[at..].as_ptr().cast(),
        };
        start.wrapping_add(i * 64)
    }

    /// At step `step` of `steps` (0-based), prefetch into L2 the lines due by then, evenly spread, from line
    /// `*fetched` on; `*fetched` advances past them.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) fn fetch_until(&self, step: usize, steps: usize, fetched: &mut usize) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        let upto = (ROW_BLOCK * self.per_row() * (step + 1)).div_ceil(steps);
        for l in *fetched..upto {
            // SAFETY: a prefetch is a hint: it does not fault, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(self.line(l).cast()) };
        }
        *fetched = (*fetched).max(upto);
    }
}

/// Whether the tile kernels read a dense `[n, k]` matrix (row stride k) in place: n and k multiples of 32
/// (every projection of the real model; a copy is made otherwise, [`owned_rows`]).
pub fn tiles_read_in_place(n: usize, k: usize) -> bool {
    n.is_multiple_of(ROW_BLOCK) && k.is_multiple_of(K_CHUNK) && k > 0
}

/// Row-major weights `[n, k]` where [`owned_rows`] copies them from and where WidenF32
/// ([`linear_bf16_rows_cm`](super::linear_bf16_rows_cm)) reads them.
#[derive(Clone, Copy)]
pub enum RowsFrom<'a> {
    /// f32 `[n, k]`, rounded to bf16 (nearest even) as they are read.
    F32(&'a [f32]),
    /// bf16 `[n, k]`.
    Bf16(&'a [u16]),
}

impl RowsFrom<'_> {
    /// How many values.
    pub(crate) fn len(&self) -> usize {
        match self {
            RowsFrom::F32(w) => w.len(),
            RowsFrom::Bf16(w) => w.len(),
        }
    }
}

/// The weights `[n, k]` in a page-aligned buffer of their own, in the layout `kernel` reads: `[n, k]` for
/// [`Bf16Kernel::WidenF32`] and for tile kernels when [`tiles_read_in_place`], else zero-padded to
/// `[n_pad, k_pad]`. Returns the buffer and its row stride. Rows are filled in parallel on the rayon pool.
pub fn owned_rows(kernel: Bf16Kernel, from: RowsFrom<'_>, n: usize, k: usize) -> (AlignedBuf<u16>, usize) {
    let (rows, ld) = if kernel.packs_tiles() && !tiles_read_in_place(n, k) {
        (round_up(n, ROW_BLOCK), k_padded(k))
    } else {
        (n, k)
    };
    let len = from.len();
    assert!(len >= n * k, "owned_rows: {len} values cannot hold [{n}, {k}]");
    let mut buf = AlignedBuf::zeroed_populated(rows * ld);
    if ld > 0 {
        // Blocks of whole rows of about 64 Ki values (128 KiB written per task).
        let per = (1usize << 16).div_ceil(ld).max(1);
        buf[..n * ld].par_chunks_mut(per * ld).enumerate().for_each(|(b, dst)| {
            for (i, d) in dst.chunks_exact_mut(ld).enumerate() {
                let r = b * per + i;
                match from {
                    RowsFrom::F32(w) => bf16_from_f32_slice(&mut d[..k], &w[r * k..(r + 1) * k]),
                    RowsFrom::Bf16(w) => d[..k].copy_from_slice(&w[r * k..(r + 1) * k]),
                }
            }
        });
    }
    (buf, ld)
}
