//! `Wav2Vec2BertConvolutionModule`: LN → zero padded rows → pointwise_conv1 (d → 2d) → GLU → causal depthwise
//! conv (kernel k, k-1 zeros on the left) → depthwise_layer_norm → SiLU → pointwise_conv2 (d → d).
//! transformers v4.52.1 modeling_wav2vec2_bert.py#L156 (forward at #L195).

use super::pack::Pack;
use super::primitives::{owned_param, LayerNorm, Linear, LinearInput, THREADS};
use crate::config::Wav2Vec2BertConfig;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::weights::Weights;
use w2vbert_kernels::bf16::{Bf16Kernel, PackedX};
use w2vbert_kernels::norm::Then;
use w2vbert_kernels::{activation, conv, gemm};

pub struct ConvolutionModule {
    pub layer_norm: LayerNorm,
    pub pointwise_conv1: Linear,
    /// `depthwise_conv.weight` [d, 1, k], read in place as [d, k].
    depthwise: Tensor,
    kernel_size: usize,
    pub depthwise_layer_norm: LayerNorm,
    pub pointwise_conv2: Linear,
}

impl ConvolutionModule {
    #[cfg(test)]
    pub(crate) fn depthwise(&self) -> &Tensor {
        &self.depthwise
    }

    pub fn load(cfg: &Wav2Vec2BertConfig, w: &Weights, prefix: &str) -> Result<Self> {
        let (d, k, eps) = (
            cfg.hidden_size,
            cfg.conv_depthwise_kernel_size,
            cfg.layer_norm_eps as f32,
        );
        let depthwise = owned_param(w, &format!("{prefix}.depthwise_conv.weight"), &[d, 1, k])?;
        Ok(ConvolutionModule {
            layer_norm: LayerNorm::load(w, &format!("{prefix}.layer_norm"), d, eps)?,
            pointwise_conv1: Linear::load_pointwise_conv(w, &format!("{prefix}.pointwise_conv1"), d, 2 * d)?,
            depthwise,
            kernel_size: k,
            depthwise_layer_norm: LayerNorm::load(w, &format!("{prefix}.depthwise_layer_norm"), d, eps)?,
            pointwise_conv2: Linear::load_pointwise_conv(w, &format!("{prefix}.pointwise_conv2"), d, d)?,
        })
    }

    pub fn to_bf16(&mut self, kernel: Bf16Kernel) {
        self.pointwise_conv1.to_bf16(kernel);
        self.pointwise_conv2.to_bf16(kernel);
    }

    /// h[d, T] += ConvModule(h) (channel-major) with time steps masked by `mask` [T] zeroed after the first
    /// LayerNorm; T is the pack's width and the causal depthwise conv restarts at every segment.
    /// Scratch: `a`, `b` [d, T]; `wide` [2d, T]; `xp` a pointwise conv's input, packed when it runs on a bf16 tile
    /// kernel (the first's, then the second's).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_residual(
        &self,
        h: &mut [f32],
        a: &mut [f32],
        b: &mut [f32],
        wide: &mut [f32],
        xp: &mut PackedX,
        mask: Option<&[bool]>,
        pack: &Pack,
    ) {
        let t = pack.total();
        let d = self.layer_norm.dim;
        let packed = self.pointwise_conv1.reads_packed();
        let masked = Then {
            silu: false,
            keep: mask,
        };
        match self.layer_norm.forward_for(packed, a, xp, h, masked, t) {
            LinearInput::Packed(x) => self.pointwise_conv1.forward_packed(wide, x),
            LinearInput::F32(x) => self.pointwise_conv1.forward(wide, x, t),
        }
        // GLU over channels: value half = rows 0..d, gate half = rows d..2d, i.e. the two contiguous halves of
        // `wide` [2d, t]: one elementwise pass of d·t, over the pool's row blocks.
        let (value, gate) = wide[..2 * d * t].split_at(d * t);
        gemm::row_blocks(&mut a[..d * t], d, t, THREADS, |r0, rows| {
            let span = r0 * t..r0 * t + rows.len();
            activation::gated(rows, &value[span.clone()], &gate[span]);
        });
        conv::depthwise_conv1d_causal_cm_segments(b, a, self.depthwise.data(), d, t, self.kernel_size, pack.lens());
        // LayerNorm and SiLU in one pass, into `a` (free again) or packed for a bf16 tile kernel.
        let packed = self.pointwise_conv2.reads_packed();
        let silu = Then { silu: true, keep: None };
        match self.depthwise_layer_norm.forward_for(packed, a, xp, b, silu, t) {
            LinearInput::Packed(x) => self.pointwise_conv2.forward_accumulate_packed(h, x, 1.0),
            LinearInput::F32(x) => self.pointwise_conv2.forward_accumulate(h, x, t, 1.0),
        }
    }
}
