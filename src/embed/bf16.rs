//! Bfloat16 linear layers with float32 accumulation: the opt-in [`super::Precision::Bf16`] mode.
//!
//! - Weights: rounded to bf16 (round to nearest even) and packed once at load ([`Bf16Linear::new`]).
//! - Activations: rounded to bf16 per row, inside the GEMM task that consumes the rows.
//! - Product: bf16 x bf16 products (exact in float32) summed into float32 accumulators, two
//!   inputs per step, as `VDPBF16PS` does; bias, residual and everything outside the linear
//!   layers stay float32.
//!
//! Kernels, picked at run time ([`Kernel::detect`]):
//! - [`Kernel::Amx`] (AMX-BF16 `tdpbf16ps` on tiles of 16 rows x 16 channels, 32 inputs per
//!   step), where the CPU has AMX and Linux grants the process the tile state, and only after it
//!   agreed with the scalar kernel on a small product once in the process. **Unverified**:
//!   written without an AMX CPU to run it on; its test compares it with the scalar kernel where
//!   AMX exists and says SKIP elsewhere.
//! - [`Kernel::Avx512Bf16`] (AVX512-BF16, `vdpbf16ps` on 512-bit registers): 12 rows x 32 output
//!   channels of float32 accumulators per register tile.
//! - [`Kernel::Scalar`]: portable Rust doing the same float32 operations in the same order (the
//!   reference in tests; bit-identical to the AVX512-BF16 kernel). Never picked by
//!   [`Kernel::detect`]: a CPU without bf16 instructions gets an error, not a slow fallback.
//!
//! Weight layout: panels of [`NR`] output channels; inside a panel, pairs of consecutive inputs,
//! each pair `NR` channels x 2 values (`[panel][k / 2][NR][2]`), so one 512-bit load holds 16
//! channels x 2 inputs and a broadcast 32-bit activation pair multiplies all 16.

use rayon::prelude::*;

/// Output channels per packed panel (two 512-bit registers of f32).
pub const NR: usize = 32;
/// Inputs per step (one f32 lane of `vdpbf16ps` sums two products).
const KG: usize = 2;
/// Rows of one register tile: 2 * MR accumulators + 2 weight registers <= 32 zmm.
const MR: usize = 12;
/// Rows converted and multiplied by one parallel task.
const ROWS_PER_TASK: usize = 48;
/// Rows of the AMX kernel's tiles, and the rows of the tile buffer (>= [`MR`]).
const AMX_ROWS: usize = 16;
/// Inputs per AMX step (one 64-byte tile row of bf16).
const AMX_K: usize = 32;

/// Which kernel runs the bf16 products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Amx,
    Avx512Bf16,
    Scalar,
}

impl Kernel {
    /// The bf16 kernel this CPU runs, `None` when it has no bf16 dot-product instructions.
    pub fn detect() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::embed::amx::enabled()
                && crate::embed::amx::usable(crate::embed::amx::Feature::Bf16)
                && amx_self_check()
            {
                return Some(Kernel::Amx);
            }
            if std::is_x86_feature_detected!("avx512bf16") && std::is_x86_feature_detected!("avx512f") {
                return Some(Kernel::Avx512Bf16);
            }
        }
        None
    }

    /// Whether this CPU can run the kernel.
    pub fn supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => crate::embed::amx::usable(crate::embed::amx::Feature::Bf16),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Bf16 => {
                std::is_x86_feature_detected!("avx512bf16") && std::is_x86_feature_detected!("avx512f")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx-bf16",
            Kernel::Avx512Bf16 => "avx512-bf16",
            Kernel::Scalar => "scalar",
        }
    }
}

/// Whether the (unverified) AMX kernel agrees with the scalar kernel (within float32 rounding:
/// AMX sums the pairs in its own order) on a small product with every row and input remainder,
/// once per process. A mismatch is logged as an error and the AMX kernel is not used.
fn amx_self_check() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        let (m, out, inp) = (37, 70, 70);
        let x: Vec<f32> = (0..m * inp).map(|i| ((i * 7919) % 1000) as f32 / 300.0 - 1.5).collect();
        let w: Vec<f32> = (0..out * inp).map(|i| ((i * 104729) % 1000) as f32 / 5000.0 - 0.1).collect();
        let run = |kernel| {
            let mut y = vec![0.5f32; m * out];
            linear(&mut y, true, &x, &Bf16Linear::new(&w, out, inp, kernel));
            y
        };
        let (amx, scalar) = (run(Kernel::Amx), run(Kernel::Scalar));
        let ok = amx.iter().zip(&scalar).all(|(a, s)| (a - s).abs() <= 1e-5 * (1.0 + s.abs()));
        if !ok {
            log::error!(
                "the AMX bf16 kernel disagrees with the scalar kernel on this CPU: not using it (please report)"
            );
        }
        ok
    })
}

/// `x` rounded to bfloat16 (the upper 16 bits of a float32) as `vcvtneps2bf16` does it: round to
/// nearest even, denormals to signed zero, NaN stays a (quiet) NaN.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    if bits & 0x7f80_0000 == 0 {
        return ((bits >> 16) & 0x8000) as u16;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// The float32 value of a bfloat16 (denormals read as zero, as `vdpbf16ps` reads its inputs).
#[inline(always)]
pub fn from_bf16(b: u16) -> f32 {
    if b & 0x7f80 == 0 {
        return f32::from_bits(((b & 0x8000) as u32) << 16);
    }
    f32::from_bits((b as u32) << 16)
}

/// A linear layer with bf16 weights, packed for the kernels.
pub struct Bf16Linear {
    packed: Vec<u16>,
    pub out: usize,
    pub inp: usize,
    /// `inp` rounded up to a multiple of 2 ([`AMX_K`] for the AMX kernel).
    k_pad: usize,
    kernel: Kernel,
}

impl Bf16Linear {
    /// Rounds `weight` (`[out, inp]` row-major, PyTorch's layout) to bf16 and packs it.
    pub fn new(weight: &[f32], out: usize, inp: usize, kernel: Kernel) -> Bf16Linear {
        assert_eq!(weight.len(), out * inp);
        let step = if kernel == Kernel::Amx { AMX_K } else { KG };
        let k_pad = inp.div_ceil(step) * step;
        let groups = k_pad / KG;
        let mut packed = vec![0u16; out.div_ceil(NR) * NR * k_pad];
        for j in 0..out {
            let (panel, c) = (j / NR, j % NR);
            for (k, &w) in weight[j * inp..(j + 1) * inp].iter().enumerate() {
                let (g, t) = (k / KG, k % KG);
                packed[((panel * groups + g) * NR + c) * KG + t] = to_bf16(w);
            }
        }
        Bf16Linear { packed, out, inp, k_pad, kernel }
    }
}

/// Rounds each row of `x` (rows of `k`) to bf16 into `q` (rows of `k_pad`, zero-padded).
fn convert_rows(x: &[f32], k: usize, k_pad: usize, kernel: Kernel, q: &mut Vec<u16>) {
    let rows = x.len() / k;
    q.resize(rows * k_pad, 0);
    for (r, d) in x.chunks_exact(k).zip(q.chunks_exact_mut(k_pad)) {
        convert_row(kernel, r, &mut d[..k]);
        d[k..].fill(0);
    }
}

fn convert_row(kernel: Kernel, x: &[f32], d: &mut [u16]) {
    assert_eq!(x.len(), d.len());
    // (AMX CPUs have AVX512-BF16 too.)
    #[cfg(target_arch = "x86_64")]
    if kernel != Kernel::Scalar && Kernel::Avx512Bf16.supported() {
        // SAFETY: the lengths match (asserted); the CPU has AVX512-BF16 (checked just above).
        return unsafe { x86::convert_row(x, d) };
    }
    let _ = kernel;
    for (d, &v) in d.iter_mut().zip(x) {
        *d = to_bf16(v);
    }
}

/// `dst = (accumulate ? dst : 0) + x W^T` with `x` of `l.inp` columns, `dst` of `l.out`, the
/// product in bf16 with float32 sums. Parallel over row blocks on the current rayon pool.
pub fn linear(dst: &mut [f32], accumulate: bool, x: &[f32], l: &Bf16Linear) {
    let m = x.len() / l.inp;
    assert!(x.len() == m * l.inp && dst.len() == m * l.out);
    assert!(l.kernel.supported(), "the CPU cannot run the {} kernel", l.kernel.name());
    dst.par_chunks_mut(ROWS_PER_TASK * l.out).zip(x.par_chunks(ROWS_PER_TASK * l.inp)).for_each_init(
        Vec::new,
        |q, (d, xs)| {
            convert_rows(xs, l.inp, l.k_pad, l.kernel, q);
            block(d, accumulate, q, l);
        },
    );
}

/// The product of the converted rows `q` with every panel of `l`, into `dst`.
fn block(dst: &mut [f32], accumulate: bool, q: &[u16], l: &Bf16Linear) {
    let rows = q.len() / l.k_pad;
    let groups = l.k_pad / KG;
    let mut tile = [[0f32; NR]; AMX_ROWS];
    let mr_max = if l.kernel == Kernel::Amx { AMX_ROWS } else { MR };
    for panel in 0..l.out.div_ceil(NR) {
        let b = &l.packed[panel * groups * NR * KG..(panel + 1) * groups * NR * KG];
        let c0 = panel * NR;
        let cols = (l.out - c0).min(NR);
        let mut r0 = 0;
        while r0 < rows {
            let mr = (rows - r0).min(mr_max);
            for (i, t) in tile[..mr].iter_mut().enumerate() {
                if accumulate {
                    let o = (r0 + i) * l.out + c0;
                    t[..cols].copy_from_slice(&dst[o..o + cols]);
                    t[cols..].fill(0.0);
                } else {
                    t.fill(0.0);
                }
            }
            tile_product(l.kernel, &q[r0 * l.k_pad..(r0 + mr) * l.k_pad], l.k_pad, mr, b, groups, &mut tile);
            for (i, t) in tile[..mr].iter().enumerate() {
                let o = (r0 + i) * l.out + c0;
                dst[o..o + cols].copy_from_slice(&t[..cols]);
            }
            r0 += mr;
        }
    }
}

/// `tile[i][c] += Σ_k a[i][k] * b[k][c]` for `mr` rows of `a` (row stride `lda`) and one packed
/// panel `b` of `groups` pairs, in `vdpbf16ps` order.
fn tile_product(
    kernel: Kernel,
    a: &[u16],
    lda: usize,
    mr: usize,
    b: &[u16],
    groups: usize,
    tile: &mut [[f32; NR]; AMX_ROWS],
) {
    assert!((1..=AMX_ROWS).contains(&mr) && a.len() >= mr * lda && lda >= groups * KG);
    assert!(b.len() >= groups * NR * KG);
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Amx {
        assert!((groups * KG).is_multiple_of(AMX_K));
        // SAFETY: as for the AVX512-BF16 kernel below; the AMX kernel reads `groups * 2` (a
        // multiple of 32) values of each of the mr rows of `a` and all of `b`, and reads and
        // writes mr rows of `tile`; `amx::usable` (checked by `linear`) got the tile permission.
        unsafe {
            return x86::tile_amx(a.as_ptr(), lda, mr, b.as_ptr(), groups, tile.as_mut_ptr() as *mut f32);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Avx512Bf16 {
        assert!(mr <= MR);
        let (a, b, t) = (a.as_ptr(), b.as_ptr(), tile.as_mut_ptr() as *mut f32);
        // SAFETY: the asserts bound every read (mr rows of lda values of `a`, groups * NR * 2
        // values of `b`) and every read and write of `tile` (mr rows of NR floats); `linear`
        // checked that the CPU runs the kernel.
        unsafe {
            return match mr {
                1 => x86::tile::<1>(a, lda, b, groups, t),
                2 => x86::tile::<2>(a, lda, b, groups, t),
                3 => x86::tile::<3>(a, lda, b, groups, t),
                4 => x86::tile::<4>(a, lda, b, groups, t),
                5 => x86::tile::<5>(a, lda, b, groups, t),
                6 => x86::tile::<6>(a, lda, b, groups, t),
                7 => x86::tile::<7>(a, lda, b, groups, t),
                8 => x86::tile::<8>(a, lda, b, groups, t),
                9 => x86::tile::<9>(a, lda, b, groups, t),
                10 => x86::tile::<10>(a, lda, b, groups, t),
                11 => x86::tile::<11>(a, lda, b, groups, t),
                _ => x86::tile::<12>(a, lda, b, groups, t),
            };
        }
    }
    let _ = kernel;
    tile_scalar(a, lda, mr, b, groups, tile);
}

/// The portable kernel: per pair, the odd product first, then the even one, each a fused
/// multiply-add into the float32 sum (one rounding); results that would be denormal flush to
/// zero, as in `vdpbf16ps`.
fn tile_scalar(a: &[u16], lda: usize, mr: usize, b: &[u16], groups: usize, tile: &mut [[f32; NR]; AMX_ROWS]) {
    let ftz = |v: f32| if v.is_subnormal() { 0.0f32.copysign(v) } else { v };
    for (i, acc) in tile[..mr].iter_mut().enumerate() {
        let row = &a[i * lda..];
        for g in 0..groups {
            let (a0, a1) = (from_bf16(row[g * KG]), from_bf16(row[g * KG + 1]));
            let bg = &b[g * NR * KG..(g + 1) * NR * KG];
            for (c, acc) in acc.iter_mut().enumerate() {
                *acc = ftz(a1.mul_add(from_bf16(bg[c * KG + 1]), *acc));
                *acc = ftz(a0.mul_add(from_bf16(bg[c * KG]), *acc));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{AMX_K, KG, NR};
    use crate::embed::amx::TileConfig;
    use std::arch::x86_64::*;

    /// `mr` (<= 16) rows x 32 channels on AMX: C tiles tmm0/tmm1 (channels 0-15 / 16-31, read
    /// from and written back to `t`, rows of 32 floats), A tile tmm2 (mr rows x 32 inputs), B
    /// tiles tmm3/tmm4 (16 input pairs x 16 channels: exactly the packed panel's layout, rows
    /// 128 bytes apart). UNVERIFIED: never run (no AMX CPU was available when it was written).
    pub unsafe fn tile_amx(a: *const u16, lda: usize, mr: usize, b: *const u16, groups: usize, t: *mut f32) {
        let cfg = TileConfig::new(&[mr, mr, mr, 16, 16]);
        let (c_stride, a_stride, b_stride) = (NR * 4, lda * 2, NR * KG * 2);
        let (t0, t1) = (t, t.wrapping_add(16));
        // SAFETY (all blocks): the caller bounds `a` (mr rows of lda values, groups * 2 read
        // per row), `b` (groups * NR * 2 values) and `t` (mr rows of NR floats); every tile
        // load reads inside them; the tile registers are not used by compiled Rust code, so
        // their state carries from one asm block to the next; `tilerelease` ends it.
        unsafe {
            std::arch::asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly));
            std::arch::asm!(
                "tileloadd tmm0, [{t0} + {s}*1]",
                "tileloadd tmm1, [{t1} + {s}*1]",
                t0 = in(reg) t0, t1 = in(reg) t1, s = in(reg) c_stride, options(nostack, readonly),
            );
            for k0 in (0..groups * KG).step_by(AMX_K) {
                let ap = a.add(k0);
                let b0 = b.add(k0 / KG * NR * KG);
                let b1 = b0.add(16 * KG);
                std::arch::asm!(
                    "tileloadd tmm2, [{a} + {sa}*1]",
                    "tileloadd tmm3, [{b0} + {sb}*1]",
                    "tileloadd tmm4, [{b1} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm2, tmm3",
                    "tdpbf16ps tmm1, tmm2, tmm4",
                    a = in(reg) ap, sa = in(reg) a_stride, b0 = in(reg) b0, b1 = in(reg) b1, sb = in(reg) b_stride,
                    options(nostack, readonly),
                );
            }
            std::arch::asm!(
                "tilestored [{t0} + {s}*1], tmm0",
                "tilestored [{t1} + {s}*1], tmm1",
                "tilerelease",
                t0 = in(reg) t0, t1 = in(reg) t1, s = in(reg) c_stride, options(nostack),
            );
        }
    }

    /// Rounds `x` to bf16 into `d` (same length), 16 values per instruction.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn convert_row(x: &[f32], d: &mut [u16]) {
        let n = x.len() / 16 * 16;
        let (xp, dp) = (x.as_ptr(), d.as_mut_ptr());
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n <= x.len() == d.len().
            unsafe {
                let v = _mm512_cvtneps_pbh(_mm512_loadu_ps(xp.add(i)));
                _mm256_storeu_si256(dp.add(i) as *mut __m256i, std::mem::transmute::<__m256bh, __m256i>(v));
            }
        }
        for (d, &v) in d[n..].iter_mut().zip(&x[n..]) {
            *d = super::to_bf16(v);
        }
    }

    /// `R` rows x 32 channels: 2R accumulators, the activation pair broadcast from memory.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn tile<const R: usize>(a: *const u16, lda: usize, b: *const u16, groups: usize, t: *mut f32) {
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 2]; R];
            for (r, acc) in acc.iter_mut().enumerate() {
                acc[0] = _mm512_loadu_ps(t.add(r * NR));
                acc[1] = _mm512_loadu_ps(t.add(r * NR + 16));
            }
            let mut bp = b;
            for g in 0..groups {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp as *const __m512i));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(32) as *const __m512i));
                bp = bp.add(NR * KG);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let pair = (a.add(r * lda + g * KG) as *const i32).read_unaligned();
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                    acc[0] = _mm512_dpbf16_ps(acc[0], b0, av);
                    acc[1] = _mm512_dpbf16_ps(acc[1], b1, av);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(t.add(r * NR), acc[0]);
                _mm512_storeu_ps(t.add(r * NR + 16), acc[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn reference(x: &[f32], w: &[f32], m: usize, out: usize, inp: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * out];
        for i in 0..m {
            for j in 0..out {
                let s: f64 = (0..inp).map(|k| x[i * inp + k] as f64 * w[j * inp + k] as f64).sum();
                y[i * out + j] = s as f32;
            }
        }
        y
    }

    fn skip(kernel: Kernel, test: &str) -> bool {
        if kernel.supported() {
            return false;
        }
        let lacks = if kernel == Kernel::Amx { "amx_bf16 (or the tile permission)" } else { "avx512_bf16" };
        eprintln!("SKIP {test} for the {} kernel: CPU lacks {lacks}", kernel.name());
        true
    }

    /// AMX sums the pairs in its own order: close to the scalar kernel, not bit-identical.
    /// 70 inputs: two full 32-input steps and a zero-padded one; 37 rows: two 16-row tiles and
    /// a 5-row remainder; 70 outputs: a partial panel.
    #[test]
    fn amx_bf16_kernel_is_close_to_the_scalar_kernel_or_skip_without_amx() {
        if skip(Kernel::Amx, "amx_bf16_kernel_is_close_to_the_scalar_kernel_or_skip_without_amx") {
            return;
        }
        let (m, out, inp) = (37, 70, 70);
        let mut seed = 11;
        let x: Vec<f32> = (0..m * inp).map(|_| lcg(&mut seed) * 3.0).collect();
        let w: Vec<f32> = (0..out * inp).map(|_| lcg(&mut seed) * 0.2).collect();
        let mut want = vec![0.5f32; m * out];
        linear(&mut want, true, &x, &Bf16Linear::new(&w, out, inp, Kernel::Scalar));
        let mut got = vec![0.5f32; m * out];
        linear(&mut got, true, &x, &Bf16Linear::new(&w, out, inp, Kernel::Amx));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "AMX {g} vs scalar {w}");
        }
    }

    #[test]
    fn to_bf16_rounds_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(to_bf16(-2.0), 0xc000);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even (1.0).
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up.
        assert_eq!(to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(to_bf16(f32::MAX), 0x7f80, "overflows to infinity like the hardware");
        assert_eq!(to_bf16(f32::from_bits(1)), 0);
        assert_eq!(to_bf16(-f32::from_bits(1)), 0x8000);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(3.0)), 3.0);
    }

    /// The hardware conversion equals [`to_bf16`] on ties, denormals, infinities and random values.
    #[test]
    fn avx512_bf16_conversion_matches_scalar() {
        if skip(Kernel::Avx512Bf16, "avx512_bf16_conversion_matches_scalar") {
            return;
        }
        let mut seed = 3;
        let mut x: Vec<f32> = vec![
            0.0,
            -0.0,
            1.0,
            f32::from_bits(0x3f80_8000),
            f32::from_bits(0x3f81_8000),
            f32::from_bits(0x3f80_7fff),
            f32::from_bits(1),
            -f32::from_bits(0x007f_ffff),
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            65504.0,
            1e-30,
        ];
        x.extend((0..1000).map(|i| lcg(&mut seed) * (1 << (i % 20)) as f32));
        let mut hw = vec![0u16; x.len()];
        convert_row(Kernel::Avx512Bf16, &x, &mut hw);
        let sw: Vec<u16> = x.iter().map(|&v| to_bf16(v)).collect();
        for (i, (h, s)) in hw.iter().zip(&sw).enumerate() {
            assert_eq!(h, s, "x = {:e} ({:#010x})", x[i], x[i].to_bits());
        }
    }

    /// Odd sizes exercise every row remainder, a partial panel and a padded input.
    #[test]
    fn bf16_linear_is_close_to_f32_and_avx512_bf16_equals_the_scalar_kernel() {
        let (m, out, inp) = (101, 70, 45);
        let mut seed = 7;
        let x: Vec<f32> = (0..m * inp).map(|_| lcg(&mut seed) * 3.0).collect();
        let w: Vec<f32> = (0..out * inp).map(|_| lcg(&mut seed) * 0.2).collect();
        let want = reference(&x, &w, m, out, inp);
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let mut results = Vec::new();
        for kernel in [Kernel::Scalar, Kernel::Avx512Bf16] {
            if skip(kernel, "bf16_linear_is_close_to_f32_and_avx512_bf16_equals_the_scalar_kernel") {
                continue;
            }
            let l = Bf16Linear::new(&w, out, inp, kernel);
            let mut got = vec![1.0f32; m * out];
            linear(&mut got, true, &x, &l);
            let worst = got.iter().zip(&want).map(|(g, w)| (g - 1.0 - w).abs()).fold(0f32, f32::max);
            // bf16 keeps 8 significant bits: ~0.4% per input, averaging out over the sum.
            assert!(worst < 0.01 * scale, "{kernel:?}: max error {worst} (scale {scale})");
            assert!(worst > 0.0, "{kernel:?}: exactly float32? the inputs were not rounded");
            let mut fresh = vec![f32::NAN; m * out];
            linear(&mut fresh, false, &x, &l);
            for (f, g) in fresh.iter().zip(&got) {
                assert!((f + 1.0 - g).abs() <= 1e-5 * (1.0 + g.abs()), "accumulate=false: {f} vs {g}");
            }
            results.push((kernel, got, fresh));
        }
        if let [(_, a, af), (_, b, bf)] = &results[..] {
            assert!(a == b && af == bf, "the AVX512-BF16 kernel differs from the scalar kernel");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --lib bf16_speed -- --ignored --nocapture`: bf16 vs f32 GEMM on MiniLM shapes,
    /// alternating in one process.
    #[test]
    #[ignore]
    fn bf16_speed() {
        let Some(kernel) = Kernel::detect() else {
            eprintln!("SKIP bf16_speed: CPU lacks avx512_bf16");
            return;
        };
        let threads = 2;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for (m, k, n) in [(1440, 384, 1152), (1440, 384, 1536), (1440, 1536, 384)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 1000) as f32 / 5000.0 - 0.1).collect();
            let mut y = vec![0f32; m * n];
            let l = Bf16Linear::new(&w, n, k, kernel);
            let reps = 20;
            let flops = 2.0 * (m * n * k) as f64 * reps as f64;
            pool.install(|| {
                linear(&mut y, false, &x, &l);
                let (mut bf, mut f) = (0f64, 0f64);
                for _ in 0..3 {
                    let t = std::time::Instant::now();
                    for _ in 0..reps {
                        linear(&mut y, false, &x, &l);
                    }
                    bf = bf.max(flops / t.elapsed().as_secs_f64() / 1e9);
                    let t = std::time::Instant::now();
                    for _ in 0..reps {
                        crate::embed::cpu::f32_gemm(&mut y, false, &x, &w, n, threads);
                    }
                    f = f.max(flops / t.elapsed().as_secs_f64() / 1e9);
                }
                eprintln!(
                    "{m}x{k}x{n}: bf16 {} {bf:.1} GFLOP/s, f32 gemm {f:.1} GFLOP/s ({:.2}x)",
                    kernel.name(),
                    bf / f
                );
            });
        }
    }
}
