//! The naive reference of the fused attention: HF's formula, literally, one `[T, T]` score matrix per head,
//! in f64. Slow; for tests and benches.

use super::{check_sizes, RelPosAttention, Strides};

/// Reference attention on the channel-major buffers of [`super::relative_attention_cm`]: per head, materializes the
/// `[T, T]` score matrix following HF's formula literally (including `+ f32::MIN` on masked keys), everything
/// accumulated in f64. Slow; for tests and benches.
#[allow(clippy::too_many_arguments)]
pub fn relative_attention_cm_naive(
    cfg: &RelPosAttention,
    out: &mut [f32], // [n_heads*head_dim, t], row stride ldo ≥ t
    ldo: usize,
    q: &[f32], // [≥ n_heads*head_dim, t], row stride ldq
    ldq: usize,
    k: &[f32], // [≥ n_heads*head_dim, t], row stride ldk
    ldk: usize,
    v: &[f32], // [≥ n_heads*head_dim, t], row stride ldv
    ldv: usize,
    emb: &[f32],               // [left_max + right_max + 1, head_dim]
    key_mask: Option<&[bool]>, // [t], true = valid key
    t: usize,
) {
    let cm = Strides::channel_major;
    let (so, sq, sk, sv) = (cm(ldo), cm(ldq), cm(ldk), cm(ldv));
    check_sizes(cfg, out, so, q, sq, k, sk, v, sv, emb, key_mask, t);
    let dh = cfg.head_dim;
    let scale = 1.0 / (dh as f64).sqrt();
    let (l, r_max) = (cfg.left_max as isize, cfg.right_max as isize);
    let mut scores = vec![0f64; t * t]; // [T, T], reused for each head
    for h in 0..cfg.n_heads {
        let c0 = h * dh;
        let qv = |i: usize, c: usize| q[i * sq.ts + (c0 + c) * sq.cs] as f64;
        for i in 0..t {
            for j in 0..t {
                let bucket = ((j as isize - i as isize).clamp(-l, r_max) + l) as usize;
                let e = &emb[bucket * dh..(bucket + 1) * dh];
                let qk = (0..dh)
                    .map(|c| qv(i, c) * k[j * sk.ts + (c0 + c) * sk.cs] as f64)
                    .sum::<f64>();
                let qe = (0..dh).map(|c| qv(i, c) * e[c] as f64).sum::<f64>();
                let mut s = qk * scale + qe * scale;
                if key_mask.is_some_and(|m| !m[j]) {
                    s += f32::MIN as f64;
                }
                scores[i * t + j] = s;
            }
            let row = &mut scores[i * t..(i + 1) * t];
            softmax_f64(row);
            for c in 0..dh {
                out[i * so.ts + (c0 + c) * so.cs] = row
                    .iter()
                    .enumerate()
                    .map(|(j, &p)| p * v[j * sv.ts + (c0 + c) * sv.cs] as f64)
                    .sum::<f64>() as f32;
            }
        }
    }
}

/// In-place softmax of one row, in f64 (the naive reference's only helper).
fn softmax_f64(x: &mut [f64]) {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - m).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}
