//! What `--precision bf16` on an f32 checkpoint pays at load where the bf16 kernel reads a rounded copy of the
//! weights (AVX512-BF16, WidenF32; AMX reads the f32 weights as stored and rounds them in the kernel, so it pays
//! none of this), next to its two floors on this machine.
//!
//! ```text
//! cargo run --release --example round_cost -- CHECKPOINT_DIR/model.safetensors [LAYERS [ROUNDS]]
//! ```
//! Over the projection weights of the first LAYERS encoder layers (default 17), in rounds (default 5), each step
//! on a freshly opened mapping of a file the page cache holds, on the rayon pool (`RAYON_NUM_THREADS`):
//! - `read`: every cache line of the f32 weights read once from the mapping (what any use of them costs);
//! - `pages`: as many fresh zeroed pages as their bf16 copies take (`AlignedBuf::zeroed_populated`, which the
//!   rounding writes into: the kernel zeroes and maps each page);
//! - `round`: what loading does per weight (`Tensor::populate`, `bf16::owned_rows`, `Tensor::release_pages`).
//!
//! Prints the median of each. (Issue 23: the rounding was to cost no more than reading the weights once.)

use rayon::prelude::*;
use std::path::Path;
use std::time::Instant;
use w2vbert::kernels::alignedbuf::AlignedBuf;
use w2vbert::kernels::bf16::{self, RowsFrom};
use w2vbert::weights::Weights;

fn main() -> w2vbert::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: round_cost MODEL.safetensors [LAYERS [ROUNDS]]");
        std::process::exit(2);
    };
    let layers: usize = args.get(2).map_or(17, |s| s.parse().expect("LAYERS"));
    let rounds: usize = args.get(3).map_or(5, |s| s.parse().expect("ROUNDS"));
    let kernel = bf16::best_kernel().expect("a bf16 kernel on this CPU");
    // The projections' weights: every `.weight` `[n, k]` or `[n, k, 1]` (the pointwise convolutions) with k > 1
    // inside the first `layers` layers, the ones loading rounds (LayerNorm and the depthwise kernel stay f32).
    let names = |w: &Weights| -> Vec<String> {
        let projection = |s: &[usize]| (s.len() == 2 || s.len() == 3 && s[2] == 1) && s[1] > 1;
        let mut v: Vec<String> = (w.names().into_iter())
            .filter(|n| n.ends_with(".weight") && w.shape(n).is_some_and(projection))
            .filter(|n| (0..layers).any(|i| n.contains(&format!("encoder.layers.{i}."))))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let open = || Weights::open(Path::new(path));
    let w = open()?;
    let list = names(&w);
    let values: usize = list.iter().map(|n| w.shape(n).unwrap().iter().product::<usize>()).sum();
    println!(
        "{} weights, {:.2} GB f32 -> {:.2} GB bf16 ({}), {} rayon threads",
        list.len(),
        values as f64 * 4e-9,
        values as f64 * 2e-9,
        kernel.name(),
        rayon::current_num_threads()
    );
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (step, times) in times.iter_mut().enumerate() {
            let w = open()?;
            let tensors: Vec<_> = list
                .iter()
                .map(|n| w.get_any_shape(n))
                .collect::<w2vbert::Result<_>>()?;
            let t = Instant::now();
            // The bf16 copies are kept until the clock stops, as a loaded model keeps them.
            let kept: Vec<Option<AlignedBuf<u16>>> = tensors
                .par_iter()
                .map(|x| {
                    let (n, k) = (x.shape()[0], x.shape()[1]); // [n, k] or [n, k, 1]
                    match step {
                        0 => {
                            let s: f32 = x.data().iter().step_by(16).sum();
                            std::hint::black_box(s);
                            None
                        }
                        1 => Some(AlignedBuf::<u16>::zeroed_populated(n * k)),
                        _ => {
                            x.populate();
                            let (bits, _) = bf16::owned_rows(kernel, RowsFrom::F32(x.data()), n, k);
                            x.release_pages();
                            Some(bits)
                        }
                    }
                })
                .collect();
            let elapsed = t.elapsed().as_secs_f64();
            drop(kept);
            times.push(elapsed);
        }
    }
    for (name, mut v) in ["read", "pages", "round"].into_iter().zip(times) {
        v.sort_by(f64::total_cmp);
        println!(
            "{name:>5}: median {:.3} s (range {:.3}-{:.3})",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        );
    }
    Ok(())
}
