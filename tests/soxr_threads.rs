//! Resampling from several threads at once gives, bit for bit, what one thread gives (src/audio/soxr.rs,
//! "Threads"). Where libsoxr runs its SIMD engine `cr32s` (x86-64, aarch64 Linux) no call takes a lock and no
//! state is shared: this shows it. Where it runs its scalar engine `cr32` (a build without `cr32s`), the FFT
//! tables are process-wide statics that grow on demand and every call takes one lock: this binary holds only this
//! test and runs the threads FIRST, on a fresh process, while those tables are still growing (without the lock,
//! `cr32` segfaulted or gave wrong output under qemu-aarch64).

use std::path::Path;
use std::sync::{Arc, Barrier};
use w2vbert::audio::soxr::{engine, resample};

/// Rate pairs with different filter and FFT lengths (each thread starts at another one).
const RATES: [(u32, u32); 10] = [
    (44_100, 16_000),
    (8_000, 16_000),
    (96_000, 16_000),
    (22_050, 16_000),
    (16_000, 44_100),
    (48_000, 16_000),
    (11_025, 16_000),
    (32_000, 16_000),
    (16_000, 22_050),
    (24_000, 16_000),
];
const THREADS: usize = 6;
const ROUNDS: usize = 3;

/// Deterministic noise, `n` samples in ±0.25.
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5
        })
        .collect()
}

/// Half a second of input at each pair's input rate.
fn inputs() -> Vec<Vec<f32>> {
    RATES
        .iter()
        .enumerate()
        .map(|(i, &(from, _))| noise(from as usize / 2, i as u64 + 1))
        .collect()
}

#[test]
fn resampling_from_several_threads_equals_one_thread() {
    let inputs = Arc::new(inputs());
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (inputs, start) = (Arc::clone(&inputs), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let mut out = Vec::new();
                for round in 0..ROUNDS {
                    for j in 0..RATES.len() {
                        let i = (t + j + round) % RATES.len();
                        let (from, to) = RATES[i];
                        out.push((i, resample(&inputs[i], from, to, Path::new("threads")).unwrap()));
                    }
                }
                out
            })
        })
        .collect();
    let threaded: Vec<Vec<(usize, Vec<f32>)>> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let single: Vec<Vec<f32>> = RATES
        .iter()
        .zip(inputs.iter())
        .map(|(&(from, to), x)| resample(x, from, to, Path::new("single")).unwrap())
        .collect();
    let mut compared = 0;
    for (t, outs) in threaded.iter().enumerate() {
        assert_eq!(outs.len(), ROUNDS * RATES.len());
        for (i, y) in outs {
            let (from, to) = RATES[*i];
            let want = &single[*i];
            assert_eq!(y.len(), want.len(), "thread {t}: {from} -> {to} Hz length");
            let same = y.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "thread {t}: {from} -> {to} Hz differs from the single-threaded result"
            );
            compared += 1;
        }
    }
    let lock = if engine() == "cr32s" {
        "no lock"
    } else {
        "one lock around every call"
    };
    println!(
        "{compared} threaded resamples ({THREADS} threads) equal the single-threaded ones bit for bit \
         (libsoxr engine {}, {lock})",
        engine()
    );
}
