//! Row kernels of the fused attention's online softmax, and the key-tile transpose (SIMD, each with its
//! scalar reference beside it).

use crate::math::exp_f32x8;
use wide::f32x8;

fn load8(x: &[f32]) -> f32x8 {
    let mut a = [0f32; 8];
    a.copy_from_slice(&x[..8]);
    f32x8::new(a)
}

/// Largest value of `x` (`-∞` for an empty slice). NaN-free inputs assumed (scores of finite tensors).
pub fn max_of(x: &[f32] /* [n] */) -> f32 {
    let mut chunks = x.chunks_exact(8);
    let mut m8 = f32x8::splat(f32::NEG_INFINITY);
    for c in &mut chunks {
        m8 = m8.fast_max(load8(c));
    }
    let m = m8.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max);
    chunks.remainder().iter().copied().fold(m, f32::max)
}

/// Scalar reference for [`max_of`].
pub fn max_of_ref(x: &[f32] /* [n] */) -> f32 {
    x.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `x[j] = exp(x[j] - m)` in place; returns `Σ_j x[j]` (after the update). `x[j] = -∞` gives 0.
pub fn exp_sub_sum(x: &mut [f32] /* [n] */, m: f32) -> f32 {
    let m8 = f32x8::splat(m);
    let mut acc = f32x8::ZERO;
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
