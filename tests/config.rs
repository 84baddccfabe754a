//! `Wav2Vec2BertConfig`: the real config, defaults for absent fields, every read field spelled as in
//! transformers, wrong types and unsupported settings as errors naming field and file.
//!
//! Fixture `tests/fixtures/io/w2v-bert-2.0.config.json` was written by transformers 4.52.1:
//! `Wav2Vec2BertConfig().to_json_string(use_diff=False)` (the defaults are facebook/w2v-bert-2.0).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use w2vbert::config::Wav2Vec2BertConfig;
use w2vbert::Error;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/io/w2v-bert-2.0.config.json")
}

fn fixture_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture()).unwrap()).unwrap()
}

fn parse(v: &Value) -> w2vbert::Result<Wav2Vec2BertConfig> {
    Wav2Vec2BertConfig::from_json_str(&v.to_string(), Path::new("cfg/config.json"))
}

/// The fixture with `key` set to `value`.
fn with(key: &str, value: Value) -> Value {
    let mut v = fixture_json();
    v[key] = value;
    v
}

/// Asserts a config error naming `field` and the source file, with `needle` in the message.
fn expect_field_error(v: &Value, field: &str, needle: &str) {
    match parse(v) {
        Ok(c) => panic!("{field}: expected an error, parsed {c:?}"),
        Err(e) => {
            let s = e.to_string();
            assert!(matches!(e, Error::Config { .. }), "{field}: not a config error: {s}");
            assert!(s.contains("cfg/config.json"), "{s}");
            assert!(s.contains(&format!("`{field}`")), "{s}");
            assert!(s.contains(needle), "{field}: expected `{needle}` in: {s}");
        }
    }
}

#[test]
fn real_config_parses() {
    let c = Wav2Vec2BertConfig::load(&fixture()).unwrap();
    let j = fixture_json();
    // Against the file's own values, not our defaults.
    assert_eq!(c.hidden_size as u64, j["hidden_size"].as_u64().unwrap());
    assert_eq!(c.num_hidden_layers as u64, j["num_hidden_layers"].as_u64().unwrap());
    assert_eq!(c.num_attention_heads as u64, j["num_attention_heads"].as_u64().unwrap());
    assert_eq!(c.intermediate_size as u64, j["intermediate_size"].as_u64().unwrap());
    assert_eq!(c.layer_norm_eps, j["layer_norm_eps"].as_f64().unwrap());
    assert_eq!(c.hidden_act, j["hidden_act"].as_str().unwrap());
    assert_eq!(c.model_type.as_deref(), Some("wav2vec2-bert"));
    assert_eq!(c.torch_dtype, None);
    assert_eq!(c.head_dim(), 64);
    assert_eq!(c.num_relative_positions(), 73);
    assert_eq!(c.feature_projection_input_dim, 160);
    assert_eq!(c.conv_depthwise_kernel_size, 31);
    // And the defaults are the real model.
    let d = Wav2Vec2BertConfig {
        model_type: Some("wav2vec2-bert".into()),
        ..Default::default()
    };
    assert_eq!(c, d);
}

#[test]
fn empty_object_takes_transformers_defaults() {
    let c = parse(&json!({})).unwrap();
    assert_eq!(c, Wav2Vec2BertConfig::default());
}

/// Every field we read, set to a non-default value: catches a misspelled key (which would silently
/// fall back to the default).
#[test]
fn every_field_is_read_by_its_transformers_name() {
    let v = json!({
        "hidden_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 512,
        "feature_projection_input_dim": 80, "hidden_act": "silu", "layer_norm_eps": 1e-6,
        "conv_depthwise_kernel_size": 5, "position_embeddings_type": "relative_key",
        "left_max_position_embeddings": 10, "right_max_position_embeddings": 3,
        "add_adapter": false, "use_intermediate_ffn_before_adapter": false,
        "model_type": "wav2vec2-bert", "torch_dtype": "float16", "some_unknown_field": [1, 2]
    });
    let c = parse(&v).unwrap();
    let want = Wav2Vec2BertConfig {
        hidden_size: 256,
        num_hidden_layers: 3,
        num_attention_heads: 4,
        intermediate_size: 512,
        feature_projection_input_dim: 80,
        hidden_act: "silu".into(),
        layer_norm_eps: 1e-6,
        conv_depthwise_kernel_size: 5,
        position_embeddings_type: "relative_key".into(),
        left_max_position_embeddings: 10,
        right_max_position_embeddings: 3,
        add_adapter: false,
        use_intermediate_ffn_before_adapter: false,
        model_type: Some("wav2vec2-bert".into()),
        torch_dtype: Some("float16".into()),
    };
    assert_eq!(c, want);
    assert_eq!(c.head_dim(), 64);
    assert_eq!(c.num_relative_positions(), 14);
    // eps given as a JSON integer is a number too (Python would accept it).
    assert_eq!(parse(&json!({"layer_norm_eps": 0})).unwrap().layer_norm_eps, 0.0);
}

#[test]
fn wrong_types_name_the_field() {
    let int_fields = [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "feature_projection_input_dim",
        "conv_depthwise_kernel_size",
        "left_max_position_embeddings",
        "right_max_position_embeddings",
    ];
    for f in int_fields {
        for bad in [
            json!("1024"),
            json!(16.5),
            json!(-1),
            json!(null),
            json!(true),
            json!([1]),
        ] {
            expect_field_error(&with(f, bad), f, "expected a non-negative integer");
        }
    }
    for bad in [json!("1e-5"), json!(null), json!(false)] {
        expect_field_error(&with("layer_norm_eps", bad), "layer_norm_eps", "expected a number");
    }
    for f in ["add_adapter", "use_intermediate_ffn_before_adapter"] {
        for bad in [json!(0), json!("false"), json!(null)] {
            expect_field_error(&with(f, bad), f, "expected true or false");
        }
    }
    for bad in [json!(1), json!(null), json!(["swish"])] {
        expect_field_error(&with("hidden_act", bad), "hidden_act", "expected a string");
    }
    for f in ["position_embeddings_type", "model_type", "torch_dtype"] {
        expect_field_error(&with(f, json!(7)), f, "expected a string or null");
    }
    // Long values are shortened in the message.
    let long = "x".repeat(500);
    match parse(&with("hidden_size", json!(long))) {
        Err(e) => assert!(e.to_string().len() < 200, "{e}"),
        Ok(c) => panic!("{c:?}"),
    }
}

#[test]
fn unsupported_settings_are_errors() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("position_embeddings_type", json!("rotary"), "not implemented"),
        ("position_embeddings_type", json!("relative"), "not implemented"),
        ("position_embeddings_type", json!(null), "not implemented"),
        ("position_embeddings_type", json!("absolute"), "not a valid value"),
        ("hidden_act", json!("gelu"), "not implemented"),
        ("hidden_act", json!("relu"), "not implemented"),
        ("add_adapter", json!(true), "not implemented"),
        ("use_intermediate_ffn_before_adapter", json!(true), "not implemented"),
        ("num_attention_heads", json!(12), "not divisible"),
        ("conv_depthwise_kernel_size", json!(30), "must be odd"),
        ("layer_norm_eps", json!(-1e-5), "finite and >= 0"),
        ("model_type", json!("wav2vec2"), "expected \"wav2vec2-bert\""),
        ("hidden_size", json!(1u64 << 40), "absurdly large"),
    ];
    for (field, value, needle) in cases {
        expect_field_error(&with(field, value), field, needle);
    }
    for f in [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "feature_projection_input_dim",
        "conv_depthwise_kernel_size",
    ] {
        expect_field_error(&with(f, json!(0)), f, "must be > 0");
    }
    // A zero-width relative window is still a valid model (one distance bucket).
    let mut v = fixture_json();
    v["left_max_position_embeddings"] = json!(0);
    v["right_max_position_embeddings"] = json!(0);
    assert_eq!(parse(&v).unwrap().num_relative_positions(), 1);
}

#[test]
fn malformed_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("trunc.json", "{\"hidden_size\": 10"),
        ("array.json", "[1, 2]"),
        ("empty.json", ""),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        match Wav2Vec2BertConfig::load(&p) {
            Err(e @ Error::Format { .. }) => assert!(e.to_string().contains(name), "{e}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    let p = dir.path().join("nope.json");
    match Wav2Vec2BertConfig::load(&p) {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("nope.json"), "{e}"),
        other => panic!("{other:?}"),
    }
}
