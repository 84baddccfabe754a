//! What a run computes and writes, decided from the flags before anything is loaded; how a result is written;
//! and when an existing output counts as complete (so a rerun skips it).

use crate::{Format, RunArgs};
use std::path::Path;
use w2vbert::audio::{Features, FEATURE_DIM};
use w2vbert::output;
use w2vbert::pipeline::{Output, Request, SEMANTIC_LAYER};
use w2vbert::{Error, Result};

/// What is computed and written, decided from the flags before anything is loaded.
pub struct Plan {
    /// None with `--features-only`.
    pub request: Option<Request>,
    pub format: Format,
}

impl Plan {
    pub fn ext(&self) -> &'static str {
        match self.format {
            Format::Npy => "npy",
            Format::Safetensors => "safetensors",
        }
    }
}

pub fn plan(args: &RunArgs) -> Result<Plan> {
    if args.features_only {
        return Ok(Plan {
            request: None,
            format: args.format.unwrap_or(Format::Npy),
        });
    }
    if let Some(layers) = &args.layers {
        let mut ks: Vec<usize> = Vec::with_capacity(layers.len());
        for &k in layers {
            if !ks.contains(&k) {
                ks.push(k);
            }
        }
        if ks.is_empty() {
            return Err(Error::Invalid("--layers needs at least one hidden-state index".into()));
        }
        if args.format == Some(Format::Npy) {
            return Err(Error::Invalid(
                "--layers writes several arrays per input: use --format safetensors (its default)".into(),
            ));
        }
        let normalized = (!args.no_normalize && ks.contains(&SEMANTIC_LAYER)).then_some(SEMANTIC_LAYER);
        return Ok(Plan {
            request: Some(Request {
                hidden_states: ks,
                normalized,
            }),
            format: Format::Safetensors,
        });
    }
    let k = args.layer;
    let format = args.format.unwrap_or(Format::Npy);
    if args.no_normalize {
        return Ok(Plan {
            request: Some(Request {
                hidden_states: vec![k],
                normalized: None,
            }),
            format,
        });
    }
    if k != SEMANTIC_LAYER && args.stats.is_none() {
        return Err(Error::Invalid(format!(
            "--layer {k}: the default stats are IndexTTS2's, made for hidden_states[{SEMANTIC_LAYER}]; pass \
             --no-normalize for raw hidden_states[{k}], or --stats FILE with statistics of layer {k}"
        )));
    }
    Ok(Plan {
        request: Some(Request {
            hidden_states: vec![],
            normalized: Some(k),
        }),
        format,
    })
}

/// The named arrays of one result, in file order. Encoder: `hidden_states.K` (raw, [T, hidden]) for each K
/// asked for, `semantic` ([T, hidden]) when normalized, `mask` ([T], 1.0 valid / 0.0 the padded last row of an
/// odd frame count). Features: `input_features` ([T, 160]) and `mask`.
pub enum Payload {
    Features(Features),
    Encoded(Output),
}

impl Payload {
    pub fn t(&self) -> usize {
        match self {
            Payload::Features(f) => f.t,
            Payload::Encoded(o) => o.t,
        }
    }

    pub fn write(&self, path: &Path, format: Format) -> Result<()> {
        let (t, width, mask) = match self {
            Payload::Features(f) => (f.t, FEATURE_DIM, &f.mask),
            Payload::Encoded(o) => (o.t, o.hidden_size, &o.mask),
        };
        let shape = vec![t, width];
        let mut arrays: Vec<(String, &[f32])> = Vec::new();
        match self {
            Payload::Features(f) => arrays.push(("input_features".into(), &f.data)),
            Payload::Encoded(o) => {
                for (k, h) in &o.hidden_states {
                    arrays.push((format!("hidden_states.{k}"), h));
                }
                if let Some(s) = &o.semantic {
                    arrays.push(("semantic".into(), s));
                }
            }
        }
        match format {
            Format::Npy => {
                // One array: the semantic features if computed, else the single hidden state (the plan
                // guarantees exactly one).
                let data = arrays
                    .last()
                    .ok_or_else(|| Error::Invalid("nothing was computed".into()))?
                    .1;
                output::write_npy(path, data, &shape)
            }
            Format::Safetensors => {
                let m: Vec<f32> = mask.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect();
                let mut tensors: Vec<(String, Vec<usize>, &[f32])> =
                    arrays.into_iter().map(|(n, d)| (n, shape.clone(), d)).collect();
                tensors.push(("mask".into(), vec![t], &m));
                output::write_safetensors(path, &tensors)
            }
        }
    }
}

/// Names a complete output of this plan holds (safetensors), and the row width of its arrays.
pub fn expected(plan: &Plan, width: usize) -> (Vec<String>, usize) {
    let mut names = vec!["mask".to_string()];
    match &plan.request {
        None => names.push("input_features".into()),
        Some(r) => {
            names.extend(r.hidden_states.iter().map(|k| format!("hidden_states.{k}")));
            if r.normalized.is_some() {
                names.push("semantic".into());
            }
        }
    }
    names.sort();
    names.dedup();
    (names, width)
}

/// A complete output of this plan: valid header, exact size, the expected arrays with consistent shapes.
pub fn is_complete(path: &Path, format: Format, names: &[String], width: usize) -> bool {
    match format {
        Format::Npy => matches!(output::check_npy(path).as_deref(), Ok([t, w]) if *t > 0 && *w == width),
        Format::Safetensors => match output::check_safetensors(path) {
            Ok(ts) => {
                let t = match ts.iter().find(|(n, _)| n == "mask") {
                    Some((_, s)) if s.len() == 1 && s[0] > 0 => s[0],
                    _ => return false,
                };
                ts.len() == names.len()
                    && ts.iter().zip(names).all(|((n, s), want)| {
                        n == want && (n == "mask" || (s.len() == 2 && s[0] == t && s[1] == width))
                    })
            }
            Err(_) => false,
        },
    }
}
