//! `nn.Linear` / 1×1 `nn.Conv1d` and `nn.LayerNorm`, the two building blocks every module uses, on
//! channel-major activations `[channels, t]` (row c = channel c over time).

use crate::error::Result;
use crate::tensor::Tensor;
use crate::weights::Weights;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use w2vbert_kernels::alignedbuf::AlignedBuf;
use w2vbert_kernels::bf16::{self, Bf16Kernel, Bf16Weights, Epilogue, PackedX, RowsFrom};
use w2vbert_kernels::{gemm, norm};

/// How a [`Linear`] holds its weight, and so which matmul it runs.
enum LinearWeight {
    /// f32 where the loader put it (usually the mmap): gemm reads it in place through strides.
    F32(Tensor), // [out, in] (or [out, in, 1])
    /// bf16 rows at row stride `ld` for `kernel` ([`Linear::to_bf16`]): the tile kernels (AMX, AVX512-BF16)
    /// round x per call; WidenF32 widens row blocks of W per call (rounding f32 rows to bf16 as it widens them).
    Bf16 {
        rows: Bf16Rows,
        ld: usize,
        kernel: Bf16Kernel,
    },
}

/// Where [`LinearWeight::Bf16`] keeps its bits.
enum Bf16Rows {
    /// A bf16 checkpoint's tensor, used from the mapping as stored (no copy, nothing done per weight).
    Mapped(Tensor),
    /// An f32 checkpoint's tensor, used from the mapping as stored by every kernel, which rounds each block of W
    /// as it copies it (tile kernels) or widens it (WidenF32), so nothing is done per weight at load either;
    /// from call [`F32_CALLS_BEFORE_ROUNDING`]` + 1` on, a copy rounded once (then the f32 pages are handed
    /// back).
    MappedF32 {
        w: Tensor,
        calls: AtomicUsize,
        rounded: OnceLock<AlignedBuf<u16>>,
    },
    /// An f32 weight rounded to bf16 at load (or a bf16 one the tile kernels cannot read in place).
    Owned(AlignedBuf<u16>),
}

/// How many calls of a [`Bf16Rows::MappedF32`] weight read the f32 mapping before the next one rounds a bf16
/// copy. Reading f32 costs each forward ~70 ms more than reading bf16 (10 s of speech, AMX Xeon: twice the
/// bytes of W from memory), and rounding all weights once ~0.35 s (0.4–0.65 s on a 2-vCPU Zen 3, WidenF32):
/// after four calls the copy has paid for itself. Rounding on the fifth never costs more than twice the better
/// of the two choices in hindsight, and nothing for a run of one file (a prompt, the CLI on one input).
const F32_CALLS_BEFORE_ROUNDING: usize = 4;

impl Bf16Rows {
    /// The weight `[n, k]` as `kernel` reads it on this call: the f32 mapping for a [`Bf16Rows::MappedF32`]'s
    /// first [`F32_CALLS_BEFORE_ROUNDING`] calls, then its rounded copy; the bf16 bits of the others.
    fn read(&self, kernel: Bf16Kernel, n: usize, k: usize) -> RowsFrom<'_> {
        let bits: &[u16] = match self {
            Bf16Rows::Mapped(t) => t.raw_bf16().expect("Bf16Rows::Mapped holds a bf16 tensor"),
            Bf16Rows::Owned(v) => v,
            Bf16Rows::MappedF32 { w, calls, rounded } => match rounded.get() {
                Some(bits) => bits,
                None if calls.fetch_add(1, Ordering::Relaxed) < F32_CALLS_BEFORE_ROUNDING => {
                    return RowsFrom::F32(w.data())
                }
                None => rounded.get_or_init(|| {
                    let (bits, _) = bf16::owned_rows(kernel, RowsFrom::F32(w.data()), n, k);
                    w.release_pages();
                    bits
                }),
            },
        };
        RowsFrom::Bf16(bits)
    }
}

/// A projection's input `[in, t]`: f32, or packed for the bf16 tile kernels by the LayerNorm that made it
/// ([`LayerNorm::forward_for`]).
#[derive(Clone, Copy)]
pub enum LinearInput<'a> {
    F32(&'a [f32]),
    Packed(&'a PackedX),
}

/// `y = x Wᵀ + b` with W stored `[out, in]` (a 1×1 Conv1d weight `[out, in, 1]` is the same matrix).
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor>, // [out]
    pub in_dim: usize,
    pub out_dim: usize,
}

impl Linear {
    /// `prefix.weight` `[out, in]` and, when `bias`, `prefix.bias` `[out]`.
    pub fn load(w: &Weights, prefix: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        Ok(Linear {
            weight: LinearWeight::F32(populated(w.get(&format!("{prefix}.weight"), &[out_dim, in_dim])?)),
            bias: if bias {
                Some(owned_param(w, &format!("{prefix}.bias"), &[out_dim])?)
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
            weight: LinearWeight::F32(populated(w.get(&format!("{prefix}.weight"), &[out_dim, in_dim, 1])?)),
            bias: None,
            in_dim,
            out_dim,
        })
    }

    /// Hold the weight in bf16 from now on, as rows `kernel` reads: a bf16 checkpoint's mapping as stored
    /// when the kernel can read it in place (every projection of the real model); an f32 checkpoint's mapping
    /// as stored when the kernel can read it in place, rounding as it reads (the same shapes), until
    /// [`F32_CALLS_BEFORE_ROUNDING`] calls have shown the weight is used often enough to pay for a rounded
    /// copy; else a copy rounded from f32 (or padded) at load. A copy's f32 pages are handed back to the OS.
    /// Idempotent.
    pub fn to_bf16(&mut self, kernel: Bf16Kernel) {
        let LinearWeight::F32(w) = &self.weight else { return };
        let (n, k) = (self.out_dim, self.in_dim);
        let in_place = !kernel.packs_tiles() || bf16::tiles_read_in_place(n, k);
        self.weight = match w.raw_bf16() {
            Some(_) if in_place => LinearWeight::Bf16 {
                rows: Bf16Rows::Mapped(w.clone()),
                ld: k,
                kernel,
            },
            None if in_place && w.is_mapped() => LinearWeight::Bf16 {
                rows: Bf16Rows::MappedF32 {
                    w: w.clone(),
                    calls: AtomicUsize::new(0),
                    rounded: OnceLock::new(),
                },
                ld: k,
                kernel,
            },
            raw => {
                let from = raw.map_or(RowsFrom::F32(w.data()), RowsFrom::Bf16);
                let (bits, ld) = bf16::owned_rows(kernel, from, n, k);
                w.release_pages();
                LinearWeight::Bf16 {
                    rows: Bf16Rows::Owned(bits),
                    ld,
                    kernel,
                }
            }
        };
    }

    /// The parameters other than the weight matrix (its bias), for tests of how they are held.
    #[cfg(test)]
    pub(crate) fn small_parameters(&self) -> Vec<&Tensor> {
        self.bias.iter().collect()
    }

    /// Whether the weight is still a view of the checkpoint's mapping (f32, or bf16 as stored).
    #[cfg(test)]
    pub(crate) fn weight_is_mapped(&self) -> bool {
        match &self.weight {
            LinearWeight::F32(w) => w.is_mapped(),
            LinearWeight::Bf16 { rows, .. } => match rows {
                Bf16Rows::Mapped(_) => true,
                Bf16Rows::MappedF32 { rounded, .. } => rounded.get().is_none(),
                Bf16Rows::Owned(_) => false,
            },
        }
    }

    fn bias(&self) -> Option<&[f32]> {
        self.bias.as_ref().map(|b| b.data())
    }

    /// Channel-major: y[out, t] = W[out, in] · x[in, t] + b (one channel per row). In f32, W is gemm's
    /// row-major lhs read in place and x its row-major rhs: the fastest layout gemm has, with no weight copy.
    pub fn forward(&self, y: &mut [f32], x: &[f32], t: usize) {
        self.run(Epilogue::Store { y }, x, t)
    }

    /// y[out, t] = SiLU(W · x[in, t] + b) (the feed-forward's first half): applied per block of rows as it leaves
    /// the matmul, in f32 and bf16 alike.
    pub fn forward_silu(&self, y: &mut [f32], x: &[f32], t: usize) {
        self.run(Epilogue::StoreSilu { y }, x, t)
    }

    /// h[out, t] += scale · (W · x[in, t] + b): the residual add and the conformer's ½ folded into the matmul
    /// (gemm accumulates into h; the bf16 path in its epilogue), so the product is never stored on its own.
    pub fn forward_accumulate(&self, h: &mut [f32], x: &[f32], t: usize, scale: f32) {
        self.run(Epilogue::Accumulate { h, scale }, x, t)
    }

    /// Whether the weight is held for a bf16 tile kernel (AMX, AVX512-BF16), which can read its input packed
    /// ([`PackedX`]): then [`Self::forward_packed`] and the other `_packed` forwards apply.
    pub fn reads_packed(&self) -> bool {
        matches!(&self.weight, LinearWeight::Bf16 { kernel, .. } if kernel.packs_tiles())
    }

    /// y[out, t] = W · x + b from x packed (by [`LayerNorm::forward_for`]): one packing for several projections
    /// of one input.
    pub fn forward_packed(&self, y: &mut [f32], x: &PackedX) {
        self.run_packed(Epilogue::Store { y }, x)
    }

    /// h[out, t] += scale · (W · x + b) from x packed (by [`Self::forward_silu_packed_into`]).
    pub fn forward_accumulate_packed(&self, h: &mut [f32], x: &PackedX, scale: f32) {
        self.run_packed(Epilogue::Accumulate { h, scale }, x)
    }

    /// SiLU(W · x + b) from x packed, left only in `next`, packed for a linear that reads it with a `_packed`
    /// forward (the feed-forward's second half): no f32 output is written or read back. Only where
    /// [`Self::reads_packed`].
    pub fn forward_silu_packed_into(&self, next: &mut PackedX, x: &PackedX) {
        let (kernel, w) = self
            .tiles()
            .expect("forward_silu_packed_into: not a tile-kernel bf16 weight");
        bf16::linear_bf16_cm_packed_silu_into(kernel, next, x, w, self.bias(), THREADS)
    }

    /// The bf16 tile kernel and the weight as it reads it, where the weight is held for one.
    fn tiles(&self) -> Option<(Bf16Kernel, Bf16Weights<'_>)> {
        match &self.weight {
            LinearWeight::Bf16 { rows, ld, kernel } if kernel.packs_tiles() => {
                let (n, k) = (self.out_dim, self.in_dim);
                let w = match rows.read(*kernel, n, k) {
                    RowsFrom::F32(w) => Bf16Weights::from_f32(w, n, k),
                    RowsFrom::Bf16(bits) => Bf16Weights::new(bits, n, k, *ld),
                };
                Some((*kernel, w))
            }
            _ => None,
        }
    }

    fn run_packed(&self, out: Epilogue<'_>, x: &PackedX) {
        let (kernel, w) = self.tiles().expect("a _packed forward: not a tile-kernel bf16 weight");
        bf16::linear_bf16_cm_packed(kernel, out, x, w, self.bias(), THREADS)
    }

    fn run(&self, out: Epilogue<'_>, x: &[f32], t: usize) {
        let (n, k) = (self.out_dim, self.in_dim);
        if let Some((kernel, w)) = self.tiles() {
            return bf16::linear_bf16_cm(kernel, out, x, w, self.bias(), t, THREADS);
        }
        match &self.weight {
            LinearWeight::F32(w) => gemm::linear_cm(out, x, w.data(), self.bias(), n, k, t, THREADS),
            LinearWeight::Bf16 { rows, kernel, .. } => {
                bf16::linear_bf16_rows_cm(out, x, rows.read(*kernel, n, k), self.bias(), n, k, t, THREADS)
            }
        }
    }
}

/// A projection's weight with every page of its mapping mapped now, at load (one `madvise` instead of a page
/// fault per 64 KiB inside the first forward's gemm calls: ~20k fewer faults over 17 full-size layers, ~5 % of
/// the CPU time of a 10 s fp32 run on a 2-vCPU VM).
fn populated(t: Tensor) -> Tensor {
    t.populate();
    t
}

/// A small parameter (LayerNorm, bias, depthwise kernel, distance embedding) copied out of the mapping at
/// load: every module loads its small parameters through this, and only the projection weights stay views
/// (`populated`). A view read on every forward keeps its page of the file mapped, a whole 2 MiB page when the
/// page cache holds the file in 2 MiB folios, though the rest of that page may be weights already rounded to
/// bf16 and released: `--precision bf16` on an f32 checkpoint peaked at 1.18 GB instead of 0.89 GB.
pub(super) fn owned_param(w: &Weights, name: &str, shape: &[usize]) -> Result<Tensor> {
    Ok(w.get(name, shape)?.into_owned())
}

/// The projections use the whole rayon pool (the caller's `--threads`).
pub(super) const THREADS: gemm::Threads = gemm::Threads::Rayon(0);

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
            weight: owned_param(w, &format!("{prefix}.weight"), &[dim])?,
            bias: owned_param(w, &format!("{prefix}.bias"), &[dim])?,
            eps,
            dim,
        })
    }

    #[cfg(test)]
    pub(crate) fn small_parameters(&self) -> Vec<&Tensor> {
        vec![&self.weight, &self.bias]
    }

    /// Channel-major: y[dim, t] = LN(x[dim, t]), each column (time step) normalized over the dim rows.
    pub fn forward(&self, y: &mut [f32], x: &[f32], t: usize) {
        norm::layer_norm_cm(y, x, self.weight.data(), self.bias.data(), self.eps, self.dim, t);
    }

    /// LN(x[dim, t]), each normalized tile passed through `then` (SiLU, masked time steps zeroed: see
    /// [`norm::Then`]), as the input of projections that read it packed (`packed`: [`Linear::reads_packed`]) or
    /// not: packed into `xp` one column tile at a time as it is normalized (y is not written), else into `y`.
    pub fn forward_for<'a>(
        &self,
        packed: bool,
        y: &'a mut [f32],    // [dim, t]
        xp: &'a mut PackedX, // [dim, t] packed
        x: &[f32],           // [dim, t]
        then: norm::Then<'_>,
        t: usize,
    ) -> LinearInput<'a> {
        let (g, b) = (self.weight.data(), self.bias.data());
        if packed {
            norm::layer_norm_cm_to(norm::NormOut::Packed(xp), x, g, b, self.eps, then, self.dim, t);
            LinearInput::Packed(xp)
        } else {
            norm::layer_norm_cm_to(norm::NormOut::F32(y), x, g, b, self.eps, then, self.dim, t);
            LinearInput::F32(y)
        }
    }

    /// Channel-major, in place: x[dim, t] = LN(x[dim, t]).
    pub fn forward_inplace(&self, x: &mut [f32], t: usize) {
        norm::layer_norm_cm_inplace(x, self.weight.data(), self.bias.data(), self.eps, self.dim, t);
    }
}

/// Zero the time steps whose mask is false (HF `masked_fill(~mask, 0.0)`) of a channel-major x: [d, t]
/// (columns), mask: [t].
pub fn zero_masked_cols(x: &mut [f32], mask: &[bool], t: usize) {
    if mask.iter().all(|&m| m) {
        return;
    }
    for row in x.chunks_exact_mut(t.max(1)) {
        for (v, &keep) in row.iter_mut().zip(mask) {
            if !keep {
                *v = 0.0;
            }
        }
    }
}
