//! The tensors a checkpoint must hold, by name and shape, as the loaders read them (`inspect` compares a file
//! against this list; `tests/inventory.rs` checks that a file with exactly these tensors loads).

use crate::config::Wav2Vec2BertConfig;

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
