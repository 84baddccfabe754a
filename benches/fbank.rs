//! Front-end throughput in audio seconds per second (criterion's "elements" = seconds of audio).
//!
//! `cargo bench --bench fbank -- --warm-up-time 1 --measurement-time 3`
//! (scripts/bench_frontend.py runs the two `fbank_10s_16k` benches and compares them with HF's extractor.)

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::{Path, PathBuf};
use w2vbert::audio;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name)
}

fn bench(c: &mut Criterion) {
    // 10 s of real speech at 16 kHz: arctic_a0007 and the soxr-resampled espeak clip, looped.
    let mut speech = audio::load_audio(&fixture("arctic_a0007.wav")).unwrap();
    speech.extend(audio::load_audio(&fixture("espeak_16k_soxr.flac")).unwrap());
    let x: Vec<f32> = speech.iter().cycle().take(160_000).copied().collect();
    let src = Path::new("bench");

    let mut g = c.benchmark_group("frontend");
    g.throughput(Throughput::Elements(10));
    g.bench_function("fbank_10s_16k", |b| {
        b.iter(|| audio::features_from_samples(&x, src).unwrap())
    });
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    g.bench_function("fbank_10s_16k_1thread", |b| {
        b.iter(|| one.install(|| audio::features_from_samples(&x, src).unwrap()))
    });
    // 9.09 s at 22.05 kHz: decode + resample + fbank.
    let esp = fixture("espeak_22050.wav");
    g.throughput(Throughput::Elements(9));
    // Resampling alone (22.05 kHz -> 16 kHz; the filter table is cached after the first call).
    let d = audio::decode::decode_file(&esp).unwrap();
    let mono = audio::decode::downmix(&d.interleaved, d.channels);
    g.bench_function("resample_espeak_22050_9s", |b| {
        b.iter(|| audio::soxr::resample(&mono, d.sample_rate, audio::SAMPLE_RATE, &esp).unwrap())
    });
    g.bench_function("file_espeak_22050_9s", |b| {
        b.iter(|| audio::features_from_file(&esp).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
