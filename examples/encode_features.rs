//! Run the encoder on given input features, to tell encoder parity from front-end parity.
//!
//! ```text
//! cargo run --release --example encode_features -- CHECKPOINT_DIR FEATURES.npy OUT.npy [K [MASK.npy]]
//! ```
//! FEATURES.npy: f32 `[T, 160]` (e.g. what HF's SeamlessM4TFeatureExtractor produced); MASK.npy: f32 `[T]`
//! (1.0 valid, 0.0 masked: HF's attention_mask), all rows valid when absent.
//! Writes raw `hidden_states[K]` (default 17) as f32 `[T, hidden]`. Used by scripts/fullsize_parity.py.

use std::path::Path;
use w2vbert::model::Wav2Vec2BertModel;
use w2vbert::output::{read_npy, write_npy};

fn main() -> w2vbert::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: encode_features CHECKPOINT_DIR FEATURES.npy OUT.npy [K [MASK.npy]]");
        std::process::exit(2);
    }
    let k: usize = match args.get(4).map(|s| s.parse()) {
        None => 17,
        Some(Ok(k)) => k,
        Some(Err(_)) => {
            return Err(w2vbert::Error::Invalid(format!(
                "K must be an integer, got {}",
                args[4]
            )))
        }
    };
    let (feats, shape) = read_npy(Path::new(&args[2]))?;
    if shape.len() != 2 {
        return Err(w2vbert::Error::format(
            &args[2],
            format!("expected [T, 160], got {shape:?}"),
        ));
    }
    let model = Wav2Vec2BertModel::load(Path::new(&args[1]), k)?;
    let mask = match args.get(5) {
        None => vec![true; shape[0]],
        Some(p) => {
            let (m, mshape) = read_npy(Path::new(p))?;
            if mshape != [shape[0]] {
                return Err(w2vbert::Error::format(
                    p,
                    format!("mask must be [{}], got {mshape:?}", shape[0]),
                ));
            }
            m.iter().map(|&v| v != 0.0).collect()
        }
    };
    let out = model.forward(&feats, &mask, shape[0], &[k])?;
    write_npy(Path::new(&args[3]), &out[0], &[shape[0], model.config.hidden_size])
}
