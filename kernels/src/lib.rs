//! `w2vbert-kernels`: the CPU kernels of the w2vbert engine. Knows nothing of the model. Holds what the engine
//! runs (activations channel-major, `[channels, T]`), with the scalar references and helpers its tests and benches
//! check it against; nothing else.
//!
//! Conventions (after llm.c): kernels are plain functions, outputs first, then inputs, then sizes, with a
//! shape comment on every slice argument. Matrices are row-major. Every SIMD kernel has a scalar reference
//! (`*_ref`) beside it, always compiled, and a property test comparing the two.
//!
//! Sizes are the caller's responsibility: a kernel asserts that its slices are large enough (a mismatch is
//! a programming error in the engine, never a user-input path — the engine validates user data first).

pub mod activation;
pub mod alignedbuf;
pub mod attention;
pub mod bf16;
pub mod conv;
pub mod cpu;
pub mod gemm;
pub mod math;
pub mod norm;
