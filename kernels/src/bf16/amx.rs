//! Intel AMX microkernel (`tdpbf16ps`) over the packed layouts of [`super`]: a 32×32 f32 output block in four
//! 16×16 tiles (tmm0-3), two weight A-tiles (tmm4-5) and two x B-tiles (tmm6-7) per 32-wide k chunk.
//!
//! Linux hands out the AMX tile state only to processes that ask (`arch_prctl(ARCH_REQ_XCOMP_PERM,
//! XFEATURE_XTILEDATA)`); [`available`] asks once and reports false if the CPU, the OS or that request says
//! no. Tile instructions are written with `asm!` (the AMX intrinsics are not stable Rust); the compiler never
//! allocates tile registers itself, so tile state lives across the asm blocks of one call.

#[cfg(target_arch = "x86_64")]
use super::COL_BLOCK;
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

/// Flops per second of one core's `tdpbf16ps` stream (4 independent accumulator tiles fed by 4 zeroed
/// source tiles, no memory operands; best of 5 runs of ~1 ms): the instruction's ceiling the kernel is
/// measured against (`cargo bench --bench kernels -- bf16_peak`). `None` without AMX.
pub fn peak_flops() -> Option<f64> {
    if !available() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        const ITERS: usize = 1 << 14;
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = std::time::Instant::now();
            // SAFETY: AMX available (checked above); the loop touches tile registers only.
            unsafe { tdp_loop(ITERS) };
            best = best.min(t.elapsed().as_secs_f64());
        }
        // 4 tdpbf16ps per iteration, each 16·16·32 multiply-adds.
        Some((ITERS * 4 * 16 * 16 * 32 * 2) as f64 / best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// `iters` × 4 independent `tdpbf16ps` on zeroed tiles (throughput, not latency).
#[cfg(target_arch = "x86_64")]
unsafe fn tdp_loop(iters: usize) {
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

/// `acc[32, t_pad] (+)= W[panel rows, chunks c0..c1] · x[chunks c0..c1]` for one 32-row block.
///
/// # Safety
/// [`available`] returned true; `panel` is 32 rows of W at stride `ld`, each `chunks·32` values long (the
/// last one may end there), `xp` the packed x with `chunks·16` pair rows per column block and `t_pad / 32`
/// blocks, `acc` ≥ 32·t_pad.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn row_block(
    acc: &mut [f32], // [32, t_pad]
    panel: &[u16],   // [32 rows at stride ld][chunks*32]
    ld: usize,
    xp: &[u16], // [t_pad/16][chunks*16][16][2]
    chunks: usize,
    t_pad: usize,
    c0: usize, // k chunks c0..c1 of this pass; c0 == 0 starts from zero, else adds to acc
    c1: usize,
) {
    let pairs = chunks * 16;
    assert!(panel.len() >= 31 * ld + chunks * 32 && acc.len() >= 32 * t_pad);
    assert!(xp.len() >= (t_pad / COL_BLOCK) * pairs * 64);
    let ldc = t_pad * 4; // bytes between output rows
    asm!("ldtilecfg [{}]", in(reg) &CONFIG as *const TileConfig, options(nostack, readonly));
    {
        for jb in 0..t_pad / COL_BLOCK {
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
                // A-tiles: rows 0..16 and 16..32 of the panel, columns 32c.., at W's row stride.
                let a0 = panel.as_ptr().add(c * 32);
                let a1 = a0.add(16 * ld);
                let b0 = xb.add(c * 16 * 32);
                let b1 = b0.add(pairs * 32);
                asm!(
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm6, [{b0} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tileloadd tmm7, [{b1} + {sb}*1]",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a0, a1 = in(reg) a1, b0 = in(reg) b0, b1 = in(reg) b1,
                    sa = in(reg) 2 * ld, sb = in(reg) 64usize,
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
    }
    asm!("tilerelease", options(nostack, nomem));
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub unsafe fn row_block(_: &mut [f32], _: &[u16], _: usize, _: &[u16], _: usize, _: usize, _: usize, _: usize) {
    unreachable!("AMX is x86-64 only")
}
