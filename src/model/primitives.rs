//! `nn.Linear` / 1×1 `nn.Conv1d` and `nn.LayerNorm`, the two building blocks every module uses.

use crate::error::Result;
use crate::tensor::Tensor;
use crate::weights::Weights;
use w2vbert_kernels::{elementwise, gemm, norm};

/// `y = x Wᵀ + b` with W stored `[out, in]` (a 1×1 Conv1d weight `[out, in, 1]` is the same matrix).
/// The weight stays where the loader put it (usually the mmap): gemm reads it through strides.
pub struct Linear {
    weight: Tensor,       // [out, in] (or [out, in, 1])
    bias: Option<Tensor>, // [out]
    pub in_dim: usize,
    pub out_dim: usize,
}

impl Linear {
    /// `prefix.weight` `[out, in]` and, when `bias`, `prefix.bias` `[out]`.
    pub fn load(w: &Weights, prefix: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        Ok(Linear {
            weight: w.get(&format!("{prefix}.weight"), &[out_dim, in_dim])?,
            bias: if bias {
                Some(w.get(&format!("{prefix}.bias"), &[out_dim])?)
            } else {
                None
            },
            in_dim,
            out_dim,
        })
    }

    /// A 1×1 `nn.Conv1d` without bias: `prefix.weight` `[out, in, 1]`.
    pub fn load_pointwise_conv(w: &Weights, prefix: &str, in_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(Linear {
            weight: w.get(&format!("{prefix}.weight"), &[out_dim, in_dim, 1])?,
            bias: None,
            in_dim,
            out_dim,
        })
    }

    /// y[t, out] = x[t, in] Wᵀ + b.
    pub fn forward(&self, y: &mut [f32], x: &[f32], t: usize) {
        gemm::linear(
            y,
            x,
            self.weight.data(),
            self.bias.as_ref().map(|b| b.data()),
            t,
            self.in_dim,
            self.out_dim,
            gemm::Threads::Rayon(0),
        );
    }

    /// h[t, out] += scale · (x[t, in] Wᵀ + b): the residual add and the conformer's ½ folded into the matmul
    /// (gemm accumulates into h), so the product is never stored on its own.
    pub fn forward_accumulate(&self, h: &mut [f32], x: &[f32], t: usize, scale: f32) {
        let (k, n) = (self.in_dim, self.out_dim);
        if let Some(b) = &self.bias {
            for row in h[..t * n].chunks_exact_mut(n) {
                elementwise::scaled_add(row, b.data(), scale);
            }
        }
        gemm::matmul(
            h,
            n,
            x,
            k,
            1,
            self.weight.data(),
            1,
            k,
            t,
            k,
            n,
            scale,
            true,
            gemm::Threads::Rayon(0),
        );
    }
}

/// `nn.LayerNorm(dim, eps)`: biased variance, affine.
pub struct LayerNorm {
    weight: Tensor, // [dim]
    bias: Tensor,   // [dim]
    eps: f32,
    pub dim: usize,
}

impl LayerNorm {
    pub fn load(w: &Weights, prefix: &str, dim: usize, eps: f32) -> Result<Self> {
        Ok(LayerNorm {
            weight: w.get(&format!("{prefix}.weight"), &[dim])?,
            bias: w.get(&format!("{prefix}.bias"), &[dim])?,
            eps,
            dim,
        })
    }

    /// y[t, dim] = LN(x[t, dim]).
    pub fn forward(&self, y: &mut [f32], x: &[f32], t: usize) {
        norm::layer_norm(y, x, self.weight.data(), self.bias.data(), self.eps, t, self.dim);
    }

    /// x[t, dim] = LN(x[t, dim]).
    pub fn forward_inplace(&self, x: &mut [f32], t: usize) {
        norm::layer_norm_inplace(x, self.weight.data(), self.bias.data(), self.eps, t, self.dim);
    }
}

/// Zero the rows whose mask is false (HF `masked_fill(~mask, 0.0)`). x: [t, d], mask: [t].
pub fn zero_masked_rows(x: &mut [f32], mask: &[bool], d: usize) {
    for (row, &keep) in x.chunks_exact_mut(d).zip(mask) {
        if !keep {
            row.fill(0.0);
        }
    }
}
