//! AVX512-BF16 microkernel (`vdpbf16ps`) over the layouts of [`super`]: 8 weight rows × 32 columns per
//! register tile (16 f32 accumulators), weight pairs broadcast from W's rows, x pairs loaded from the
//! VNNI-packed block.

#[cfg(target_arch = "x86_64")]
use super::{NextPanel, COL_BLOCK, K_CHUNK, ROW_BLOCK};
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::sync::OnceLock;

pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// How many f32 flops a `vdpbf16ps` stream delivers per flop of a `vfmadd231ps` stream on this core (16
/// independent accumulators each, operands in registers; best of 5 alternating runs of ~0.1 ms). About 2 on
/// cores that run the bf16 dot product at the FMA's instruction rate (Zen 4: 64 flops per instruction against
/// 32), about 0.5 on Intel cores without AMX that run it at a quarter of the FMA's instruction rate (measured
/// on this project's 2-vCPU Xeon). Measured once per process; `None` without AVX512-BF16.
pub fn dot_vs_fma() -> Option<f64> {
    static RATIO: OnceLock<Option<f64>> = OnceLock::new();
    *RATIO.get_or_init(|| {
        if !available() {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let time = |f: unsafe fn(usize)| {
                let t = std::time::Instant::now();
                // SAFETY: AVX512-BF16 checked above; the loops touch registers only.
                unsafe { f(4096) };
                t.elapsed().as_secs_f64()
            };
            let (mut dot, mut fma) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..5 {
                dot = dot.min(time(dot_loop));
                fma = fma.min(time(fma_loop));
            }
            // Same instruction count; a vdpbf16ps does 64 flops, a vfmadd231ps 32.
            Some(2.0 * fma / dot)
        }
        #[cfg(not(target_arch = "x86_64"))]
        None
    })
}

/// f32 flops per iteration of [`peak_stream`]: 16 `vdpbf16ps`, each 16 lanes × 2 multiply-adds.
pub(super) const PEAK_FLOPS_PER_ITER: f64 = (16 * 64) as f64;

/// `iters` × 16 independent `vdpbf16ps` (registers only): the instruction's ceiling the kernel is measured
/// against ([`super::Bf16Kernel::instruction_peak`]).
///
/// # Safety
/// [`available`] returned true.
pub(super) unsafe fn peak_stream(iters: usize) {
    #[cfg(target_arch = "x86_64")]
    dot_loop(iters);
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX512-BF16 is x86-64 only (iters {iters})")
}

#[cfg(target_arch = "x86_64")]
macro_rules! sixteen {
    ($ins:literal) => {
        concat!(
            $ins,
            " zmm0, zmm16, zmm17\n",
            $ins,
            " zmm1, zmm16, zmm17\n",
            $ins,
            " zmm2, zmm16, zmm17\n",
            $ins,
            " zmm3, zmm16, zmm17\n",
            $ins,
            " zmm4, zmm16, zmm17\n",
            $ins,
            " zmm5, zmm16, zmm17\n",
            $ins,
            " zmm6, zmm16, zmm17\n",
            $ins,
            " zmm7, zmm16, zmm17\n",
            $ins,
            " zmm8, zmm16, zmm17\n",
            $ins,
            " zmm9, zmm16, zmm17\n",
            $ins,
            " zmm10, zmm16, zmm17\n",
            $ins,
            " zmm11, zmm16, zmm17\n",
            $ins,
            " zmm12, zmm16, zmm17\n",
            $ins,
            " zmm13, zmm16, zmm17\n",
            $ins,
            " zmm14, zmm16, zmm17\n",
            $ins,
            " zmm15, zmm16, zmm17\n"
        )
    };
}

macro_rules! throughput_loop {
    ($name:ident, $features:literal, $ins:literal) => {
        /// `iters` × 16 independent instructions on zeroed registers (throughput, not latency).
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(iters: usize) {
            std::arch::asm!(
                "vpxord zmm16, zmm16, zmm16",
                "vpxord zmm17, zmm17, zmm17",
                "2:",
                sixteen!($ins),
                "dec {n}",
                "jnz 2b",
                n = inout(reg) iters => _,
                out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _,
                out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _, out("zmm16") _, out("zmm17") _,
                options(nomem, nostack),
            );
        }
    };
}

throughput_loop!(dot_loop, "avx512f,avx512bf16", "vdpbf16ps");
throughput_loop!(fma_loop, "avx512f", "vfmadd231ps");

/// `acc[32, t_pad] (+)= W[panel rows, chunks c0..c1] · x[chunks c0..c1]` for one 32-row block, `next`'s lines
/// prefetched over its steps.
///
/// # Safety
/// AVX512-F/BW/BF16 available; `panel` is 32 rows of W at stride `ld`, each `chunks·32` values long (the
/// last one may end there), `xp` the packed x with `chunks·16` pair rows per column block and `t_pad / 32`
/// blocks, `acc` ≥ 32·t_pad.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn row_block(
    acc: &mut [f32], // [32, t_pad]
    panel: &[u16],   // [32 rows at stride ld][chunks*32]
    ld: usize,
    xp: &[u16], // [t_pad/16][chunks*16][16][2]
    chunks: usize,
    t_pad: usize,
    c0: usize, // k chunks c0..c1 of this pass; c0 == 0 starts from zero, else adds to acc
    c1: usize,
    next: Option<NextPanel<'_>>,
) {
    let (pairs, mut fetched) = (chunks * 16, 0);
    debug_assert!(panel.len() >= 31 * ld + chunks * K_CHUNK && acc.len() >= 32 * t_pad);
    debug_assert!(xp.len() >= (t_pad / COL_BLOCK) * pairs * 64);
    {
        for jb in 0..t_pad / COL_BLOCK {
            let xb = xp.as_ptr().add(jb * pairs * 64);
            for g in 0..4 {
                if let Some(p) = next {
                    p.fetch_until(jb * 4 + g, t_pad / COL_BLOCK * 4, &mut fetched);
                }
                // Rows 8g..8g+8 of the block.
                let wbase = panel.as_ptr().add(g * 8 * ld);
                let ab = acc.as_mut_ptr().add(g * 8 * t_pad + jb * COL_BLOCK);
                let mut a = [_mm512_setzero_ps(); 16];
                if c0 > 0 {
                    for r in 0..8 {
                        a[2 * r] = _mm512_loadu_ps(ab.add(r * t_pad));
                        a[2 * r + 1] = _mm512_loadu_ps(ab.add(r * t_pad + 16));
                    }
                }
                for c in c0..c1 {
                    let wc = wbase.add(c * K_CHUNK);
                    // Pair rows of the two 16-column tiles of block jb.
                    let xc = xb.add(c * 16 * 32);
                    for pp in 0..16 {
                        let x0: __m512bh = std::mem::transmute(_mm512_loadu_si512(xc.add(pp * 32) as *const _));
                        let x1: __m512bh =
                            std::mem::transmute(_mm512_loadu_si512(xc.add(pairs * 32 + pp * 32) as *const _));
                        for r in 0..8 {
                            let wv: __m512bh = std::mem::transmute(_mm512_set1_epi32(
                                (wc.add(r * ld + pp * 2) as *const i32).read_unaligned(),
                            ));
                            a[2 * r] = _mm512_dpbf16_ps(a[2 * r], wv, x0);
                            a[2 * r + 1] = _mm512_dpbf16_ps(a[2 * r + 1], wv, x1);
                        }
                    }
                }
                for r in 0..8 {
                    _mm512_storeu_ps(ab.add(r * t_pad), a[2 * r]);
                    _mm512_storeu_ps(ab.add(r * t_pad + 16), a[2 * r + 1]);
                }
            }
        }
    }
}

/// Pack one full 32-column block of x `[k, t]` (columns j0..j0+32) into the VNNI pair layout, rounding to
/// bf16 (nearest even) with `vcvtne2ps2bf16`: pair row p of column tile h (h < 2) at `dst + (h·pairs + p)·32`,
/// for p < ceil(k/2). Nothing else is written.
///
/// # Safety
/// AVX512-F/BW/BF16 available; `j0 + 32 ≤ t`, `x.len() ≥ k·t`; `dst` valid for writes of those pair rows (32
/// values each), and no other reference to them alive.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub unsafe fn pack_x_block(dst: *mut u16, pairs: usize, x: &[f32], k: usize, t: usize, j0: usize) {
    assert!(j0 + COL_BLOCK <= t && x.len() >= k * t && pairs >= k.div_ceil(2));
    // Interleave [a0..a15 | b0..b15] into [a0 b0 a1 b1 ...].
    let idx = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
        16, 0,
    );
    let xp = x.as_ptr();
    for p in 0..k.div_ceil(2) {
        let ra = xp.add(2 * p * t + j0);
        for h in 0..2 {
            let a = _mm512_loadu_ps(ra.add(16 * h));
            let b = if 2 * p + 1 < k {
                _mm512_loadu_ps(ra.add(t + 16 * h))
            } else {
                _mm512_setzero_ps()
            };
            let ab: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(b, a));
            let v = _mm512_permutexvar_epi16(idx, ab);
            _mm512_storeu_si512(dst.add((h * pairs + p) * 32) as *mut _, v);
        }
    }
}

/// `dst[i] = bf16_from_f32(src[i])` for 32 values (round to nearest even, NaN kept quiet), bit for bit the
/// scalar [`super::bf16_from_f32_slice`] (which is the reference): integer rounding, not `vcvtne2ps2bf16`,
/// which flushes denormals to zero. AMX's micro-panel copy of f32 weights.
///
/// # Safety
/// AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub unsafe fn round_32(dst: &mut [u16] /* [32] */, src: &[f32] /* [32] */) {
    assert!(dst.len() == 32 && src.len() == 32);
    let (one, half) = (_mm512_set1_epi32(1), _mm512_set1_epi32(0x7fff));
    let quiet = _mm512_set1_epi32(0x0040_0000);
    for h in 0..2 {
        let v = _mm512_loadu_ps(src.as_ptr().add(16 * h));
        let b = _mm512_castps_si512(v);
        let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(b), one);
        let rounded = _mm512_add_epi32(b, _mm512_add_epi32(half, lsb));
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        let r = _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(b, quiet));
        let bits = _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(r));
        _mm256_storeu_si256(dst.as_mut_ptr().add(16 * h) as *mut __m256i, bits);
    }
}

/// Rows `r0 .. r0 + 32` of f32 weights `w` `[n, k]`, k chunks `c0 .. c1`, rounded to bf16 ([`round_32`]) into
/// the same columns of `dst`: the row block [`row_block`] reads when the weights are f32
/// ([`super::Bf16Weights::from_f32`]), made per task so that nothing is rounded at load.
///
/// # Safety
/// AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn round_rows(
    dst: &mut [u16], // [32, k]
    w: &[f32],       // [n, k]
    k: usize,
    r0: usize,
    c0: usize,
    c1: usize,
) {
    let cols = c0 * K_CHUNK..c1 * K_CHUNK;
    for (r, d) in dst[..ROW_BLOCK * k].chunks_exact_mut(k).enumerate() {
        let s = &w[(r0 + r) * k..(r0 + r + 1) * k];
        for (d, s) in d[cols.clone()]
            .chunks_exact_mut(K_CHUNK)
            .zip(s[cols.clone()].chunks_exact(K_CHUNK))
        {
            round_32(d, s);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn round_rows(_: &mut [u16], _: &[f32], _: usize, _: usize, _: usize, _: usize) {
    unreachable!("AVX-512 is x86-64 only")
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub unsafe fn row_block(
    _: &mut [f32],
    _: &[u16],
    _: usize,
    _: &[u16],
    _: usize,
    _: usize,
    _: usize,
    _: usize,
    _: Option<super::NextPanel<'_>>,
) {
    unreachable!("AVX512-BF16 is x86-64 only")
}

#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn pack_x_block(_: *mut u16, _: usize, _: &[f32], _: usize, _: usize, _: usize) {
    unreachable!("AVX512-BF16 is x86-64 only")
}
