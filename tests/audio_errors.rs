//! Decoding every supported format, downmixing, and bad input: each failure is an error naming the file.
//! Fixtures: `tests/fixtures/audio/` (cuts of arctic_a0007.wav, see `decoder_fixtures.json`).

use std::path::{Path, PathBuf};
use w2vbert::audio::{self, decode};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name)
}

fn spec() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture("decoder_fixtures.json")).unwrap()).unwrap()
}

/// `arctic_a0007.wav[start..start + len]` as f32, decoded from the 16-bit source.
fn source_cut(start: u64, len: u64) -> Vec<f32> {
    let d = decode::decode_file(&fixture("arctic_a0007.wav")).unwrap();
    assert_eq!((d.channels, d.sample_rate), (1, 16_000));
    d.interleaved[start as usize..(start + len) as usize].to_vec()
}

fn lossless_cut() -> Vec<f32> {
    let s = spec();
    source_cut(
        s["lossless"]["start"].as_u64().unwrap(),
        s["lossless"]["len"].as_u64().unwrap(),
    )
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn lossless_formats_decode_to_the_source_samples() {
    let want = lossless_cut();
    // 16-bit source values k/32768 are exact in 24/32-bit PCM, float and FLAC; 8-bit keeps 1/128 steps.
    for (name, tol) in [
        ("dec_s24.wav", 0.0),
        ("dec_s32.wav", 0.0),
        ("dec_f32.wav", 0.0),
        ("dec_f64.wav", 0.0),
        ("dec_wavex.wav", 0.0),
        ("dec.flac", 0.0),
        ("dec_u8.wav", 1.0 / 128.0 + 1e-6),
    ] {
        let d = decode::decode_file(&fixture(name)).unwrap();
        assert_eq!((d.channels, d.sample_rate), (1, 16_000), "{name}");
        let err = max_abs(&d.interleaved, &want);
        assert!(err <= tol, "{name}: max-abs {err} > {tol}");
        assert_eq!(
            audio::load_audio(&fixture(name)).unwrap(),
            d.interleaved,
            "{name}: 16 kHz mono passes through"
        );
    }
}

#[test]
fn stereo_is_averaged() {
    let s = spec();
    let left = lossless_cut();
    let right = source_cut(
        s["stereo_right_start"].as_u64().unwrap(),
        s["lossless"]["len"].as_u64().unwrap(),
    );
    let d = decode::decode_file(&fixture("dec_stereo.wav")).unwrap();
    assert_eq!(d.channels, 2);
    let (l, r): (Vec<f32>, Vec<f32>) = d.interleaved.chunks_exact(2).map(|c| (c[0], c[1])).unzip();
    assert_eq!(l, left, "left channel, interleaving");
    assert_eq!(r, right, "right channel");
    let mono = audio::load_audio(&fixture("dec_stereo.wav")).unwrap();
    let mean: Vec<f32> = left.iter().zip(&right).map(|(a, b)| (a + b) / 2.0).collect();
    assert_eq!(mono, mean);
}

/// Lossy codecs: same duration (gapless trimming) and strongly correlated with the source at the best lag.
#[test]
fn lossy_formats_match_duration_and_waveform() {
    let s = spec();
    let want = source_cut(
        s["lossy"]["start"].as_u64().unwrap(),
        s["lossy"]["len"].as_u64().unwrap(),
    );
    for name in ["dec.mp3", "dec.ogg"] {
        let got = audio::load_audio(&fixture(name)).unwrap();
        let dn = (got.len() as i64 - want.len() as i64).abs();
        assert!(dn <= 1152, "{name}: {} samples vs {}", got.len(), want.len());
        let mut best = (0i64, -1.0f64);
        for lag in -1200i64..=1200 {
            let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
            for (i, &w) in want.iter().enumerate() {
                let j = i as i64 + lag;
                if j < 0 || j >= got.len() as i64 {
                    continue;
                }
                let g = got[j as usize] as f64;
                xy += g * w as f64;
                xx += g * g;
                yy += (w as f64) * (w as f64);
            }
            let c = xy / (xx * yy).sqrt().max(1e-30);
            if c > best.1 {
                best = (lag, c);
            }
        }
        println!(
            "{name}: {} samples (source {}), best lag {}, correlation {:.4}",
            got.len(),
            want.len(),
            best.0,
            best.1
        );
        assert!(best.1 > 0.9, "{name}: correlation {} at lag {}", best.1, best.0);
        assert!(best.0.abs() <= 600, "{name}: lag {}", best.0);
        let f = audio::features_from_samples(&got, &fixture(name)).unwrap();
        assert!(f.data.iter().all(|v| v.is_finite()));
    }
}

fn expect_err(path: &Path, what: &str) -> String {
    let e = match audio::features_from_file(path) {
        Ok(f) => panic!("{}: expected an error ({what}), got T {}", path.display(), f.t),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(&path.display().to_string()),
        "{what}: message does not name the file: {e}"
    );
    e
}

/// A 16-bit mono WAV at 16 kHz with the given raw little-endian data bytes (and a header that may lie).
fn wav_bytes(format_tag: u16, bits: u16, data: &[u8], declared_len: Option<u32>) -> Vec<u8> {
    let ch = 1u16;
    let rate = 16_000u32;
    let block = ch * bits / 8;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format_tag.to_le_bytes());
    v.extend_from_slice(&ch.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * block as u32).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&declared_len.unwrap_or(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn bad_inputs_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    let e = expect_err(&p("missing.wav"), "missing");
    assert!(e.to_lowercase().contains("no such file"), "{e}");

    std::fs::write(p("empty.wav"), b"").unwrap();
    let e = expect_err(&p("empty.wav"), "empty");
    assert!(e.contains("empty"), "{e}");

    expect_err(dir.path(), "a directory");

    std::fs::write(p("text.wav"), b"this is not audio at all, just some text bytes......").unwrap();
    expect_err(&p("text.wav"), "not audio");

    // A valid header followed by nothing: decodes to zero samples.
    std::fs::write(p("nosamples.wav"), wav_bytes(1, 16, &[], None)).unwrap();
    expect_err(&p("nosamples.wav"), "no samples");

    // Truncated: the header announces far more data than the file holds.
    let real = std::fs::read(fixture("arctic_a0007.wav")).unwrap();
    std::fs::write(p("truncated.wav"), &real[..30]).unwrap();
    expect_err(&p("truncated.wav"), "truncated header");

    // Corrupt FLAC: frames overwritten with garbage.
    let mut flac = std::fs::read(fixture("dec.flac")).unwrap();
    let n = flac.len();
    for (i, b) in flac[n / 4..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    std::fs::write(p("corrupt.flac"), &flac).unwrap();
    // Either an error naming the file, or (if the decoder resyncs) finite features: never a panic.
    if let Err(e) = audio::features_from_file(&p("corrupt.flac")) {
        assert!(e.to_string().contains("corrupt.flac"), "{e}");
    }

    // Unsupported codec inside WAV: A-law tag with a bogus bit depth, and an unknown tag.
    std::fs::write(p("unknown_tag.wav"), wav_bytes(0x1234, 16, &[0; 4000], None)).unwrap();
    expect_err(&p("unknown_tag.wav"), "unsupported codec");

    // Too short: 300 and 559 samples (F = 0 and 1).
    for n in [300usize, 559] {
        let name = format!("short{n}.wav");
        std::fs::write(p(&name), wav_bytes(1, 16, &vec![1u8; n * 2], None)).unwrap();
        let e = expect_err(&p(&name), "too short");
        assert!(e.contains("too short"), "{e}");
    }

    // NaN and Inf samples in a float WAV.
    for (name, bad) in [("nan.wav", f32::NAN), ("inf.wav", f32::INFINITY)] {
        let mut data = Vec::new();
        for i in 0..4000 {
            let v = if i == 777 { bad } else { (i as f32 * 0.01).sin() * 0.1 };
            data.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(p(name), wav_bytes(3, 32, &data, None)).unwrap();
        let e = expect_err(&p(name), "non-finite");
        assert!(e.contains("777"), "{e}");
    }
}

/// `wav_bytes` at another sample rate (fields: rate at 24, byte rate at 28).
fn wav_bytes_at(rate: u32, data: &[u8]) -> Vec<u8> {
    let mut v = wav_bytes(1, 16, data, None);
    v[24..28].copy_from_slice(&rate.to_le_bytes());
    v[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
    v
}

/// A header claiming ~6 hours in front of 0.1 s of samples: decoded for what is there, and the sample buffer
/// is not sized by the claim (it used to reserve up to 1 GiB from the header's frame count).
#[test]
fn lying_length_is_decoded_for_what_is_there_without_allocating_for_the_claim() {
    let pcm: Vec<u8> = (0..1600i16)
        .flat_map(|i| ((i * 37) % 2000 - 1000).to_le_bytes())
        .collect();
    let claim = 0x2A00_0000u32;
    let mut bytes = wav_bytes(1, 16, &pcm, Some(claim));
    bytes[4..8].copy_from_slice(&(36 + claim).to_le_bytes()); // the RIFF size claims it too
    let d = decode::decode_bytes(bytes.clone(), Path::new("lying.wav")).unwrap();
    assert_eq!((d.interleaved.len(), d.channels, d.sample_rate), (1600, 1, 16_000));
    assert!(
        d.interleaved.capacity() <= bytes.len(),
        "capacity {} for a {}-byte file",
        d.interleaved.capacity(),
        bytes.len()
    );
    // The same through a file, and up to the fbank.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("lying.wav");
    std::fs::write(&p, &bytes).unwrap();
    assert_eq!(audio::features_from_file(&p).unwrap().fbank_frames, 8);
}

/// Past `MAX_AUDIO_SECONDS` a stream is refused, with a message naming the file and the limit. At 4 Hz the
/// limit is a few KB of samples, which would otherwise be resampled to 16 kHz (4000× more).
#[test]
fn audio_longer_than_the_limit_is_refused() {
    let rate = 4u32;
    let frames = audio::MAX_AUDIO_SECONDS as usize * rate as usize;
    let at_limit = vec![0x10u8; frames * 2];
    let d = decode::decode_bytes(wav_bytes_at(rate, &at_limit), Path::new("ok.wav")).unwrap();
    assert_eq!(d.frames(), frames);
    let over = vec![0x10u8; (frames + 1) * 2];
    let e = decode::decode_bytes(wav_bytes_at(rate, &over), Path::new("dir/long.wav"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("dir/long.wav") && e.contains("600 s limit"), "{e}");
    // Stopping instead keeps exactly the limit; the speaker-prompt path (first 15 s only) stops.
    let d = decode::decode_bytes_with(wav_bytes_at(rate, &over), Path::new("x.wav"), decode::AtLimit::Stop).unwrap();
    assert_eq!(d.frames(), frames);
    let mut loud = vec![0u8; 0];
    for i in 0..(frames + 1) {
        loud.extend_from_slice(&(((i * 7919) % 20000) as i16 - 10000).to_le_bytes());
    }
    let x = audio::Preprocess::Indextts2SpeakerPrompt
        .load_bytes(wav_bytes_at(rate, &loud), Path::new("long_prompt.wav"))
        .unwrap();
    assert_eq!(x.len(), audio::SPEAKER_PROMPT_SAMPLES * 320 / 441);
}

/// The in-memory entry decodes exactly what the file entry decodes.
#[test]
fn decode_bytes_equals_decode_file() {
    for name in ["dec.flac", "dec.mp3", "dec.ogg", "dec_stereo.wav", "dec_s24.wav"] {
        let from_file = decode::decode_file(&fixture(name)).unwrap();
        let bytes = std::fs::read(fixture(name)).unwrap();
        let from_bytes = decode::decode_bytes(bytes, Path::new(name)).unwrap();
        assert_eq!(from_file.interleaved, from_bytes.interleaved, "{name}");
        assert_eq!(
            (from_file.channels, from_file.sample_rate),
            (from_bytes.channels, from_bytes.sample_rate)
        );
    }
}
