//! `convert`'s dtype casts: widening to f32 is exact, narrowing to f16 / bf16 rounds to nearest, ties to even
//! (`half`), and a finite value that would overflow to ±inf is an error.

use super::OutDtype;
use crate::weights::{widen_bf16, widen_f16};
use safetensors::Dtype;

/// `src` (little-endian `from` values) into `out` as `to`. Returns how many non-zero values became zero; a finite
/// value that overflows the target is an error (message without the tensor name; the caller adds it).
pub(super) fn cast(from: Dtype, src: &[u8], to: OutDtype, out: &mut Vec<u8>) -> std::result::Result<u64, String> {
    out.clear();
    if from == to.dtype() {
        out.extend_from_slice(src);
        return Ok(0);
    }
    let wide: Vec<f32> = match from {
        Dtype::F32 => src
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => widen_f16(src),
        Dtype::BF16 => widen_bf16(src),
        other => return Err(format!("dtype {other:?} cannot be converted")),
    };
    match to {
        OutDtype::F32 => {
            out.reserve(wide.len() * 4);
            out.extend(wide.iter().flat_map(|v| v.to_le_bytes()));
            Ok(0)
        }
        OutDtype::F16 => narrow(&wide, out, F16_BITS, |x| half::f16::from_f32(x).to_bits()),
        OutDtype::Bf16 => narrow(&wide, out, BF16_BITS, |x| half::bf16::from_f32(x).to_bits()),
    }
}

/// A 16-bit float format: its name and exponent / mantissa masks.
struct Bits16 {
    name: &'static str,
    exp: u16,
    man: u16,
}

const F16_BITS: Bits16 = Bits16 {
    name: "f16 (largest finite 65504)",
    exp: 0x7c00,
    man: 0x03ff,
};

const BF16_BITS: Bits16 = Bits16 {
    name: "bf16",
    exp: 0x7f80,
    man: 0x007f,
};

/// Rounds every value with `to_bits` (round to nearest, ties to even) into `out` as little-endian bits.
fn narrow(
    wide: &[f32],
    out: &mut Vec<u8>,
    fmt: Bits16,
    to_bits: impl Fn(f32) -> u16,
) -> std::result::Result<u64, String> {
    out.reserve(wide.len() * 2);
    let mut flushed = 0u64;
    for (i, &x) in wide.iter().enumerate() {
        let b = to_bits(x);
        // Exponent all ones, mantissa zero: ±inf, from a finite value only by overflow.
        if b & fmt.exp == fmt.exp && b & fmt.man == 0 && x.is_finite() {
            return Err(format!("value {x:e} at index {i} overflows {}", fmt.name));
        }
        if b & 0x7fff == 0 && x != 0.0 {
            flushed += 1;
        }
        out.extend_from_slice(&b.to_le_bytes());
    }
    Ok(flushed)
}
