//! x in the tile kernels' VNNI pair layout `[t_pad/16][k_pad/2][16][2]` (module docs of [`super`]): packed
//! from f32 per call ([`pack_x`]), once for several linears ([`PackedX::pack`]), left by the linear before
//! ([`PackSink`]: the feed-forward's intermediate) or by the LayerNorm before, one 32-column tile at a time
//! ([`ColumnSink`]), so that the next linear does not read an f32 input back from memory.

use super::{avx512, bf16_from_f32, k_padded, round_up, COL_BLOCK, ROW_BLOCK};
use crate::alignedbuf::AlignedBuf;
use rayon::prelude::*;

/// An input `[k, t]` of the tile kernels, already packed: by [`PackedX::pack`], by the linear that produced it
/// ([`super::linear_bf16_cm_packed_silu_into`]) or by a LayerNorm ([`crate::norm::layer_norm_cm_to`]); read
/// by [`super::linear_bf16_cm_packed`].
pub struct PackedX {
    buf: AlignedBuf<u16>, // [t_pad/16][k_pad/2][16][2]
    pub(super) k: usize,
    pub(super) t: usize,
}

impl Default for PackedX {
    fn default() -> Self {
        PackedX {
            buf: AlignedBuf::zeroed(0),
            k: 0,
            t: 0,
        }
    }
}

impl PackedX {
    /// x `[k, t]` packed in place of what this held (the buffer only grows).
    pub fn pack(&mut self, x: &[f32] /* [k, t] */, k: usize, t: usize) {
        assert!(
            x.len() >= k * t,
            "PackedX::pack: x holds {} values, not [{k}, {t}]",
            x.len()
        );
        let (k_pad, t_pad) = (k_padded(k), round_up(t, COL_BLOCK));
        self.buf.grow(t_pad * k_pad);
        pack_x(&mut self.buf, x, k, t, k_pad, t_pad);
        (self.k, self.t) = (k, t);
    }

    /// The packed values, `t_pad · k_pad` (the layout of the module docs).
    pub fn bits(&self) -> &[u16] {
        &self.buf[..round_up(self.t, COL_BLOCK) * k_padded(self.k)]
    }

    /// Room for `[k, t]`, to be filled through the returned sink, one block of 32 columns of x at a time.
    pub(crate) fn columns(&mut self, k: usize, t: usize) -> ColumnSink {
        let (ptr, pairs, _) = self.room(k, t);
        ColumnSink { ptr, pairs, k }
    }

    /// Room for `[k, t]`, to be filled through the returned sink, one row block of 32 rows of x at a time.
    pub(super) fn sink(&mut self, k: usize, t: usize) -> PackSink {
        let (ptr, pairs, t_pad) = self.room(k, t);
        PackSink { ptr, pairs, t, t_pad }
    }

    /// Holds `[k, t]` from now on, to be written by a sink: the buffer, its pair rows per column tile and t_pad.
    fn room(&mut self, k: usize, t: usize) -> (*mut u16, usize, usize) {
        let (k_pad, t_pad) = (k_padded(k), round_up(t, COL_BLOCK));
        self.buf.grow(t_pad * k_pad);
        if k == 0 {
            // No sink will write the one zero chunk a reader of k = 0 multiplies.
            self.buf[..t_pad * k_pad].fill(0);
        }
        (self.k, self.t) = (k, t);
        (self.buf.as_mut_ptr(), k_pad / 2, t_pad)
    }
}

/// x `[k, t]` f32 row-major → bf16 pair layout `[t_pad/16][k_pad/2][16][2]` (module docs).
pub(super) fn pack_x(xp: &mut [u16], x: &[f32] /* [k, t] */, k: usize, t: usize, k_pad: usize, t_pad: usize) {
    let xp = &mut xp[..t_pad * k_pad];
    let block = k_pad * COL_BLOCK; // elements per 32-column block (two column tiles)
    let pairs = k_pad / 2;
    // Each block zeroes what it does not write (the buffer is reused across calls), inside the parallel loop.
    xp.par_chunks_mut(block).enumerate().for_each(|(jb, dst)| {
        let j0 = jb * COL_BLOCK;
        pack_block(dst, pairs, x, t, k, j0, COL_BLOCK.min(t - j0));
    });
}

/// Columns `j0 .. j0 + cols` (cols ≤ 32) of x `[k, ·]` at row stride `ld` into one 32-column block `dst`
/// `[2 column tiles][pairs][16][2]`, rounded to bf16: a whole block with `vcvtne2ps2bf16` where the CPU has
/// AVX512-BF16, a ragged one (and every block elsewhere) with [`bf16_from_f32`]; k's padding rows and the
/// columns from `cols` on get zeros (the buffers are reused). What [`pack_x`] does per block and
/// [`ColumnSink::put`] per LayerNorm tile, so both give the same bits.
fn pack_block(dst: &mut [u16], pairs: usize, x: &[f32], ld: usize, k: usize, j0: usize, cols: usize) {
    if avx512::available() && cols == COL_BLOCK {
        // pack_x_block writes pair rows 0 .. ceil(k/2) of both column tiles; the rest is k's padding.
        for tile in dst.chunks_exact_mut(pairs * 32) {
            tile[k.div_ceil(2) * 32..].fill(0);
        }
        // SAFETY: AVX-512 BW/BF16 checked; pack_x_block checks that every row c < k reads x[c*ld + j0 .. + 32]
        // in bounds; `dst` is one block's two column tiles of `pairs` pair rows.
        unsafe { avx512::pack_x_block(dst.as_mut_ptr(), pairs, x, k, ld, j0) };
        return;
    }
    dst.fill(0);
    for c in 0..k {
        for (j, &v) in x[c * ld + j0..c * ld + j0 + cols].iter().enumerate() {
            dst[pair_index(pairs, c, j)] = bf16_from_f32(v);
        }
    }
}

/// Where element (row `c`, column `j`) of a 32-column block sits in its `[2 column tiles][pairs][16][2]` layout.
fn pair_index(pairs: usize, c: usize, j: usize) -> usize {
    ((j / 16) * pairs + c / 2) * 32 + (j % 16) * 2 + c % 2
}

/// A [`PackedX`] being filled by a linear's tasks, one row block of its output at a time, from several threads
/// at once: row block `rb` (rows `rb·32 ..`) owns pair rows `rb·16 .. rb·16 + 16` of every column tile, so no
/// two tasks write the same value, and nothing reads the buffer until the linear returns (the `PackedX` stays
/// mutably borrowed by the caller meanwhile).
#[derive(Clone, Copy)]
pub(super) struct PackSink {
    ptr: *mut u16, // [t_pad/16][pairs][16][2]
    pairs: usize,
    t: usize,
    t_pad: usize,
}

// SAFETY: the sink is a pointer into a buffer that outlives the linear; tasks write disjoint values (type docs).
unsafe impl Send for PackSink {}
unsafe impl Sync for PackSink {}

impl PackSink {
    /// Rows `rb·32 .. rb·32 + rows` of x from `y` `[rows, t]` at row stride `ld` (rows ≤ 32; a row block's
    /// accumulator after its epilogue) into their pair rows, rounded to bf16 as [`pack_x`] rounds; the row block's
    /// pair rows past them and the columns past t get zeros.
    pub(super) fn put(&self, rb: usize, y: &[f32], rows: usize, ld: usize) {
        let t = self.t;
        assert!(
            (1..=ROW_BLOCK).contains(&rows) && ld >= t && y.len() >= (rows - 1) * ld + t && rb * 16 + 16 <= self.pairs,
            "PackSink::put: row block {rb} of {rows} rows does not fit"
        );
        for jb in 0..self.t_pad / COL_BLOCK {
            let j0 = jb * COL_BLOCK;
            // SAFETY: column block jb < t_pad/32 and pair rows rb·16 .. rb·16 + 16 ≤ pairs lie inside the buffer
            // (`PackedX::sink` sized it); this row block alone writes them (type docs).
            let base = unsafe { self.ptr.add(jb * self.pairs * 64 + rb * 16 * 32) };
            if avx512::available() && j0 + COL_BLOCK <= t && rows == ROW_BLOCK {
                // SAFETY: AVX-512 BW/BF16 checked; it writes pair rows 0..16 of both tiles from `base`, as above.
                unsafe { avx512::pack_x_block(base, self.pairs, y, rows, ld, j0) };
                continue;
            }
            for r in 0..ROW_BLOCK {
                for jj in 0..COL_BLOCK {
                    let (j, inside) = (j0 + jj, r < rows && j0 + jj < t);
                    let v = if inside { bf16_from_f32(y[r * ld + j]) } else { 0 };
                    // SAFETY: as above (row r < 32 of this row block, column jj < 32 of this column block).
                    unsafe { *base.add(pair_index(self.pairs, r, jj)) = v };
                }
            }
        }
    }
}

/// A [`PackedX`] being filled one 32-column block at a time (a LayerNorm's column tiles), from several threads
/// at once: block `jb` owns its two column tiles, so no two tasks write the same value, and nothing reads the
/// buffer until the caller returns (the `PackedX` stays mutably borrowed meanwhile).
#[derive(Clone, Copy)]
pub(crate) struct ColumnSink {
    ptr: *mut u16, // [t_pad/16][pairs][16][2]
    pairs: usize,
    k: usize,
}

// SAFETY: the sink is a pointer into a buffer that outlives the call; tasks write disjoint blocks (type docs).
unsafe impl Send for ColumnSink {}
unsafe impl Sync for ColumnSink {}

impl ColumnSink {
    /// Columns `jb·32 .. jb·32 + w` of x from `tile` `[k, 32]` (its first w columns), rounded to bf16 exactly as
    /// [`pack_x`] rounds that block (the same instruction for a whole block, the scalar rounding for a ragged
    /// one); k's padding rows and the columns from w on get zeros.
    ///
    /// # Safety
    /// `jb` is a column block of the `[k, t]` the sink was made for, written by this call only; `w` is its width
    /// (32, or what remains of t).
    pub(crate) unsafe fn put(&self, jb: usize, tile: &[f32] /* [k, 32] */, w: usize) {
        assert!(tile.len() >= self.k * COL_BLOCK && w <= COL_BLOCK);
        // SAFETY: block jb's two column tiles, pairs·64 values, lie inside the buffer (the caller's guarantee).
        let dst = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(jb * self.pairs * 64), self.pairs * 64) };
        pack_block(dst, self.pairs, tile, COL_BLOCK, self.k, 0, w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::silu_inplace;
    use crate::norm::{layer_norm_cm, layer_norm_cm_to, NormOut, Then};

    /// A LayerNorm packing its output tile by tile (`layer_norm_cm_to` packed, through [`ColumnSink`]) leaves the bits
    /// [`PackedX::pack`] makes of the f32 LayerNorm's output, with and without masked columns (zeroed), and with
    /// SiLU fused (`Then`, f32 and packed: the bits of LayerNorm, then SiLU, then masking, as separate passes):
    /// full and
    /// ragged column blocks, odd channel counts
    /// (a half-filled last pair row), k's padding rows, one `PackedX` reused from larger cases to smaller ones
    /// (stale values would show). Runs on every target (the AVX-512 packing where the CPU has it, else scalar).
    #[test]
    fn layer_norm_packs_what_pack_makes_of_its_output() {
        let (mut direct, mut via_f32) = (PackedX::default(), PackedX::default());
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        };
        for &(c, t) in &[(96, 530), (1024, 65), (33, 33), (64, 32), (5, 31), (1, 1)] {
            let x: Vec<f32> = (0..c * t).map(|i| rand() + (i % 7) as f32).collect();
            let gamma: Vec<f32> = (0..c).map(|_| rand()).collect();
            let beta: Vec<f32> = (0..c).map(|_| rand()).collect();
            let mut y = vec![0f32; c * t];
            layer_norm_cm(&mut y, &x, &gamma, &beta, 1e-5, c, t);
            via_f32.pack(&y, c, t);
            layer_norm_cm_to(
                NormOut::Packed(&mut direct),
                &x,
                &gamma,
                &beta,
                1e-5,
                Then::default(),
                c,
                t,
            );
            assert_eq!((direct.k, direct.t), (c, t));
            assert!(
                direct.bits() == via_f32.bits(),
                "c = {c}, t = {t}: the packed LayerNorm differs"
            );
            // LayerNorm then SiLU, fused: the two passes' bits, in f32 and packed.
            let mut act = y.clone();
            silu_inplace(&mut act);
            let silu = Then { silu: true, keep: None };
            let mut fused = vec![0f32; c * t];
            layer_norm_cm_to(NormOut::F32(&mut fused), &x, &gamma, &beta, 1e-5, silu, c, t);
            assert!(
                fused.iter().zip(&act).all(|(a, b)| a.to_bits() == b.to_bits()),
                "c = {c}, t = {t}: the fused LayerNorm + SiLU differs"
            );
            via_f32.pack(&act, c, t);
            layer_norm_cm_to(NormOut::Packed(&mut direct), &x, &gamma, &beta, 1e-5, silu, c, t);
            assert!(
                direct.bits() == via_f32.bits(),
                "c = {c}, t = {t}: the packed LayerNorm + SiLU differs"
            );
            // With columns masked (every third, and the last): zeroed in y, then packed.
            let keep: Vec<bool> = (0..t).map(|j| j % 3 != 1 && j + 1 < t).collect();
            for (i, v) in y.iter_mut().enumerate() {
                if !keep[i % t] {
                    *v = 0.0;
                }
            }
            via_f32.pack(&y, c, t);
            let masked = Then {
                silu: false,
                keep: Some(&keep),
            };
            layer_norm_cm_to(NormOut::Packed(&mut direct), &x, &gamma, &beta, 1e-5, masked, c, t);
            assert!(
                direct.bits() == via_f32.bits(),
                "c = {c}, t = {t}: the masked packed LayerNorm differs"
            );
            layer_norm_cm_to(NormOut::F32(&mut fused), &x, &gamma, &beta, 1e-5, masked, c, t);
            assert!(
                fused.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()),
                "c = {c}, t = {t}: the masked LayerNorm differs"
            );
        }
    }
}
