//! Intel AMX (`tdpbf16ps`) over the layouts of [`super`]: a 32×32 f32 output block in four 16×16 tiles
//! (tmm0-3), two weight A-tiles (tmm4-5) and two x B-tiles (tmm6-7) per 32-wide k chunk, in a loop nest
//! blocked for the caches ([`linear`]).
//!
//! Linux hands out the AMX tile state only to processes that ask (`arch_prctl(ARCH_REQ_XCOMP_PERM,
//! XFEATURE_XTILEDATA)`); [`available`] asks once and reports false if the CPU, the OS or that request says
//! no. Tile instructions are written with `asm!` (the AMX intrinsics are not stable Rust); the compiler never
//! allocates tile registers itself, so tile state lives across the asm blocks of one call.

use super::{
    avx512, bf16_from_f32_slice, par_blocks, seq_blocks, Bf16Weights, Finish, NextPanel, Rows, COL_BLOCK, K_CHUNK,
    ROW_BLOCK,
};
use crate::alignedbuf::AlignedBuf;
use crate::gemm::Threads;
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::asm;
use std::sync::OnceLock;

/// AMX needs the CPU (cpuid), the OS saving the tile state (XCR0) and, on Linux, the process's request for it.
/// Only Linux is asked: macOS runs on no AMX-capable x86 CPU and has no `arch_prctl`, so AMX is off there.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::{__cpuid_count, _xgetbv};
    // SAFETY: cpuid is always available on x86-64; xgetbv only after checking OSXSAVE (leaf 1 ecx bit 27).
    unsafe {
        let l7 = __cpuid_count(7, 0);
        let (amx_bf16, amx_tile) = (l7.edx >> 22 & 1 == 1, l7.edx >> 24 & 1 == 1);
        if !(amx_bf16 && amx_tile) || __cpuid_count(1, 0).ecx >> 27 & 1 == 0 {
            return false;
        }
        // XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA): the OS saves the tile state.
        if _xgetbv(0) >> 17 & 3 != 3 {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(detect)
}

/// The 64-byte tile configuration (palette 1): eight tiles of 16 rows × 64 bytes.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

#[cfg(target_arch = "x86_64")]
const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// f32 flops per iteration of [`peak_stream`]: 4 `tdpbf16ps`, each 16·16·32 multiply-adds.
pub(super) const PEAK_FLOPS_PER_ITER: f64 = (4 * 16 * 16 * 32 * 2) as f64;

/// `iters` × 4 independent `tdpbf16ps` on zeroed tiles (throughput, not latency): the instruction's ceiling the
/// kernel is measured against ([`super::Bf16Kernel::instruction_peak`]).
///
/// # Safety
/// [`available`] returned true.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn peak_stream(iters: usize) {
    asm!("ldtilecfg [{}]", in(reg) &CONFIG as *const TileConfig, options(nostack, readonly));
    asm!(
        "tilezero tmm4",
        "tilezero tmm5",
        "tilezero tmm6",
        "tilezero tmm7",
        "2:",
        "tdpbf16ps tmm0, tmm4, tmm6",
        "tdpbf16ps tmm1, tmm4, tmm7",
        "tdpbf16ps tmm2, tmm5, tmm6",
        "tdpbf16ps tmm3, tmm5, tmm7",
        "dec {n}",
        "jnz 2b",
        n = inout(reg) iters => _,
        options(nostack, nomem)
    );
    asm!("tilerelease", options(nostack, nomem));
}

/// k chunks per k block: a row block's A micro-panel for one k block, packed ([`pack_panel`]), is 32 × 256
/// bf16 = 16 KiB, which stays in L1 while the column blocks' B-tiles stream past it from L2.
const KB: usize = 8;
/// Row blocks per task: their accumulators (4 × 32 × t_pad f32: 256 KiB at t_pad = 512) stay in L2 between
/// k blocks.
const GROUP: usize = 4;
/// Column blocks per column group: x's slice for one k block (16 × 16 KiB = 256 KiB) stays in L2 while the
/// group's row blocks pass over it.
const COLS: usize = 16;

/// Values in one packed A micro-panel, `[2][KB][16][32]`.
const PANEL: usize = ROW_BLOCK * KB * K_CHUNK;

thread_local! {
    /// A task's packed A micro-panels (one, or all of its `GROUP × k blocks`: [`linear`]) and its
    /// `[GROUP·32, t_pad]` accumulators, per thread.
    static BUFS: std::cell::RefCell<(AlignedBuf<u16>, AlignedBuf<f32>)> =
        std::cell::RefCell::new((AlignedBuf::zeroed(PANEL), AlignedBuf::zeroed(0)));
}

/// `dst = epilogue(W · x + bias)` on AMX, blocked for the caches: tasks of [`GROUP`] row blocks; per task,
/// column groups of [`COLS`] blocks, then k blocks of [`KB`] chunks, then its row blocks, each running its
/// packed A micro-panel past the group's column blocks ([`block`]). Each output element is computed by one
/// task, k chunk after k chunk in order, so the result does not depend on the thread count (nor on the
/// blocking: partial sums pass through memory as exact f32).
///
/// Why blocked: the 2×2 tile step loads 1 KiB per `tdpbf16ps`. A probe of that step on the Xeon with AMX ran at
/// ~95 % of the instruction's peak with its operands in L1, ~87 % streaming one of them from a 256 KiB span
/// (L2), ~70 % from 1 MiB and ~35 % from 4 MiB. Unblocked (each row block's W panel against all of x), every
/// row block re-read x, 1 MiB at T = 500 and k = 1024 but 4 MiB in a corpus pack of 2000 frames: the kernel
/// bench (`bf16_peak`, 1 thread) ran at 13 % of peak at T = 2000 and 21–28 % at T = 500; blocked, 20–21 % and
/// 21–28 %. Corpus run of 24 short files, bf16 checkpoint: 0.862× the wall time (6 of 6 pairs); 10 s: 0.998×.
/// What keeps it near a quarter of the peak at T = 500, 1 thread: the tile loop itself runs at ~40–45 % (a probe
/// of it at these sizes: ~80 % without the accumulators' round trip between k blocks, ~55–60 % with it; longer
/// k blocks push the micro-panel out of L1 and lose as much), and copying W's micro-panels, the epilogue and
/// packing x take the rest. Prefetching the next micro-panel into L2 during the tile loop ([`NextPanel`])
/// changes nothing on one thread but gains ~3.5 % of a 10 s bf16 run on two, where both threads' panel copies
/// otherwise wait on memory at once.
pub(super) fn linear(
    mut dst: Option<&mut [f32]>, // [n, t], or None: packed only (`finish`)
    finish: &Finish<'_>,
    xp: &[u16], // [t_pad/16][chunks*16][16][2]
    w: &Bf16Weights<'_>,
    chunks: usize,
    threads: Threads,
) {
    let (t, t_pad) = (finish.t, finish.t_pad);
    let row_blocks = w.n.div_ceil(ROW_BLOCK);
    let col_blocks = t_pad / COL_BLOCK;
    // One column group: one micro-panel at a time, rewritten in place (stays in L1). Several: each
    // (row block, k block) micro-panel keeps a slot of its own, packed in the first column group and read as is
    // by the others, so W is read from memory (and f32 weights rounded) once per call, not once per group.
    let (k_blocks, reused) = (chunks.div_ceil(KB), col_blocks > COLS);
    let slot = |i: usize, kb: usize| if reused { (i * k_blocks + kb) * PANEL } else { 0 };
    let task = |(g, mut dst): (usize, Option<&mut [f32]>)| {
        BUFS.with(|cell| {
            let (panels, acc) = &mut *cell.borrow_mut();
            acc.grow(GROUP * ROW_BLOCK * t_pad);
            panels.grow(if reused { GROUP * k_blocks * PANEL } else { PANEL });
            let rbs = GROUP.min(row_blocks - g * GROUP);
            for jg0 in (0..col_blocks).step_by(COLS) {
                let jg1 = (jg0 + COLS).min(col_blocks);
                for c0 in (0..chunks).step_by(KB) {
                    let c1 = (c0 + KB).min(chunks);
                    for i in 0..rbs {
                        let panel = &mut panels[slot(i, c0 / KB)..][..PANEL];
                        let mut next = None;
                        if jg0 == 0 {
                            pack_panel(panel, w, (g * GROUP + i) * ROW_BLOCK, c0, c1);
                            // The next step of this column group (next row block, or the next k block's first).
                            let (ni, nc0) = if i + 1 < rbs { (i + 1, c0) } else { (0, c0 + KB) };
                            next = (nc0 < chunks).then(|| NextPanel {
                                w,
                                r0: (g * GROUP + ni) * ROW_BLOCK,
                                c0: nc0,
                                nc: (nc0 + KB).min(chunks) - nc0,
                            });
                        }
                        let acc = &mut acc[i * ROW_BLOCK * t_pad..(i + 1) * ROW_BLOCK * t_pad];
                        // SAFETY: the caller checked availability; sizes follow the layouts (module docs).
                        unsafe { block(acc, panel, xp, chunks, t_pad, c0, c1, jg0, jg1, next) };
                    }
                }
            }
            for i in 0..rbs {
                let acc = &mut acc[i * ROW_BLOCK * t_pad..(i + 1) * ROW_BLOCK * t_pad];
                let rows = dst.as_deref_mut().map(|d| {
                    let d = &mut d[i * ROW_BLOCK * t..];
                    let len = d.len().min(ROW_BLOCK * t);
                    &mut d[..len]
                });
                finish.row_block(g * GROUP + i, acc, rows);
            }
        })
    };
    let (n, dst) = (finish.n, dst.take());
    match threads {
        Threads::Single => seq_blocks(dst, n, t, GROUP * ROW_BLOCK).enumerate().for_each(task),
        Threads::Rayon(_) => par_blocks(dst, n, t, GROUP * ROW_BLOCK).enumerate().for_each(task),
    }
}

/// Rows `r0 .. r0 + 32` of W, k chunks `c0 .. c1`, into the A-tile layout `[2 row tiles][c1 - c0][16][32]`
/// (each tile 1 KiB, contiguous: W's own rows, 2–8 KiB apart, would share a few L1 sets). f32 weights are
/// rounded to bf16 on the way ([`Bf16Weights::from_f32`]).
fn pack_panel(panel: &mut [u16] /* [2][c1 - c0][16][32] */, w: &Bf16Weights<'_>, r0: usize, c0: usize, c1: usize) {
    match w.rows() {
        Rows::Bf16(bits) => pack_rows(panel, bits, w.ld(), r0, c0, c1, |d, s| d.copy_from_slice(s)),
        // SAFETY: AVX-512 F checked (every AMX CPU has it).
        Rows::F32(f) if avx512::available() => unsafe { pack_panel_f32(panel, f, w.ld(), r0, c0, c1) },
        Rows::F32(f) => pack_rows(panel, f, w.ld(), r0, c0, c1, bf16_from_f32_slice),
    }
}

/// [`pack_panel`]'s loop over W `[n, ld]` of values `T`: `put(dst, src)` writes one 32-value chunk of a row.
#[inline(always)]
fn pack_rows<T>(
    panel: &mut [u16], // [2][c1 - c0][16][32]
    w: &[T],           // [n, ld]
    ld: usize,
    r0: usize,
    c0: usize,
    c1: usize,
    put: impl Fn(&mut [u16], &[T]),
) {
    let nc = c1 - c0;
    for r in 0..ROW_BLOCK {
        let from = (r0 + r) * ld + c0 * K_CHUNK;
        let base = (r / 16) * nc * 512 + (r % 16) * K_CHUNK;
        for (c, s) in w[from..from + nc * K_CHUNK].chunks_exact(K_CHUNK).enumerate() {
            put(&mut panel[base + c * 512..base + c * 512 + K_CHUNK], s);
        }
    }
}

/// [`pack_panel`] of f32 rows, rounded with AVX-512 ([`avx512::round_32`], bit for bit the scalar path).
///
/// # Safety
/// AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_panel_f32(panel: &mut [u16], f: &[f32], ld: usize, r0: usize, c0: usize, c1: usize) {
    // SAFETY: AVX-512 F is enabled in this function; chunks are 32 values each side.
    pack_rows(panel, f, ld, r0, c0, c1, |d, s| unsafe { avx512::round_32(d, s) })
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack_panel_f32(_: &mut [u16], _: &[f32], _: usize, _: usize, _: usize, _: usize) {
    unreachable!("AVX-512 is x86-64 only")
}

/// `acc[32, column blocks jb0..jb1] (+)= A · x[chunks c0..c1]` for one row block: zeroed first when c0 = 0,
/// else added to.
///
/// # Safety
/// [`available`] returned true; `panel` is `2·(c1 - c0)·512` values, `xp` the packed x with `chunks·16` pair
/// rows per column block and `t_pad / 32` blocks, `acc` ≥ 32·t_pad.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    acc: &mut [f32], // [32, t_pad]
    panel: &[u16],   // [2][c1 - c0][16][32]
    xp: &[u16],      // [t_pad/16][chunks*16][16][2]
    chunks: usize,
    t_pad: usize,
    c0: usize,
    c1: usize,
    jb0: usize,
    jb1: usize,
    next: Option<NextPanel<'_>>,
) {
    let (pairs, nc) = (chunks * 16, c1 - c0);
    let (steps, mut fetched) = ((jb1 - jb0) * nc, 0);
    assert!(panel.len() >= 2 * nc * 512 && acc.len() >= 32 * t_pad);
    assert!(xp.len() >= (t_pad / COL_BLOCK) * pairs * 64 && jb1 <= t_pad / COL_BLOCK);
    let ldc = t_pad * 4; // bytes between output rows
    asm!("ldtilecfg [{}]", in(reg) &CONFIG as *const TileConfig, options(nostack, readonly));
    for jb in jb0..jb1 {
        let c00 = acc.as_mut_ptr().add(jb * COL_BLOCK);
        let c01 = c00.add(16);
        let c10 = c00.add(16 * t_pad);
        let c11 = c10.add(16);
        if c0 == 0 {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
        } else {
            asm!(
                "tileloadd tmm0, [{a} + {s}*1]",
                "tileloadd tmm1, [{b} + {s}*1]",
                "tileloadd tmm2, [{c} + {s}*1]",
                "tileloadd tmm3, [{d} + {s}*1]",
                a = in(reg) c00, b = in(reg) c01, c = in(reg) c10, d = in(reg) c11, s = in(reg) ldc,
                options(nostack, readonly)
            );
        }
        let xb = xp.as_ptr().add(jb * pairs * 64);
        for c in c0..c1 {
            if let Some(p) = next {
                p.fetch_until((jb - jb0) * nc + c - c0, steps, &mut fetched);
            }
            let a0 = panel.as_ptr().add((c - c0) * 512);
            let a1 = panel.as_ptr().add((nc + c - c0) * 512);
            let b0 = xb.add(c * 16 * 32);
            let b1 = b0.add(pairs * 32);
            asm!(
                "tileloadd tmm4, [{a0} + {s}*1]",
                "tileloadd tmm6, [{b0} + {s}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm7, [{b1} + {s}*1]",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tileloadd tmm5, [{a1} + {s}*1]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a0, a1 = in(reg) a1, b0 = in(reg) b0, b1 = in(reg) b1, s = in(reg) 64usize,
                options(nostack, readonly)
            );
        }
        asm!(
            "tilestored [{a} + {s}*1], tmm0",
            "tilestored [{b} + {s}*1], tmm1",
            "tilestored [{c} + {s}*1], tmm2",
            "tilestored [{d} + {s}*1], tmm3",
            a = in(reg) c00, b = in(reg) c01, c = in(reg) c10, d = in(reg) c11, s = in(reg) ldc,
            options(nostack)
        );
    }
    asm!("tilerelease", options(nostack, nomem));
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn peak_stream(_: usize) {
    unreachable!("AMX is x86-64 only")
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    _: &mut [f32],
    _: &[u16],
    _: &[u16],
    _: usize,
    _: usize,
    _: usize,
    _: usize,
    _: usize,
    _: usize,
    _: Option<NextPanel<'_>>,
) {
    unreachable!("AMX is x86-64 only")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bf16::{bf16_from_f32, owned_rows, Bf16Kernel, RowsFrom};

    /// f32 weights packed by [`pack_panel`] (rounded on the way: AVX-512 where the CPU has it, else the scalar
    /// path) are the panel packed from the weights rounded at load, bit for bit, special values included: NaN
    /// (signalling and quiet, both signs) made quiet, infinities, the largest finite value (rounds to
    /// infinity), ties to even, denormals (kept, unlike `vcvtneps2bf16`, which flushes them), signed zero.
    /// Needs no AMX: this runs on every target, but where the CPU lacks AVX-512 both sides round with the scalar
    /// `bf16_from_f32`, so there it checks the panel layout of f32 rows only.
    #[test]
    fn panels_of_f32_weights_are_the_panels_of_rounded_weights() {
        let (n, k) = (64, 320);
        let special = [
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0xffc0_1234),
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::from_bits(0x3f80_8000),
            f32::from_bits(0x3f81_8000),
            f32::from_bits(0x0000_8001),
            f32::from_bits(0x807f_ffff),
            -0.0,
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let w: Vec<f32> = (0..n * k)
            .map(|i| match special.get(i % 97) {
                Some(&v) => v,
                None => {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    f32::from_bits((state >> 32) as u32)
                }
            })
            .collect();
        let (bits, ld) = owned_rows(Bf16Kernel::Amx, RowsFrom::F32(&w), n, k);
        assert_eq!(bits[0], bf16_from_f32(w[0]));
        let (rounded, stored) = (Bf16Weights::new(&bits, n, k, ld), Bf16Weights::from_f32(&w, n, k));
        for (r0, c0, c1) in [(0, 0, 8), (32, 0, 8), (0, 8, 10), (32, 3, 9)] {
            let (mut want, mut got) = (vec![0u16; PANEL], vec![1u16; PANEL]);
            pack_panel(&mut want, &rounded, r0, c0, c1);
            pack_panel(&mut got, &stored, r0, c0, c1);
            let len = 2 * (c1 - c0) * 512;
            assert_eq!(got[..len], want[..len], "rows {r0}.., chunks {c0}..{c1}");
        }
    }
}
