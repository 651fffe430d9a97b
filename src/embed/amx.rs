//! What the AMX kernels (bf16 `tdpbf16ps`, int8 `tdpbusd`) share: detection, the once-per-process
//! tile-state permission Linux requires, the self-check, and the tile product itself.
//!
//! **Unverified**: written without an AMX CPU to run it on. Detection is exact (CPUID and the
//! kernel's answer), so CPUs without AMX never reach a tile instruction. Where AMX exists, each
//! AMX kernel first checks itself once per process against a verified kernel on a small product
//! and is only picked if it agrees (a mismatch is logged as an error); the kernels' tests compare
//! them with the verified kernels where AMX exists and say SKIP elsewhere.

/// Whether the AMX kernels may be picked (`VDB_AMX=1`). Off by default until they have run on an
/// AMX machine: the self-check guards against wrong numbers, not against a fault in an untried
/// tile instruction, which would kill the process. Tests use [`usable`] directly.
pub fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        let on = matches!(
            std::env::var("VDB_AMX").map(|v| v.trim().to_ascii_lowercase()).as_deref(),
            Ok("1" | "true" | "yes" | "on")
        );
        if !on && (usable(Feature::Bf16) || usable(Feature::Int8)) {
            log::info!("this CPU has AMX; its kernels are not verified yet and stay off unless VDB_AMX=1");
        }
        on
    })
}

/// The AMX compute extension a kernel needs (besides AMX-TILE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Bf16,
    Int8,
}

/// An AMX kernel's check of itself against a verified kernel, run once per process before it is
/// first picked: `agrees` multiplies a small product ([`check_inputs`]) both ways. A disagreement
/// is logged as an error (`complaint`) and the AMX kernel is not used.
pub struct SelfCheck {
    pub feature: Feature,
    pub agrees: fn() -> bool,
    pub complaint: &'static str,
}

impl SelfCheck {
    /// Whether the AMX kernel agreed (checked on the first call of the process).
    pub fn passes(&self) -> bool {
        static OK: [std::sync::OnceLock<bool>; 2] = [const { std::sync::OnceLock::new() }; 2];
        *OK[self.feature as usize].get_or_init(|| {
            let ok = (self.agrees)();
            if !ok {
                log::error!("{}", self.complaint);
            }
            ok
        })
    }
}

/// The self-checks' product `(m, out, x, w)` for `inp` inputs: 37 rows (two 16-row tiles and a
/// remainder), 70 outputs (a partial panel).
pub fn check_inputs(inp: usize) -> (usize, usize, Vec<f32>, Vec<f32>) {
    let (m, out) = (37, 70);
    let x: Vec<f32> = (0..m * inp).map(|i| ((i * 7919) % 1000) as f32 / 300.0 - 1.5).collect();
    let w: Vec<f32> = (0..out * inp).map(|i| ((i * 104729) % 1000) as f32 / 5000.0 - 0.1).collect();
    (m, out, x, w)
}

/// The CPU has AMX-TILE and `feature` (CPUID leaf 7 EDX: bit 24 AMX-TILE, 22 AMX-BF16, 25
/// AMX-INT8) and Linux gave this process the tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`, asked once per process: without it the first tile instruction raises
/// SIGILL).
pub fn usable(feature: Feature) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        static GRANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let edx = if __cpuid(0).eax >= 7 { __cpuid_count(7, 0).edx } else { 0 };
        let bit = match feature {
            Feature::Bf16 => 22,
            Feature::Int8 => 25,
        };
        edx & (1 << 24) != 0 && edx & (1 << bit) != 0 && *GRANTED.get_or_init(request_tile_state)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = feature;
        false
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_state() -> bool {
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: the arch_prctl system call with integer arguments; it only changes the extended
    // states this process may use (and fails harmlessly where they are unsupported).
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(all(target_arch = "x86_64", not(target_os = "linux")))]
fn request_tile_state() -> bool {
    false
}

/// `ldtilecfg`'s 64-byte operand (palette 1).
#[repr(C, align(64))]
pub struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
    reserved2: [u8; 16],
}

impl TileConfig {
    /// Tiles `tmm0..` with the given rows, each 64 bytes wide.
    pub fn new(rows: &[usize]) -> TileConfig {
        let mut cfg = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
            reserved2: [0; 16],
        };
        for (i, &r) in rows.iter().enumerate() {
            assert!((1..=16).contains(&r), "a tile has 1 to 16 rows, not {r}");
            cfg.colsb[i] = 64;
            cfg.rows[i] = r as u8;
        }
        cfg
    }
}

/// Bytes of one tile row: inputs per AMX step (64 `u8` or 32 bf16).
pub const STEP_BYTES: usize = 64;

/// `mr` (<= 16) rows x 32 channels on AMX (`tdpbusd` for [`Feature::Int8`], `tdpbf16ps` for
/// [`Feature::Bf16`]): C tiles tmm0/tmm1 (channels 0-15 / 16-31, 4-byte sums in rows of 32 at
/// `c`; read from `c` first when `load_c`, zeroed otherwise; written back), A tile tmm2 (mr rows
/// x 64 bytes of inputs, rows `a_stride` bytes apart), B tiles tmm3/tmm4 (16 groups of 4 bytes x
/// 16 channels: exactly the packed panel's layout, rows 128 bytes apart), over `k_bytes` bytes of
/// each row of `a` (a multiple of [`STEP_BYTES`]). UNVERIFIED: never run (no AMX CPU was
/// available when it was written).
///
/// # Safety
/// The CPU has the feature and the process the tile state ([`usable`]); `a` holds `mr` rows of
/// `k_bytes` bytes, `a_stride` apart; `b` holds `k_bytes * 32` bytes; `c` holds `mr` rows of 32
/// 4-byte sums.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile_product(
    feature: Feature,
    a: *const u8,
    a_stride: usize,
    mr: usize,
    b: *const u8,
    k_bytes: usize,
    c: *mut u8,
    load_c: bool,
) {
    use super::panel::NR;
    let cfg = TileConfig::new(&[mr, mr, mr, 16, 16]);
    // C rows: NR 4-byte sums; B rows: one group (4 bytes) of NR channels.
    let (c_stride, b_stride) = (NR * 4, NR * 4);
    let (c0, c1) = (c, c.wrapping_add(16 * 4));
    // SAFETY (all blocks): the caller bounds `a`, `b` and `c`; every tile load and store stays
    // inside them; compiled Rust code never uses the tile registers, so their state carries
    // from one asm block to the next; `tilerelease` ends it.
    unsafe {
        std::arch::asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly));
        if load_c {
            std::arch::asm!(
                "tileloadd tmm0, [{c0} + {s}*1]",
                "tileloadd tmm1, [{c1} + {s}*1]",
                c0 = in(reg) c0, c1 = in(reg) c1, s = in(reg) c_stride, options(nostack, readonly),
            );
        } else {
            std::arch::asm!("tilezero tmm0", "tilezero tmm1", options(nostack, nomem));
        }
        for k0 in (0..k_bytes).step_by(STEP_BYTES) {
            let ap = a.add(k0);
            // 64 bytes of a row are 16 groups of 4 bytes: 16 rows of the panel, NR * 4 bytes each.
            let b0 = b.add(k0 * NR);
            let b1 = b0.add(16 * 4);
            // The two features differ in the dot-product instruction only.
            macro_rules! step {
                ($dp0:literal, $dp1:literal) => {
                    std::arch::asm!(
                        "tileloadd tmm2, [{a} + {sa}*1]",
                        "tileloadd tmm3, [{b0} + {sb}*1]",
                        "tileloadd tmm4, [{b1} + {sb}*1]",
                        $dp0,
                        $dp1,
                        a = in(reg) ap, sa = in(reg) a_stride, b0 = in(reg) b0, b1 = in(reg) b1, sb = in(reg) b_stride,
                        options(nostack, readonly),
                    )
                };
            }
            match feature {
                Feature::Int8 => step!("tdpbusd tmm0, tmm2, tmm3", "tdpbusd tmm1, tmm2, tmm4"),
                Feature::Bf16 => step!("tdpbf16ps tmm0, tmm2, tmm3", "tdpbf16ps tmm1, tmm2, tmm4"),
            }
        }
        std::arch::asm!(
            "tilestored [{c0} + {s}*1], tmm0",
            "tilestored [{c1} + {s}*1], tmm1",
            "tilerelease",
            c0 = in(reg) c0, c1 = in(reg) c1, s = in(reg) c_stride, options(nostack),
        );
    }
}
