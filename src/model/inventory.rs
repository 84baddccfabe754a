//! The tensors a checkpoint must hold, by name and shape, as the loaders read them (`inspect` compares a file
//! against this list; `tests/inventory.rs` checks that a file with exactly these tensors loads).

use crate::config::Wav2Vec2BertConfig;
use crate::weights::Weights;
use safetensors::Dtype;

/// `(name, shape)` of the feature projection's tensors.
pub fn feature_projection_tensors(cfg: &Wav2Vec2BertConfig) -> Vec<(String, Vec<usize>)> {
    let (i, d) = (cfg.feature_projection_input_dim, cfg.hidden_size);
    vec![
        ("feature_projection.layer_norm.weight".into(), vec![i]),
        ("feature_projection.layer_norm.bias".into(), vec![i]),
        ("feature_projection.projection.weight".into(), vec![d, i]),
        ("feature_projection.projection.bias".into(), vec![d]),
    ]
}

/// The matrices of an encoder layer that `--precision bf16` holds in bf16 (the modules' `to_bf16`), by name
/// below `encoder.layers.{i}.`: every other tensor (LayerNorms, biases, the depthwise kernel, the distance
/// embedding, the feature projection) stays f32 in that precision, and so in a 16-bit `convert`.
pub const LAYER_PROJECTIONS: [&str; 10] = [
    "ffn1.intermediate_dense.weight",
    "ffn1.output_dense.weight",
    "self_attn.linear_q.weight",
    "self_attn.linear_k.weight",
    "self_attn.linear_v.weight",
    "self_attn.linear_out.weight",
    "conv_module.pointwise_conv1.weight",
    "conv_module.pointwise_conv2.weight",
    "ffn2.intermediate_dense.weight",
    "ffn2.output_dense.weight",
];

/// Whether `name` (the bare model's, without a task head's prefix) is one of [`LAYER_PROJECTIONS`] of some layer.
pub fn is_layer_projection(name: &str) -> bool {
    name.strip_prefix("encoder.layers.")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(i, rest)| i.parse::<usize>().is_ok() && LAYER_PROJECTIONS.contains(&rest))
}

/// `(name, shape)` of `encoder.layers.{i}`'s tensors.
pub fn layer_tensors(cfg: &Wav2Vec2BertConfig, i: usize) -> Vec<(String, Vec<usize>)> {
    let (d, f, k) = (cfg.hidden_size, cfg.intermediate_size, cfg.conv_depthwise_kernel_size);
    let p = format!("encoder.layers.{i}");
    let mut v: Vec<(String, Vec<usize>)> = Vec::new();
    let mut ln = |name: &str| {
        v.push((format!("{p}.{name}.weight"), vec![d]));
        v.push((format!("{p}.{name}.bias"), vec![d]));
    };
    for name in [
        "ffn1_layer_norm",
        "self_attn_layer_norm",
        "conv_module.layer_norm",
        "conv_module.depthwise_layer_norm",
        "ffn2_layer_norm",
        "final_layer_norm",
    ] {
        ln(name);
    }
    for ffn in ["ffn1", "ffn2"] {
        v.push((format!("{p}.{ffn}.intermediate_dense.weight"), vec![f, d]));
        v.push((format!("{p}.{ffn}.intermediate_dense.bias"), vec![f]));
        v.push((format!("{p}.{ffn}.output_dense.weight"), vec![d, f]));
        v.push((format!("{p}.{ffn}.output_dense.bias"), vec![d]));
    }
    for lin in ["linear_q", "linear_k", "linear_v", "linear_out"] {
        v.push((format!("{p}.self_attn.{lin}.weight"), vec![d, d]));
        v.push((format!("{p}.self_attn.{lin}.bias"), vec![d]));
    }
    v.push((
        format!("{p}.self_attn.distance_embedding.weight"),
        vec![cfg.num_relative_positions(), cfg.head_dim()],
    ));
    v.push((format!("{p}.conv_module.pointwise_conv1.weight"), vec![2 * d, d, 1]));
    v.push((format!("{p}.conv_module.depthwise_conv.weight"), vec![d, 1, k]));
    v.push((format!("{p}.conv_module.pointwise_conv2.weight"), vec![d, d, 1]));
    v
}

/// The prefix every tensor name of `w` carries: `wav2vec2_bert.` for a task head's checkpoint
/// (`Wav2Vec2BertFor…`), empty for the bare model. The one rule the loader, `convert` and `inspect` follow.
pub fn name_prefix(w: &Weights) -> &'static str {
    if !w.contains("feature_projection.projection.weight")
        && w.contains("wav2vec2_bert.feature_projection.projection.weight")
    {
        "wav2vec2_bert."
    } else {
        ""
    }
}

/// What a checkpoint's weights hold against the inventory (`inspect` prints it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// [`name_prefix`].
    pub prefix: &'static str,
    /// Tensors the inventory lists (all layers).
    pub expected: usize,
    /// One line per listed tensor that is missing or has the wrong shape or dtype, `missing  …` / `shape    …` /
    /// `dtype    …`.
    pub problems: Vec<String>,
    /// Tensors of the file the inventory does not list (not used).
    pub extra: Vec<String>,
    /// The feature projection is complete (else nothing can run).
    pub feature_projection_ok: bool,
    /// Complete leading encoder layers: hidden states `0..=layers_ok` can be computed.
    pub layers_ok: usize,
}

impl Diagnosis {
    pub fn missing(&self) -> usize {
        self.problems.iter().filter(|p| p.starts_with("missing")).count()
    }
}

/// Compare `w` with the inventory of `cfg`.
pub fn diagnose(cfg: &Wav2Vec2BertConfig, w: &Weights) -> Diagnosis {
    let prefix = name_prefix(w);
    let mut expected: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut check = |list: Vec<(String, Vec<usize>)>, problems: &mut Vec<String>| {
        for (n, s) in list {
            let full = format!("{prefix}{n}");
            problems.extend(problem(w, &full, &s));
            expected.push(full);
        }
    };
    check(feature_projection_tensors(cfg), &mut problems);
    let feature_projection_ok = problems.is_empty();
    let mut layers_ok = 0;
    for i in 0..cfg.num_hidden_layers {
        let before = problems.len();
        check(layer_tensors(cfg, i), &mut problems);
        if feature_projection_ok && layers_ok == i && problems.len() == before {
            layers_ok += 1;
        }
    }
    let extra = w
        .names()
        .into_iter()
        .filter(|n| !expected.iter().any(|e| e == n))
        .map(str::to_owned)
        .collect();
    Diagnosis {
        prefix,
        expected: expected.len(),
        problems,
        extra,
        feature_projection_ok,
        layers_ok,
    }
}

/// What is wrong with tensor `full` of `w` against `shape`, if anything.
fn problem(w: &Weights, full: &str, shape: &[usize]) -> Option<String> {
    match (w.shape(full), w.dtype(full)) {
        (None, _) => Some(format!("missing  {full} {shape:?}")),
        (Some(s), _) if s != shape => Some(format!("shape    {full}: {s:?}, expected {shape:?}")),
        (Some(_), Some(dt)) if !matches!(dt, Dtype::F32 | Dtype::F16 | Dtype::BF16) => {
            Some(format!("dtype    {full}: {dt:?}, expected F32, F16 or BF16"))
        }
        _ => None,
    }
}
