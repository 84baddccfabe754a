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
use w2vbert_kernels::bf16::{Bf16Kernel, PackedX};
use w2vbert_kernels::norm::Then;

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
    xp: PackedX,     // a LayerNorm's output in the bf16 tile kernels' input layout (FFN, q/k/v, conv input)
    packed: PackedX, // the FFN's intermediate in that layout
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
            xp: PackedX::default(),
            packed: PackedX::default(),
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
        let x =
            (self.ffn1_layer_norm).forward_for(self.ffn1.reads_packed(), &mut s.x, &mut s.xp, h, Then::default(), t);
        self.ffn1.forward_residual(h, &mut s.inter, &mut s.packed, x, t, 0.5);

        let packed = self.self_attn.reads_packed();
        let x = (self.self_attn_layer_norm).forward_for(packed, &mut s.x, &mut s.xp, h, Then::default(), t);
        (self.self_attn).forward_residual(h, &mut s.q, &mut s.k, &mut s.v, &mut s.ctx, x, mask, pack);

        (self.conv_module).forward_residual(h, &mut s.x, &mut s.ctx, &mut s.inter, &mut s.xp, mask, pack);

        let x =
            (self.ffn2_layer_norm).forward_for(self.ffn2.reads_packed(), &mut s.x, &mut s.xp, h, Then::default(), t);
        self.ffn2.forward_residual(h, &mut s.inter, &mut s.packed, x, t, 0.5);

        self.final_layer_norm.forward_inplace(h, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Small parameters (LayerNorms, biases, the depthwise kernel, the distance embedding) are copied out of the
    /// mapping at load and the projection weights stay views: a view read on every forward keeps its 2 MiB page
    /// of the file mapped when the page cache holds the file in 2 MiB folios, which made `--precision bf16` from
    /// an f32 checkpoint peak at 1.18 GB instead of 0.89 GB (README, "Loading").
    /// The shipped tiny checkpoint's config, and its layer 0 rewritten as a file of `dtype` (F32 or BF16) in
    /// `dir` (the shipped file is f16, which is widened to owned f32 at load).
    fn layer0_as(dtype: safetensors::Dtype, dir: &Path) -> (Wav2Vec2BertConfig, Weights) {
        let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("checkpoints/tiny-random");
        let cfg = Wav2Vec2BertConfig::load(&tiny.join("config.json")).unwrap();
        let f16 = Weights::open(&tiny.join("model.safetensors")).unwrap();
        let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = f16
            .names()
            .into_iter()
            .filter(|n| n.starts_with("encoder.layers.0."))
            .map(|n| {
                let t = f16.get_any_shape(n).unwrap();
                (n.to_string(), t.shape().to_vec(), t.data().to_vec())
            })
            .collect();
        let path = dir.join("model.safetensors");
        if dtype == safetensors::Dtype::F32 {
            let views: Vec<(String, Vec<usize>, &[f32])> =
                tensors.iter().map(|(n, s, d)| (n.clone(), s.clone(), &d[..])).collect();
            crate::output::write_safetensors(&path, &views).unwrap();
        } else {
            let bytes: Vec<Vec<u8>> = tensors
                .iter()
                .map(|(_, _, d)| d.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect())
                .collect();
            let views = tensors.iter().zip(&bytes).map(|((n, s, _), b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap(),
                )
            });
            safetensors::serialize_to_file(views, &None, &path).unwrap();
        }
        let w = Weights::open(&path).unwrap();
        assert_eq!(w.storage_dtype(), Some(dtype));
        (cfg, w)
    }

    fn projections(layer: &EncoderLayer) -> [&crate::model::primitives::Linear; 10] {
        let (a, c) = (&layer.self_attn, &layer.conv_module);
        [
            &layer.ffn1.intermediate_dense,
            &layer.ffn1.output_dense,
            &a.linear_q,
            &a.linear_k,
            &a.linear_v,
            &a.linear_out,
            &c.pointwise_conv1,
            &c.pointwise_conv2,
            &layer.ffn2.intermediate_dense,
            &layer.ffn2.output_dense,
        ]
    }

    /// A bf16 checkpoint's projection weights are used from the mapping as stored by every bf16 kernel (their
    /// shapes are multiples of 32, as in the real model): nothing is copied or packed at load. An f32
    /// checkpoint's too, which the kernels round as they copy (tile kernels) or widen (WidenF32) blocks of W.
    #[test]
    fn checkpoint_weights_are_used_in_place_by_every_kernel() {
        use w2vbert_kernels::bf16::Bf16Kernel;
        let tmp = tempfile::tempdir().unwrap();
        let (cfg, w) = layer0_as(safetensors::Dtype::BF16, tmp.path());
        let tmp32 = tempfile::tempdir().unwrap();
        let (_, w32) = layer0_as(safetensors::Dtype::F32, tmp32.path());
        for kernel in [Bf16Kernel::Amx, Bf16Kernel::Avx512Bf16, Bf16Kernel::WidenF32] {
            if !kernel.available() {
                continue;
            }
            let mut layer = EncoderLayer::load(&cfg, &w, "encoder.layers.0").unwrap();
            layer.to_bf16(kernel);
            for l in projections(&layer) {
                assert!(
                    l.weight_is_mapped(),
                    "{kernel:?}: a bf16 projection weight was copied at load"
                );
            }
            let mut layer = EncoderLayer::load(&cfg, &w32, "encoder.layers.0").unwrap();
            layer.to_bf16(kernel);
            for l in projections(&layer) {
                assert!(
                    l.weight_is_mapped(),
                    "{kernel:?}: an f32 projection weight was rounded into a copy at load"
                );
            }
        }
    }

    /// An f32 checkpoint under any bf16 kernel: the first `F32_CALLS_BEFORE_ROUNDING` (4) forwards read the
    /// mapping, the fifth rounds each projection into a copy of its own, and every forward gives the same bits
    /// (the kernel's rounding is the copy's). Reading the mapping forever, or rounding on another call, fails.
    #[test]
    fn f32_weights_are_rounded_into_a_copy_on_the_fifth_forward() {
        let tmp = tempfile::tempdir().unwrap();
        let (cfg, w) = layer0_as(safetensors::Dtype::F32, tmp.path());
        let t = 45;
        let h0: Vec<f32> = (0..cfg.hidden_size * t)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let mask: Vec<bool> = (0..t).map(|j| j < 40).collect();
        for kernel in [Bf16Kernel::Amx, Bf16Kernel::Avx512Bf16, Bf16Kernel::WidenF32] {
            if !kernel.available() {
                continue;
            }
            let mut layer = EncoderLayer::load(&cfg, &w, "encoder.layers.0").unwrap();
            layer.to_bf16(kernel);
            let mut s = Scratch::new(&cfg, t);
            let mut first = None;
            for call in 1..=6 {
                let mut h = h0.clone();
                layer.forward(&mut h, &mut s, Some(&mask), &Pack::single(t));
                let first = first.get_or_insert_with(|| h.clone());
                assert!(
                    h.iter().zip(first.iter()).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{kernel:?}: forward {call} differs from the first"
                );
                for l in projections(&layer) {
                    assert_eq!(l.weight_is_mapped(), call <= 4, "{kernel:?}, after forward {call}");
                }
            }
        }
    }

    #[test]
    fn small_parameters_are_owned_and_projection_weights_mapped() {
        let tmp = tempfile::tempdir().unwrap();
        let (cfg, w) = layer0_as(safetensors::Dtype::F32, tmp.path());
        let layer = EncoderLayer::load(&cfg, &w, "encoder.layers.0").unwrap();
        let (a, c) = (&layer.self_attn, &layer.conv_module);
        let linears = projections(&layer);
        let mut small: Vec<&crate::tensor::Tensor> = [
            &layer.ffn1_layer_norm,
            &layer.self_attn_layer_norm,
            &c.layer_norm,
            &c.depthwise_layer_norm,
            &layer.ffn2_layer_norm,
            &layer.final_layer_norm,
        ]
        .iter()
        .flat_map(|ln| ln.small_parameters())
        .collect();
        small.extend(linears.iter().flat_map(|l| l.small_parameters()));
        small.extend([c.depthwise(), a.distance_embedding()]);
        // 6 LayerNorms × 2, 8 linear biases (the pointwise convs have none), depthwise, distance embedding.
        assert_eq!(small.len(), 22);
        for t in &small {
            assert!(!t.is_mapped(), "{t:?} is still a view of the mapping");
        }
        for l in linears {
            assert!(l.weight_is_mapped(), "projection weights are zero-copy views");
        }
    }
}
