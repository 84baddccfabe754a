//! `Extractor::run_samples` / `run_interleaved` (in-memory audio, what the Python binding calls) against
//! `Extractor::run_file` on the same WAV: bit for bit, at 16 kHz, through the resampler, and for stereo.
//! The samples are read here by a minimal 16-bit PCM WAV parser, independent of the decoder under test.

mod common;

use common::*;
use std::path::Path;
use w2vbert::pipeline::{Extractor, Output, Request};

/// `(interleaved samples i16 / 32768, channels, sample rate)` of a 16-bit PCM WAV (soundfile's scaling).
fn read_pcm16(path: &Path) -> (Vec<f32>, usize, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(
        (&b[0..4], &b[8..12]),
        (&b"RIFF"[..], &b"WAVE"[..]),
        "{}",
        path.display()
    );
    let (mut at, mut fmt, mut data) = (12usize, None, None);
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &b[at + 8..(at + 8 + len).min(b.len())];
        match id {
            b"fmt " => fmt = Some(body),
            b"data" => data = Some(body),
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    let (fmt, data) = (fmt.expect("fmt chunk"), data.expect("data chunk"));
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    assert_eq!((u16_at(0), u16_at(14)), (1, 16), "{}: not 16-bit PCM", path.display());
    let channels = u16_at(2) as usize;
    let rate = u32::from_le_bytes(fmt[4..8].try_into().unwrap());
    let x = data
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
        .collect();
    (x, channels, rate)
}

fn extractor(request: &Request) -> Extractor {
    Extractor::load(&repo().join("checkpoints/tiny-random"), request, None).unwrap()
}

fn assert_same(a: &Output, b: &Output, what: &str) {
    assert_eq!((a.t, a.hidden_size, &a.mask), (b.t, b.hidden_size, &b.mask), "{what}");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(a.hidden_states.len(), b.hidden_states.len(), "{what}");
    for ((ka, ha), (kb, hb)) in a.hidden_states.iter().zip(&b.hidden_states) {
        assert_eq!(ka, kb, "{what}");
        assert!(bits(ha) == bits(hb), "{what}: hidden_states[{ka}] differs");
    }
    let (sa, sb) = (a.semantic.as_deref().map(bits), b.semantic.as_deref().map(bits));
    assert!(sa == sb, "{what}: semantic differs");
}

#[test]
fn samples_equal_the_file_bit_for_bit() {
    let request = Request {
        hidden_states: vec![0, 17],
        normalized: Some(17),
    };
    let ex = extractor(&request);
    // 16 kHz mono (no resampling), 22.05 kHz mono (the resampler runs), 16 kHz stereo (channels averaged).
    for name in ["arctic_a0007.wav", "espeak_22050.wav", "dec_stereo.wav"] {
        let path = fixture(&format!("audio/{name}"));
        let (x, channels, rate) = read_pcm16(&path);
        let from_file = ex.run_file(&path).unwrap();
        let from_memory = ex.run_interleaved(&x, channels, rate).unwrap();
        assert_same(&from_memory, &from_file, name);
        assert!(from_file.semantic.as_ref().unwrap().iter().any(|&v| v != 0.0));
        if channels == 1 {
            assert_same(&ex.run_samples(&x, rate).unwrap(), &from_file, name);
        }
    }
}

#[test]
fn a_different_rate_changes_the_result() {
    // The rate given is used: the same samples said to be 22.05 kHz instead of 16 kHz give other features.
    let ex = extractor(&Request::semantic());
    let (x, _, _) = read_pcm16(&fixture("audio/arctic_a0007.wav"));
    let a = ex.run_samples(&x, 16_000).unwrap();
    let b = ex.run_samples(&x, 22_050).unwrap();
    assert_ne!(a.t, b.t);
}

#[test]
fn bad_in_memory_audio_is_an_error_naming_it() {
    let ex = extractor(&Request::semantic());
    let (mut x, _, _) = read_pcm16(&fixture("audio/arctic_a0007.wav"));
    let err = |r: w2vbert::Result<Output>| r.err().expect("an error").to_string();
    let e = err(ex.run_samples(&x[..100], 16_000));
    assert!(e.contains(w2vbert::audio::IN_MEMORY) && e.contains("too short"), "{e}");
    let e = err(ex.run_samples(&x, 0));
    assert!(e.contains("0 Hz"), "{e}");
    let e = err(ex.run_interleaved(&x[..1001], 2, 16_000));
    assert!(e.contains("2 channel"), "{e}");
    let e = err(ex.run_interleaved(&x, 0, 16_000));
    assert!(e.contains("0 channel"), "{e}");
    x[777] = f32::NAN;
    let e = err(ex.run_samples(&x, 16_000));
    assert!(e.contains("input sample 777"), "{e}");
}
