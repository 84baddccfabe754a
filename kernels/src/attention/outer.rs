//! The fused attention's three matmuls as one shape: `out[a, r] = (accumulate ? out[a, r] : 0) + scale · Σ_p
//! b[a, p] · x[p, r]`, where each row of `x` is a vector over the queries `r` (contiguous, a multiple of 16
//! long) and `b` is read one value at a time through two strides and broadcast:
//! - scores `Sᵀ[j, r] = (k_j · q_r) / √dh`: a = key, p = channel, b = the keys in place (channel-major: key
//!   stride 1, channel stride ldk), x = the task's query block;
//! - the distance bias `Pᵀ[b, r] = (E_b · q_r) / √dh`: a = bucket, b = E in place (`[nb, dh]`);
//! - the values `accᵀ[c, r] += Σ_j v[c, j] · Sᵀ[j, r]`: a = channel, p = key, b = the values in place, x = the
//!   probabilities.
//!
//! So no operand is packed or transposed, and every result row is a run of queries: the softmax runs down the
//! columns and the output leaves channel-major, as the encoder holds it. Register block (AVX-512): 6 rows of `a`
//! × 64 queries, 24 accumulators, 4 loads and 6 broadcasts per 24 FMAs (4 × 64 ran the kernel bench's T = 500
//! call ~9 % slower); f32x8 elsewhere: 4 × 16. In blocks of [`P_BLOCK`] values of p, so that a block of x stays
//! in L1 while every row of `a` passes over it (32 and 128 measured the same).

use crate::math::{fma8, load8, store8};
use wide::f32x8;

/// Values of p per pass over x: x's block (`P_BLOCK × r` f32, 32 KiB at r = 128) stays in L1. Each pass adds its
/// partial sum to `out` (`scale ·` it: so a call with p > `P_BLOCK` sums in that order).
pub const P_BLOCK: usize = 64;

/// A matrix read in place one value at a time: element `(a, p)` at `data[a·sa + p·sp]`.
#[derive(Clone, Copy)]
pub struct Strided<'a> {
    pub data: &'a [f32],
    pub sa: usize,
    pub sp: usize,
}

/// `out[a, r] (+)= scale · Σ_p b[a, p] · x[p, r]` (module docs) for `a < m`, `p < p_len`, `r < r_len`;
/// `r_len` a multiple of 16. AVX-512 where the CPU has it, else f32x8; both sum p in order with one fused
/// multiply-add per term, so they give the same bits.
#[allow(clippy::too_many_arguments)]
pub fn outer_acc(
    out: &mut [f32], // [m, ldo]
    ldo: usize,
    b: Strided<'_>, // (m, p_len)
    x: &[f32],      // [p_len, ldx]
    ldx: usize,
    m: usize,
    p_len: usize,
    r_len: usize,
    scale: f32,
    accumulate: bool,
) {
    assert!(
        r_len.is_multiple_of(16) && ldo >= r_len && ldx >= r_len,
        "outer_acc: r = {r_len}"
    );
    if m == 0 || r_len == 0 {
        return;
    }
    assert!(out.len() >= (m - 1) * ldo + r_len, "outer_acc: out too small");
    if p_len == 0 {
        if !accumulate {
            out.chunks_mut(ldo).take(m).for_each(|row| row[..r_len].fill(0.0));
        }
        return;
    }
    assert!(x.len() >= (p_len - 1) * ldx + r_len, "outer_acc: x too small");
    assert!(
        b.data.len() > (m - 1) * b.sa + (p_len - 1) * b.sp,
        "outer_acc: b too small"
    );
    for p0 in (0..p_len).step_by(P_BLOCK) {
        let pn = P_BLOCK.min(p_len - p0);
        let pass = Pass {
            b: &b.data[p0 * b.sp..],
            sa: b.sa,
            sp: b.sp,
            x: &x[p0 * ldx..],
            ldx,
            m,
            pn,
            r_len,
            scale,
            accumulate: accumulate || p0 > 0,
        };
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::has_avx512f() {
            // SAFETY: AVX-512 F checked; the asserts above bound every index the tiles touch.
            unsafe { avx512::pass(out, ldo, &pass) };
            continue;
        }
        portable_pass(out, ldo, &pass);
    }
}

/// One pass of [`outer_acc`]: its operands for p block `p < pn`.
#[derive(Clone, Copy)]
struct Pass<'a> {
    b: &'a [f32], // (m, pn) at strides (sa, sp)
    sa: usize,
    sp: usize,
    x: &'a [f32], // [pn, ldx]
    ldx: usize,
    m: usize,
    pn: usize,
    r_len: usize,
    scale: f32,
    accumulate: bool,
}

/// A [`Pass`] with f32x8 lanes: tiles of 4 rows × 16 queries, then single rows for what remains of m.
fn portable_pass(out: &mut [f32] /* [m, ldo] */, ldo: usize, pass: &Pass<'_>) {
    let Pass {
        b,
        sa,
        sp,
        x,
        ldx,
        m,
        pn,
        r_len,
        ..
    } = *pass;
    // The pass's extent checked once, so the tiles read b and x without a check per load: the checks were a third
    // of the loop's instructions, and dropping them ran this kernel 1.4–1.7× faster (AMD EPYC Zen 3, one thread,
    // paired against the checked loop).
    // (outer_acc makes passes only for m, pn ≥ 1 and r_len ≥ 16.)
    assert!(
        m > 0 && pn > 0 && b.len() > (m - 1) * sa + (pn - 1) * sp && x.len() >= (pn - 1) * ldx + r_len,
        "outer_acc: pass out of bounds"
    );
    let mut a0 = 0;
    while a0 < m {
        let rows = if m - a0 >= 4 { 4 } else { 1 };
        for r0 in (0..r_len).step_by(16) {
            // SAFETY: a0 + rows ≤ m and r0 + 16 ≤ r_len (a multiple of 16): inside the extent asserted above.
            unsafe {
                match rows {
                    4 => portable_tile::<4>(out, ldo, pass, a0, r0),
                    _ => portable_tile::<1>(out, ldo, pass, a0, r0),
                }
            }
        }
        a0 += rows;
    }
}

/// Rows `a0 .. a0 + A` × queries `r0 .. r0 + 16` of a [`Pass`] on f32x8 lanes: p in order, one fused
/// multiply-add per term.
///
/// # Safety
/// `a0 + A ≤ m`, `r0 + 16 ≤ r_len`, and the pass's `b` and `x` cover its whole extent ([`portable_pass`]
/// asserts it).
#[inline(always)]
unsafe fn portable_tile<const A: usize>(
    out: &mut [f32], /* [m, ldo] */
    ldo: usize,
    pass: &Pass<'_>,
    a0: usize,
    r0: usize,
) {
    let Pass {
        b,
        sa,
        sp,
        x,
        ldx,
        pn,
        scale,
        accumulate,
        ..
    } = *pass;
    let mut acc = [[f32x8::ZERO; 2]; A];
    let (bp, xp) = (b.as_ptr(), x.as_ptr());
    for p in 0..pn {
        let xr = xp.add(p * ldx + r0);
        let xv = [
            f32x8::from(*(xr as *const [f32; 8])),
            f32x8::from(*(xr.add(8) as *const [f32; 8])),
        ];
        for (a, acc) in acc.iter_mut().enumerate() {
            let bv = f32x8::splat(*bp.add((a0 + a) * sa + p * sp));
            acc[0] = fma8(bv, xv[0], acc[0]);
            acc[1] = fma8(bv, xv[1], acc[1]);
        }
    }
    for (a, acc) in acc.iter().enumerate() {
        let o = &mut out[(a0 + a) * ldo + r0..(a0 + a) * ldo + r0 + 16];
        for (h, v) in acc.iter().enumerate() {
            let mut y = *v * f32x8::splat(scale);
            if accumulate {
                y += load8(&o[8 * h..]);
            }
            store8(&mut o[8 * h..], y);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// A [`super::Pass`] on zmm registers: tiles of 6 rows × 64 queries, then × 16 for what remains of r;
    /// 4 rows, then single rows, for what remains of m.
    ///
    /// # Safety
    /// AVX-512 F; the bounds [`super::outer_acc`] asserts.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pass(out: &mut [f32] /* [m, ldo] */, ldo: usize, pass: &super::Pass<'_>) {
        let super::Pass {
            b,
            sa,
            sp,
            x,
            ldx,
            m,
            pn,
            r_len,
            scale,
            accumulate,
        } = *pass;
        let (o, bp, xp) = (out.as_mut_ptr(), b.as_ptr(), x.as_ptr());
        let mut a0 = 0;
        while a0 < m {
            let rows = match m - a0 {
                6.. => 6,
                4 | 5 => 4,
                _ => 1,
            };
            let mut r0 = 0;
            while r0 < r_len {
                let wide = r_len - r0 >= 64;
                let (o, b, x) = (o.add(a0 * ldo + r0), bp.add(a0 * sa), xp.add(r0));
                match (rows, wide) {
                    (6, true) => tile::<6, 4>(o, ldo, b, sa, sp, x, ldx, pn, scale, accumulate),
                    (6, false) => tile::<6, 1>(o, ldo, b, sa, sp, x, ldx, pn, scale, accumulate),
                    (4, true) => tile::<4, 4>(o, ldo, b, sa, sp, x, ldx, pn, scale, accumulate),
                    (4, false) => tile::<4, 1>(o, ldo, b, sa, sp, x, ldx, pn, scale, accumulate),
                    (_, true) => tile::<1, 4>(o, ldo, b, sa, sp, x, ldx, pn, scale, accumulate),
                    (_, false) => tile::<1, 1>(o, ldo, b, sa, sp, x, ldx, pn, scale, accumulate),
                }
                r0 += if wide { 64 } else { 16 };
            }
            a0 += rows;
        }
    }

    /// `A` rows × `V`·16 queries: `o[a, ·] (+)= scale · Σ_p b[a·sa + p·sp] · x[p·ldx + ·]`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const A: usize, const V: usize>(
        o: *mut f32, // [A, ldo]
        ldo: usize,
        b: *const f32, // (A, pn) at strides (sa, sp)
        sa: usize,
        sp: usize,
        x: *const f32, // [pn, ldx]
        ldx: usize,
        pn: usize,
        scale: f32,
        accumulate: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; A];
        for p in 0..pn {
            let mut xv = [_mm512_setzero_ps(); V];
            for (v, xv) in xv.iter_mut().enumerate() {
                *xv = _mm512_loadu_ps(x.add(p * ldx + 16 * v));
            }
            for (a, acc) in acc.iter_mut().enumerate() {
                let bv = _mm512_set1_ps(*b.add(a * sa + p * sp));
                for v in 0..V {
                    acc[v] = _mm512_fmadd_ps(bv, xv[v], acc[v]);
                }
            }
        }
        let s = _mm512_set1_ps(scale);
        for (a, acc) in acc.iter().enumerate() {
            for (v, &acc) in acc.iter().enumerate() {
                let at = o.add(a * ldo + 16 * v);
                let mut y = _mm512_mul_ps(acc, s);
                if accumulate {
                    y = _mm512_add_ps(_mm512_loadu_ps(at), y);
                }
                _mm512_storeu_ps(at, y);
            }
        }
    }
}

/// Scalar reference for [`outer_acc`]: each sum in f64, the scale and the old value applied once.
#[allow(clippy::too_many_arguments)]
pub fn outer_acc_ref(
    out: &mut [f32], // [m, ldo]
    ldo: usize,
    b: Strided<'_>,
    x: &[f32], // [p_len, ldx]
    ldx: usize,
    m: usize,
    p_len: usize,
    r_len: usize,
    scale: f32,
    accumulate: bool,
) {
    for a in 0..m {
        for r in 0..r_len {
            let s: f64 = (0..p_len)
                .map(|p| b.data[a * b.sa + p * b.sp] as f64 * x[p * ldx + r] as f64)
                .sum();
            let old = if accumulate { out[a * ldo + r] as f64 } else { 0.0 };
            out[a * ldo + r] = (old + scale as f64 * s) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The f32x8 pass gives the bits of [`outer_acc`] (the AVX-512 pass where the CPU has it) on shapes that
    /// leave every remainder path (m mod 6 and 4, r mod 64, p past one block), with both strides of b (row-major
    /// and in place as keys), accumulating or not. Against the f64 reference: kernels/tests/attention_colops.rs.
    #[test]
    fn the_f32x8_pass_is_the_avx512_pass_bit_for_bit() {
        for &(m, p, r, sa, sp, accumulate) in &[
            (7, 64, 128, 1, 200, false),
            (64, 150, 80, 300, 1, true),
            (1, 1, 16, 1, 1, false),
            (5, 130, 64, 140, 1, true),
            (9, 3, 32, 1, 9, false),
        ] {
            let (ldo, ldx) = (r + 3, r + 5);
            let b = values((m - 1) * sa + p * sp + 1, 1);
            let x = values(p * ldx, 2);
            let old = values(m * ldo, 3);
            let mut got = old.clone();
            outer_acc(
                &mut got,
                ldo,
                Strided { data: &b, sa, sp },
                &x,
                ldx,
                m,
                p,
                r,
                0.125,
                accumulate,
            );
            let mut portable = old.clone();
            for p0 in (0..p).step_by(P_BLOCK) {
                let pass = Pass {
                    b: &b[p0 * sp..],
                    sa,
                    sp,
                    x: &x[p0 * ldx..],
                    ldx,
                    m,
                    pn: P_BLOCK.min(p - p0),
                    r_len: r,
                    scale: 0.125,
                    accumulate: accumulate || p0 > 0,
                };
                portable_pass(&mut portable, ldo, &pass);
            }
            assert!(
                portable.iter().zip(&got).all(|(u, v)| u.to_bits() == v.to_bits()),
                "m{m} p{p} r{r}: the f32x8 pass differs"
            );
        }
    }
}
