//! Column kernels of the fused attention's online softmax (its score blocks are `[keys, queries]`: each query's
//! scores run down a column), and a block transpose (the encoder's time-major ↔ channel-major layout changes);
//! SIMD, each with its scalar reference beside it.

#[cfg(target_arch = "x86_64")]
use crate::math::exp_f32x16;
use crate::math::{exp_f32x8, load8, store8, LANES};
use wide::f32x8;

/// `m[r] = max(m[r], max_j s[j, r])` over the rows `j < n` of `s` `[n, ld]`, for `r < m.len()` (a multiple of 8;
/// rows are keys, columns queries). NaN-free inputs assumed (scores of finite tensors).
pub fn col_max(m: &mut [f32] /* [r] */, s: &[f32] /* [n, ld] */, ld: usize, n: usize) {
    let r_len = m.len();
    assert!(r_len.is_multiple_of(LANES) && ld >= r_len && (n == 0 || s.len() >= (n - 1) * ld + r_len));
    for r0 in (0..r_len).step_by(LANES) {
        let mut v = load8(&m[r0..]);
        for j in 0..n {
            v = v.fast_max(load8(&s[j * ld + r0..]));
        }
        store8(&mut m[r0..], v);
    }
}

/// Scalar reference for [`col_max`].
pub fn col_max_ref(m: &mut [f32] /* [r] */, s: &[f32] /* [n, ld] */, ld: usize, n: usize) {
    for (r, m) in m.iter_mut().enumerate() {
        *m = (0..n).map(|j| s[j * ld + r]).fold(*m, f32::max);
    }
}

/// `s[j, r] = exp(s[j, r] - m[r])` in place for the rows `j < n` of `s` `[n, ld]`, and `sum[r] = Σ_j s[j, r]`
/// (after the update, j in order), for `r < m.len()` (a multiple of 8). `s[j, r] = -∞` gives 0.
///
/// Eight lanes at a time ([`exp_f32x8`]); on AVX-512 cores sixteen (`exp_sub_cols16`), with the same exp and
/// each lane's sum in the same order, so the result is the same bit for bit either way.
pub fn exp_sub_cols(s: &mut [f32] /* [n, ld] */, ld: usize, n: usize, m: &[f32] /* [r] */, sum: &mut [f32]) {
    let r_len = m.len();
    assert!(r_len.is_multiple_of(LANES) && ld >= r_len && sum.len() == r_len);
    assert!(n == 0 || s.len() >= (n - 1) * ld + r_len);
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has_avx512f() && r_len.is_multiple_of(16) {
        // SAFETY: AVX-512 F checked; the asserts bound every access.
        unsafe { exp_sub_cols16(s, ld, n, m, sum) };
        return;
    }
    exp_sub_cols8(s, ld, n, m, sum)
}

/// The 8-lane loop of [`exp_sub_cols`].
fn exp_sub_cols8(s: &mut [f32], ld: usize, n: usize, m: &[f32], sum: &mut [f32]) {
    for r0 in (0..m.len()).step_by(LANES) {
        let (m8, mut acc) = (load8(&m[r0..]), f32x8::ZERO);
        for j in 0..n {
            let e = exp_f32x8(load8(&s[j * ld + r0..]) - m8);
            acc += e;
            store8(&mut s[j * ld + r0..], e);
        }
        store8(&mut sum[r0..], acc);
    }
}

/// [`exp_sub_cols`] on zmm registers, sixteen columns at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp_sub_cols16(s: &mut [f32], ld: usize, n: usize, m: &[f32], sum: &mut [f32]) {
    use std::arch::x86_64::*;
    let sp = s.as_mut_ptr();
    for r0 in (0..m.len()).step_by(16) {
        // SAFETY: r0 + 16 ≤ r_len ≤ ld, and rows j < n lie inside `s` ([`exp_sub_cols`]'s asserts).
        unsafe {
            let (m16, mut acc) = (_mm512_loadu_ps(m.as_ptr().add(r0)), _mm512_setzero_ps());
            for j in 0..n {
                let at = sp.add(j * ld + r0);
                let e = exp_f32x16(_mm512_sub_ps(_mm512_loadu_ps(at), m16));
                acc = _mm512_add_ps(acc, e);
                _mm512_storeu_ps(at, e);
            }
            _mm512_storeu_ps(sum.as_mut_ptr().add(r0), acc);
        }
    }
}

/// Scalar reference for [`exp_sub_cols`] (std `exp`, f64 sums).
pub fn exp_sub_cols_ref(s: &mut [f32], ld: usize, n: usize, m: &[f32], sum: &mut [f32]) {
    for (r, (&m, sum)) in m.iter().zip(sum.iter_mut()).enumerate() {
        let mut acc = 0f64;
        for j in 0..n {
            let v = &mut s[j * ld + r];
            *v = (*v - m).exp();
            acc += *v as f64;
        }
        *sum = acc as f32;
    }
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

    /// The AVX-512 path (where this CPU has it) gives the 8-lane path's values and sums bit for bit.
    #[test]
    fn exp_sub_cols_is_the_8_lane_loop_bit_for_bit() {
        let mut seed = 12345u64;
        for (n, r, ld) in [(0, 16, 16), (1, 16, 20), (7, 32, 32), (100, 128, 130), (513, 64, 64)] {
            let x: Vec<f32> = (0..n * ld)
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
            let mut m = vec![0f32; r];
            col_max(&mut m, &x, ld, n);
            let (mut a, mut b) = (x.clone(), x.clone());
            let (mut sa, mut sb) = (vec![0f32; r], vec![0f32; r]);
            exp_sub_cols(&mut a, ld, n, &m, &mut sa);
            exp_sub_cols8(&mut b, ld, n, &m, &mut sb);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            assert_eq!(bits(&sa), bits(&sb), "sums, n = {n}");
            assert_eq!(bits(&a), bits(&b), "values, n = {n}");
        }
    }
}
