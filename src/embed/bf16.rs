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
//! Weight layout ([`panel`], the driver the int8 layers share): panels of [`NR`] output channels;
//! inside a panel, pairs of consecutive inputs, each pair `NR` channels x 2 values
//! (`[panel][k / 2][NR][2]`), so one 512-bit load holds 16 channels x 2 inputs and a broadcast
//! 32-bit activation pair multiplies all 16.

use super::amx;
use super::panel::{self, by_rows, PackedLinear, Panels, Tile, MR, NR, TILE_ROWS};

/// Inputs per step (one f32 lane of `vdpbf16ps` sums two products).
const KG: usize = 2;
/// Inputs per AMX step (one 64-byte tile row of bf16).
const AMX_K: usize = amx::STEP_BYTES / 2;

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
        panel::pick(Kernel::Amx, &AMX_SELF_CHECK, &[Kernel::Avx512Bf16], Kernel::supported)
    }

    /// Whether this CPU can run the kernel.
    pub fn supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            Kernel::Amx => amx::usable(amx::Feature::Bf16),
            Kernel::Avx512Bf16 => super::kernels::has_avx512_bf16(),
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

/// The (unverified) AMX kernel must agree with the scalar kernel (within float32 rounding: AMX
/// sums the pairs in its own order) on a small product with every row and input remainder.
const AMX_SELF_CHECK: amx::SelfCheck = amx::SelfCheck {
    feature: amx::Feature::Bf16,
    agrees: amx_agrees,
    complaint: "the AMX bf16 kernel disagrees with the scalar kernel on this CPU: not using it (please report)",
};

fn amx_agrees() -> bool {
    let inp = 70;
    let (m, out, x, w) = amx::check_inputs(inp);
    let run = |kernel| {
        let mut y = vec![0.5f32; m * out];
        linear(&mut y, true, &x, &Bf16Linear::new(&w, out, inp, kernel));
        y
    };
    let (amx, scalar) = (run(Kernel::Amx), run(Kernel::Scalar));
    amx.iter().zip(&scalar).all(|(a, s)| (a - s).abs() <= 1e-5 * (1.0 + s.abs()))
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
    /// `k_pad`: `inp` rounded up to a multiple of 2 ([`AMX_K`] for the AMX kernel).
    packed: Panels<u16>,
    kernel: Kernel,
}

impl Bf16Linear {
    /// Rounds `weight` (`[out, inp]` row-major, PyTorch's layout) to bf16 and packs it.
    pub fn new(weight: &[f32], out: usize, inp: usize, kernel: Kernel) -> Bf16Linear {
        assert_eq!(weight.len(), out * inp);
        let step = if kernel == Kernel::Amx { AMX_K } else { KG };
        let mut packed = Panels::new(out, inp, KG, step);
        for j in 0..out {
            for (k, &w) in weight[j * inp..(j + 1) * inp].iter().enumerate() {
                packed.set(j, k, to_bf16(w));
            }
        }
        Bf16Linear { packed, kernel }
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

// `linear(dst, accumulate, x, &Bf16Linear)`: `dst = (accumulate ? dst : 0) + x W^T`, the product
// in bf16 with float32 sums ([`panel::linear`]).
pub use super::panel::linear;

impl PackedLinear for Bf16Linear {
    type A = u16;
    type W = u16;
    type Acc = f32;
    type Rows = Vec<u16>;

    fn panels(&self) -> &Panels<u16> {
        &self.packed
    }

    fn kernel(&self) -> (bool, &'static str) {
        (self.kernel.supported(), self.kernel.name())
    }

    fn tile_rows(&self) -> usize {
        if self.kernel == Kernel::Amx {
            TILE_ROWS
        } else {
            MR
        }
    }

    fn convert_rows(&self, x: &[f32], rows: &mut Vec<u16>) {
        convert_rows(x, self.packed.inp, self.packed.k_pad, self.kernel, rows);
    }

    fn converted(rows: &Vec<u16>) -> &[u16] {
        rows
    }

    fn tile_product(&self, a: &[u16], mr: usize, b: &[u16], tile: &mut Tile<f32>) {
        tile_product(self.kernel, a, self.packed.k_pad, mr, b, self.packed.groups(), tile);
    }

    /// The kernels add onto the tile: it starts from `dst` (accumulating) or from zero.
    fn load(&self, dst: &[f32], acc: &mut [f32; NR], accumulate: bool) {
        if accumulate {
            acc[..dst.len()].copy_from_slice(dst);
            acc[dst.len()..].fill(0.0);
        } else {
            acc.fill(0.0);
        }
    }

    fn store(&self, _rows: &Vec<u16>, _r: usize, _c0: usize, acc: &[f32], dst: &mut [f32], _accumulate: bool) {
        dst.copy_from_slice(acc);
    }
}

/// `tile[i][c] += Σ_k a[i][k] * b[k][c]` for `mr` rows of `a` (row stride `lda`) and one packed
/// panel `b` of `groups` pairs, in `vdpbf16ps` order.
fn tile_product(kernel: Kernel, a: &[u16], lda: usize, mr: usize, b: &[u16], groups: usize, tile: &mut Tile<f32>) {
    assert!((1..=TILE_ROWS).contains(&mr) && a.len() >= mr * lda && lda >= groups * KG);
    assert!(b.len() >= groups * NR * KG);
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Amx {
        assert!((groups * KG).is_multiple_of(AMX_K));
        // SAFETY: as for the AVX512-BF16 kernel below; the AMX kernel reads `groups * 2` (a
        // multiple of 32) values of each of the mr rows of `a` and all of `b`, and reads and
        // writes mr rows of `tile`; `amx::usable` (checked by `linear`) got the tile permission.
        unsafe {
            let (a, b, t) = (a.as_ptr() as *const u8, b.as_ptr() as *const u8, tile.as_mut_ptr() as *mut u8);
            return amx::tile_product(amx::Feature::Bf16, a, lda * 2, mr, b, groups * KG * 2, t, true);
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
            return by_rows!(mr, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 12, x86::tile(a, lda, b, groups, t));
        }
    }
    let _ = kernel;
    tile_scalar(a, lda, mr, b, groups, tile);
}

/// The portable kernel: per pair, the odd product first, then the even one, each a fused
/// multiply-add into the float32 sum (one rounding); results that would be denormal flush to
/// zero, as in `vdpbf16ps`.
fn tile_scalar(a: &[u16], lda: usize, mr: usize, b: &[u16], groups: usize, tile: &mut Tile<f32>) {
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
    use super::{KG, NR};
    use std::arch::x86_64::*;

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

    /// The CPU cannot run `kernel` (AMX: amx_bf16 and the tile permission; else avx512_bf16).
    fn skip(kernel: Kernel, test: &str) -> bool {
        let required_as = if kernel == Kernel::Amx { "amx" } else { "bf16" };
        crate::embed::require_kernels::skip_unless(kernel.supported(), required_as, test)
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
