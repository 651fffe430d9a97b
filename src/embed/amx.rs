//! What the AMX kernels (bf16 `tdpbf16ps`, int8 `tdpbusd`) share: detection, the once-per-process
//! tile-state permission Linux requires, and `ldtilecfg`'s operand.
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
