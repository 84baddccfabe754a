//! Row kernels of the fused attention's online softmax, and a block transpose (the encoder's time-major ↔
//! channel-major layout changes); SIMD, each with its scalar reference beside it.

#[cfg(target_arch = "x86_64")]
use crate::math::exp_f32x16;
use crate::math::exp_f32x8;
use wide::f32x8;

fn load8(x: &[f32]) -> f32x8 {
    let mut a = [0f32; 8];
    a.copy_from_slice(&x[..8]);
    f32x8::new(a)
}

/// Largest value of `x` (`-∞` for an empty slice). NaN-free inputs assumed (scores of finite tensors).
/// Four independent running maxima (a max does not depend on the order), so the loop is not one chain of
/// `vmaxps` latencies.
pub fn max_of(x: &[f32] /* [n] */) -> f32 {
    let mut m8 = [f32x8::splat(f32::NEG_INFINITY); 4];
    let mut blocks = x.chunks_exact(32);
    for c in &mut blocks {
        for (u, m) in m8.iter_mut().enumerate() {
            *m = m.fast_max(load8(&c[u * 8..]));
        }
    }
    let mut chunks = blocks.remainder().chunks_exact(8);
    for c in &mut chunks {
        m8[0] = m8[0].fast_max(load8(c));
    }
    let m = (m8[0].fast_max(m8[1])).fast_max(m8[2].fast_max(m8[3]));
    let m = m.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max);
    chunks.remainder().iter().copied().fold(m, f32::max)
}

/// Scalar reference for [`max_of`].
pub fn max_of_ref(x: &[f32] /* [n] */) -> f32 {
    x.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `x[j] = exp(x[j] - m)` in place; returns `Σ_j x[j]` (after the update). `x[j] = -∞` gives 0.
///
/// Eight lanes at a time ([`exp_f32x8`]) into one f32x8 sum; on AVX-512 cores sixteen at a time
/// (`exp16_sub_sum`), with the same exp and the same order of additions, so the result is the same bit for
/// bit either way.
pub fn exp_sub_sum(x: &mut [f32] /* [n] */, m: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    let (acc, done) = if crate::cpu::has_avx512f() {
        // SAFETY: AVX-512 F checked.
        unsafe { exp16_sub_sum(x, m) }
    } else {
        (f32x8::ZERO, 0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (acc, done) = (f32x8::ZERO, 0);
    exp8_sub_sum(&mut x[done..], m, acc)
}

/// The 8-lane loop of [`exp_sub_sum`], continuing the f32x8 sum `acc`.
fn exp8_sub_sum(x: &mut [f32] /* [n] */, m: f32, mut acc: f32x8) -> f32 {
    let m8 = f32x8::splat(m);
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        let e = exp_f32x8(load8(c) - m8);
        acc += e;
        c.copy_from_slice(&e.to_array());
    }
    let mut sum = acc.reduce_add();
    let rem = chunks.into_remainder();
    if !rem.is_empty() {
        // Ragged tail through the same vector exp, so every element gets the same rounding.
        let mut a = [f32::NEG_INFINITY; 8];
        a[..rem.len()].copy_from_slice(rem);
        let e = exp_f32x8(f32x8::new(a) - m8).to_array();
        rem.copy_from_slice(&e[..rem.len()]);
        sum += e[..rem.len()].iter().sum::<f32>();
    }
    sum
}

/// The AVX-512 part of [`exp_sub_sum`]: whole 16-lane blocks of `x`, each added to the f32x8 sum as its low
/// then its high eight lanes (the order the 8-lane loop adds them in). Returns that sum and how many elements
/// it did (the rest is left to the 8-lane loop).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp16_sub_sum(x: &mut [f32] /* [n] */, m: f32) -> (f32x8, usize) {
    use std::arch::x86_64::*;
    let m16 = _mm512_set1_ps(m);
    let mut acc = _mm256_setzero_ps();
    let done = x.len() - x.len() % 16;
    for c in x[..done].chunks_exact_mut(16) {
        // SAFETY: c holds 16 f32; unaligned loads and stores.
        let e = exp_f32x16(_mm512_sub_ps(unsafe { _mm512_loadu_ps(c.as_ptr()) }, m16));
        unsafe { _mm512_storeu_ps(c.as_mut_ptr(), e) };
        acc = _mm256_add_ps(acc, _mm512_castps512_ps256(e));
        acc = _mm256_add_ps(acc, _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e))));
    }
    let mut lanes = [0f32; 8];
    // SAFETY: 8 f32 of room.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    (f32x8::from(lanes), done)
}

/// Scalar reference for [`exp_sub_sum`] (std `exp`, f64 sum).
pub fn exp_sub_sum_ref(x: &mut [f32] /* [n] */, m: f32) -> f32 {
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - m).exp();
        sum += *v as f64;
    }
    sum as f32
}

/// `dst[p, c] = src[c, p]` for `c < rows`, `p < cols`: 8×8 tiles through registers, scalar edges.
pub fn transpose_block(
    dst: &mut [f32], // [cols, ≥ rows], row stride ldd
    ldd: usize,
    src: &[f32], // [rows, ≥ cols], row stride lds
    lds: usize,
    rows: usize,
    cols: usize,
) {
    let (r8, c8) = (rows - rows % 8, cols - cols % 8);
    for c in (0..r8).step_by(8) {
        for p in (0..c8).step_by(8) {
            let tile: [f32x8; 8] = std::array::from_fn(|u| load8(&src[(c + u) * lds + p..]));
            for (u, row) in f32x8::transpose(tile).iter().enumerate() {
                dst[(p + u) * ldd + c..(p + u) * ldd + c + 8].copy_from_slice(&row.to_array());
            }
        }
        for u in c..c + 8 {
            for p in c8..cols {
                dst[p * ldd + u] = src[u * lds + p];
            }
        }
    }
    for u in r8..rows {
        for p in 0..cols {
            dst[p * ldd + u] = src[u * lds + p];
        }
    }
}

/// Scalar reference for [`transpose_block`].
pub fn transpose_block_ref(
    dst: &mut [f32], // [cols, ≥ rows], row stride ldd
    ldd: usize,
    src: &[f32], // [rows, ≥ cols], row stride lds
    lds: usize,
    rows: usize,
    cols: usize,
) {
    for c in 0..rows {
        for p in 0..cols {
            dst[p * ldd + c] = src[c * lds + p];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX-512 path (where this CPU has it) gives the 8-lane path's values and sum bit for bit.
    #[test]
    fn exp_sub_sum_is_the_8_lane_loop_bit_for_bit() {
        let mut seed = 12345u64;
        for n in [0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 100, 256, 1000] {
            for _ in 0..20 {
                let x: Vec<f32> = (0..n)
                    .map(|i| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let u = (seed >> 40) as f32 / (1u64 << 24) as f32;
                        if i % 13 == 5 {
                            f32::NEG_INFINITY
                        } else {
                            -120.0 * u + 5.0
                        }
                    })
                    .collect();
                let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max).max(0.0);
                let (mut a, mut b) = (x.clone(), x.clone());
                let sa = exp_sub_sum(&mut a, m);
                let sb = exp8_sub_sum(&mut b, m, f32x8::ZERO);
                assert_eq!(sa.to_bits(), sb.to_bits(), "sum, n = {n}");
                assert!(
                    a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "values, n = {n}"
                );
            }
        }
    }
}
