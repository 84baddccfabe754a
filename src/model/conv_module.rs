//! `Wav2Vec2BertConvolutionModule`: LN → zero padded rows → pointwise_conv1 (d → 2d) → GLU → causal depthwise
//! conv (kernel k, k-1 zeros on the left) → depthwise_layer_norm → SiLU → pointwise_conv2 (d → d).
//! transformers v4.52.1 modeling_wav2vec2_bert.py#L156 (forward at #L195).

use super::primitives::{zero_masked_rows, LayerNorm, Linear};
use crate::config::Wav2Vec2BertConfig;
use crate::error::Result;
use crate::weights::Weights;
use w2vbert_kernels::{activation, conv};

pub struct ConvolutionModule {
    pub layer_norm: LayerNorm,
    pub pointwise_conv1: Linear,
    /// `depthwise_conv.weight` [d, 1, k], packed once at load for the kernel (`conv::pack_weights`).
    depthwise_packed: Vec<f32>,
    kernel_size: usize,
    pub depthwise_layer_norm: LayerNorm,
    pub pointwise_conv2: Linear,
}

impl ConvolutionModule {
    pub fn load(cfg: &Wav2Vec2BertConfig, w: &Weights, prefix: &str) -> Result<Self> {
        let (d, k, eps) = (
            cfg.hidden_size,
            cfg.conv_depthwise_kernel_size,
            cfg.layer_norm_eps as f32,
        );
        let dw = w.get(&format!("{prefix}.depthwise_conv.weight"), &[d, 1, k])?;
        let mut depthwise_packed = vec![0.0; d * k];
        conv::pack_weights(&mut depthwise_packed, dw.data(), d, k);
        Ok(ConvolutionModule {
            layer_norm: LayerNorm::load(w, &format!("{prefix}.layer_norm"), d, eps)?,
            pointwise_conv1: Linear::load_pointwise_conv(w, &format!("{prefix}.pointwise_conv1"), d, 2 * d)?,
            depthwise_packed,
            kernel_size: k,
            depthwise_layer_norm: LayerNorm::load(w, &format!("{prefix}.depthwise_layer_norm"), d, eps)?,
            pointwise_conv2: Linear::load_pointwise_conv(w, &format!("{prefix}.pointwise_conv2"), d, d)?,
        })
    }

    /// h[t, d] += ConvModule(h) with rows masked by `mask` [t] zeroed after the first LayerNorm.
    /// Scratch: `a`, `b` [t, d]; `wide` [t, 2d].
    pub fn forward_residual(
        &self,
        h: &mut [f32],
        a: &mut [f32],
        b: &mut [f32],
        wide: &mut [f32],
        mask: Option<&[bool]>,
        t: usize,
    ) {
        let d = self.layer_norm.dim;
        self.layer_norm.forward(a, h, t);
        if let Some(m) = mask {
            zero_masked_rows(&mut a[..t * d], m, d);
        }
        self.pointwise_conv1.forward(wide, a, t);
        activation::glu(a, wide, t, d);
        conv::depthwise_conv1d_causal_packed(b, a, &self.depthwise_packed, t, d, self.kernel_size);
        self.depthwise_layer_norm.forward_inplace(b, t);
        activation::silu_inplace(&mut b[..t * d]);
        self.pointwise_conv2.forward_accumulate(h, b, t, 1.0);
    }
}
