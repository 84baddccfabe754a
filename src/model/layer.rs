//! `Wav2Vec2BertEncoderLayer`, the conformer block:
//! `h += ½ FFN1(LN(h)); h += Attn(LN(h)); h += Conv(h); h += ½ FFN2(LN(h)); h = LN_final(h)`.
//! transformers v4.52.1 modeling_wav2vec2_bert.py#L397 (forward at #L422).

use super::attention::SelfAttention;
use super::conv_module::ConvolutionModule;
use super::feed_forward::FeedForward;
use super::pack::Pack;
use super::primitives::LayerNorm;
use crate::config::Wav2Vec2BertConfig;
use crate::error::Result;
use crate::weights::Weights;
use w2vbert_kernels::bf16::Bf16Kernel;

pub struct EncoderLayer {
    pub ffn1_layer_norm: LayerNorm,
    pub ffn1: FeedForward,
    pub self_attn_layer_norm: LayerNorm,
    pub self_attn: SelfAttention,
    pub conv_module: ConvolutionModule,
    pub ffn2_layer_norm: LayerNorm,
    pub ffn2: FeedForward,
    pub final_layer_norm: LayerNorm,
}

/// Every intermediate buffer of one layer, allocated once per utterance and reused by all layers.
pub struct Scratch {
    x: Vec<f32>,     // [d, t] LayerNorm output fed to a sub-module
    q: Vec<f32>,     // [d, t]
    k: Vec<f32>,     // [d, t]
    v: Vec<f32>,     // [d, t]
    ctx: Vec<f32>,   // [d, t]
    inter: Vec<f32>, // [max(intermediate, 2d), t]
}

impl Scratch {
    pub fn new(cfg: &Wav2Vec2BertConfig, t: usize) -> Self {
        let d = cfg.hidden_size;
        let wide = cfg.intermediate_size.max(2 * d);
        Scratch {
            x: vec![0.0; t * d],
            q: vec![0.0; t * d],
            k: vec![0.0; t * d],
            v: vec![0.0; t * d],
            ctx: vec![0.0; t * d],
            inter: vec![0.0; t * wide],
        }
    }
}

impl EncoderLayer {
    pub fn load(cfg: &Wav2Vec2BertConfig, w: &Weights, prefix: &str) -> Result<Self> {
        let (d, eps) = (cfg.hidden_size, cfg.layer_norm_eps as f32);
        let ln = |name: &str| LayerNorm::load(w, &format!("{prefix}.{name}"), d, eps);
        Ok(EncoderLayer {
            ffn1_layer_norm: ln("ffn1_layer_norm")?,
            ffn1: FeedForward::load(cfg, w, &format!("{prefix}.ffn1"))?,
            self_attn_layer_norm: ln("self_attn_layer_norm")?,
            self_attn: SelfAttention::load(cfg, w, &format!("{prefix}.self_attn"))?,
            conv_module: ConvolutionModule::load(cfg, w, &format!("{prefix}.conv_module"))?,
            ffn2_layer_norm: ln("ffn2_layer_norm")?,
            ffn2: FeedForward::load(cfg, w, &format!("{prefix}.ffn2"))?,
            final_layer_norm: ln("final_layer_norm")?,
        })
    }

    /// Every projection of the layer to bf16 (LayerNorms, the depthwise conv and the distance embedding stay
    /// f32, as do the residual stream and attention).
    pub fn to_bf16(&mut self, kernel: Bf16Kernel) {
        self.ffn1.to_bf16(kernel);
        self.self_attn.to_bf16(kernel);
        self.conv_module.to_bf16(kernel);
        self.ffn2.to_bf16(kernel);
    }

    /// h[d, T] ← layer(h), channel-major, T = `pack.total()`. `mask` [T] (true = valid frame) masks attention
    /// keys and zeroes padded time steps before the depthwise convolution; masked queries are still computed, as
    /// in HF. Attention and the depthwise conv stay within each segment of the pack.
    pub fn forward(&self, h: &mut [f32], s: &mut Scratch, mask: Option<&[bool]>, pack: &Pack) {
        let t = pack.total();
        self.ffn1_layer_norm.forward(&mut s.x, h, t);
        self.ffn1.forward_residual(h, &mut s.inter, &s.x, t, 0.5);

        self.self_attn_layer_norm.forward(&mut s.x, h, t);
        self.self_attn
            .forward_residual(h, &mut s.q, &mut s.k, &mut s.v, &mut s.ctx, &s.x, mask, pack);

        self.conv_module
            .forward_residual(h, &mut s.x, &mut s.ctx, &mut s.inter, mask, pack);

        self.ffn2_layer_norm.forward(&mut s.x, h, t);
        self.ffn2.forward_residual(h, &mut s.inter, &s.x, t, 0.5);

        self.final_layer_norm.forward_inplace(h, t);
    }
}
