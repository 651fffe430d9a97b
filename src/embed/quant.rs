//! Int8 dynamic quantisation of the linear layers: the opt-in fast mode ([`super::Precision::Int8`]).
//!
//! - Weights: symmetric per output channel, int8 in `[-wmax, wmax]`, quantised and packed once at
//!   load ([`QuantLinear::new`]).
//! - Activations: asymmetric per row (one token), `u8` in `[0, 255]` with a zero point so that
//!   0.0 is exact; quantised on the fly, inside the GEMM task that consumes the rows.
//! - Product: exact `i32` dot products of `u8 x i8`, then the float epilogue
//!   `y[i,j] = sa[i] * sw[j] * (acc[i,j] - za[i] * colsum[j])`, plus, for the rare inputs beyond
//!   [`OUTLIER`], their product with the float32 weights.
//!
//! Kernels, picked at runtime ([`Kernel::detect`]):
//! - [`Kernel::Amx`] (AMX-INT8 `tdpbusd` on 16-row tiles, 64 inputs per step), where the CPU
//!   has AMX and Linux grants the tile state, and only after it gave the VNNI kernel's exact
//!   results on a small product once in the process. **Unverified**: written without an AMX CPU;
//!   its test (exact equality with the VNNI kernel, same weights) runs where AMX exists and says
//!   SKIP elsewhere.
//! - [`Kernel::Vnni`] (AVX-512 VNNI, `vpdpbusd` on 512-bit registers, 12 rows x 32 channels per
//!   register tile): `u8 x i8` products summed four at a time straight into `i32`; weights use
//!   all 8 bits (`wmax = 127`).
//! - [`Kernel::Avx2`] (`vpmaddubsw` + `vpmaddwd`): `vpmaddubsw` adds pairs of products into
//!   saturating `i16`, so weights use 7 bits (`wmax = 63`): `2 * 255 * 63 < 32767`, nothing ever
//!   saturates and the sums are exact. (7-bit activations instead measured worse: cosine 0.972.)
//! - [`Kernel::Scalar`]: portable Rust, same numbers as the AVX2 kernel (the reference in tests).
//!
//! Weight layout ([`panel`], the driver the bf16 layers share): panels of [`NR`] output channels;
//! inside a panel, groups of 4 consecutive inputs, each group `NR` channels x 4 bytes
//! (`[panel][k / 4][NR][4]`), so one 256-bit load holds 8 channels x 4 inputs and a broadcast
//! 4-byte activation group multiplies all 8.

use super::amx;
use super::panel::{self, by_rows, PackedLinear, Panels, Tile, MR, NR, TILE_ROWS};

/// Inputs per group (one `i32` lane of `vpdpbusd`).
const KG: usize = 4;
/// Rows of one register tile of the AVX2 kernel (VNNI: [`MR`]).
const MR_AVX2: usize = 4;
/// Inputs per AMX step (one 64-byte tile row of `u8`).
const AMX_K: usize = amx::STEP_BYTES;
/// Inputs beyond `±OUTLIER` (BERT's few "massive" activations, mostly on `[CLS]`/`[SEP]`) are
/// kept out of a row's int8 range and multiplied in float32 (LLM.int8()'s threshold). Per token,
/// so a vector never depends on its batch. Measured on the golden sentences, worst cosine to
/// float32: 0.9935 -> 0.9953 (VNNI), 0.9897 -> 0.9925 (AVX2), at no measurable cost.
const OUTLIER: f32 = 6.0;

/// Which integer kernel runs the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Amx,
    Vnni,
    Avx2,
    Scalar,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Kernel {
        panel::pick(Kernel::Amx, &AMX_SELF_CHECK, &[Kernel::Vnni, Kernel::Avx2], Kernel::supported)
            .unwrap_or(Kernel::Scalar)
    }

    /// Whether this CPU can run the kernel.
    pub fn supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            Kernel::Avx2 => super::kernels::has_avx2(),
            Kernel::Vnni => super::kernels::has_avx512_vnni(),
            Kernel::Amx => amx::usable(amx::Feature::Int8),
        }
    }

    /// Largest quantised weight magnitude (see the module docs).
    pub fn weight_max(self) -> f32 {
        match self {
            Kernel::Amx | Kernel::Vnni => 127.0,
            Kernel::Avx2 | Kernel::Scalar => 63.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx-int8",
            Kernel::Vnni => "avx512-vnni",
            Kernel::Avx2 => "avx2",
            Kernel::Scalar => "scalar",
        }
    }
}

/// The (unverified) AMX kernel must give the VNNI kernel's exact integer results on a small
/// product with every row and input remainder; otherwise the VNNI kernel is used, as before AMX
/// support.
const AMX_SELF_CHECK: amx::SelfCheck = amx::SelfCheck {
    feature: amx::Feature::Int8,
    agrees: amx_agrees,
    complaint: "the AMX int8 kernel disagrees with the VNNI kernel on this CPU: using VNNI (please report)",
};

fn amx_agrees() -> bool {
    if !Kernel::Vnni.supported() {
        return false;
    }
    let inp = 150;
    let (m, out, x, w) = amx::check_inputs(inp);
    let run = |kernel| {
        let mut y = vec![0f32; m * out];
        linear(&mut y, false, &x, &QuantLinear::new(&w, out, inp, kernel));
        y
    };
    run(Kernel::Amx) == run(Kernel::Vnni)
}

/// A linear layer with int8 weights, packed for the kernels.
pub struct QuantLinear {
    /// `k_pad`: `inp` rounded up to a multiple of 4 ([`AMX_K`] for the AMX kernel).
    packed: Panels<i8>,
    /// Per output channel: dequantisation scale and the sum of its quantised weights.
    scale: Vec<f32>,
    col_sum: Vec<i32>,
    /// The kernel the weights were quantised for.
    kernel: Kernel,
    /// Float32 weights transposed (`[inp, out]`): row `k` multiplies an outlier input `k`.
    wt: Vec<f32>,
}

impl QuantLinear {
    /// Quantises `weight` (`[out, inp]` row-major, PyTorch's layout) for `kernel`.
    pub fn new(weight: &[f32], out: usize, inp: usize, kernel: Kernel) -> QuantLinear {
        let wmax = kernel.weight_max();
        assert_eq!(weight.len(), out * inp);
        let step = if kernel == Kernel::Amx { AMX_K } else { KG };
        let mut packed = Panels::new(out, inp, KG, step);
        let mut scale = vec![0f32; out];
        let mut col_sum = vec![0i32; out];
        for j in 0..out {
            let row = &weight[j * inp..(j + 1) * inp];
            let max = row.iter().fold(0f32, |m, &w| m.max(w.abs()));
            if max == 0.0 {
                continue;
            }
            let s = max / wmax;
            scale[j] = s;
            for (k, &w) in row.iter().enumerate() {
                let q = (w / s).round_ties_even().clamp(-wmax, wmax) as i8;
                col_sum[j] += q as i32;
                packed.set(j, k, q);
            }
        }
        QuantLinear {
            packed,
            scale,
            col_sum,
            kernel,
            wt: (0..inp * out).map(|i| weight[(i % out) * inp + i / out]).collect(),
        }
    }
}

/// Quantised rows of one task, reused across tasks of a thread.
#[derive(Default)]
pub struct RowBuf {
    q: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<i32>,
    /// (row, input, value) of the inputs kept out of the int8 product.
    outliers: Vec<(u32, u32, f32)>,
}

/// Quantises each row of `x` (rows of `k`) into 256 steps; rows of the output are `k_pad` long
/// (padding holds the zero point; the padded weights are zero).
fn quantize_rows(x: &[f32], k: usize, k_pad: usize, buf: &mut RowBuf) {
    let rows = x.len() / k;
    buf.q.resize(rows * k_pad, 0);
    buf.scale.resize(rows, 0.0);
    buf.zero.resize(rows, 0);
    buf.outliers.clear();
    let t = OUTLIER;
    for (i, ((r, q), (s, z))) in x
        .chunks_exact(k)
        .zip(buf.q.chunks_exact_mut(k_pad))
        .zip(buf.scale.iter_mut().zip(buf.zero.iter_mut()))
        .enumerate()
    {
        let before = buf.outliers.len();
        for (j, &v) in r.iter().enumerate() {
            if v.abs() > t {
                buf.outliers.push((i as u32, j as u32, v));
            }
        }
        (*s, *z) = quantize_row(r, &mut q[..k], t);
        for &(_, j, _) in &buf.outliers[before..] {
            q[j as usize] = *z as u8;
        }
        q[k..].fill(*z as u8);
    }
}

super::kernels::dispatch! {
    /// Asymmetric quantisation of one row into `0..=255`, values beyond `±t` left out of the
    /// range: returns (scale, zero point).
    pub fn quantize_row(x: &[f32], q: &mut [u8], t: f32) -> (f32, i32) {
        let (mut lo, mut hi) = (0f32, 0f32);
        for &v in x {
            let c = v.clamp(-t, t);
            lo = lo.min(c);
            hi = hi.max(c);
        }
        let levels = 255.0;
        let scale = if hi > lo { (hi - lo) / levels } else { 1.0 };
        let inv = 1.0 / scale;
        let zero = (-lo * inv).round_ties_even().clamp(0.0, levels);
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (v * inv + zero).round_ties_even().clamp(0.0, levels) as u8;
        }
        (scale, zero as i32)
    }
}

// `linear(dst, accumulate, x, &QuantLinear)`: `dst = (accumulate ? dst : 0) + x W^T`, the product
// in int8 on the kernel the layer was quantised for ([`panel::linear`]).
pub use super::panel::linear;

impl PackedLinear for QuantLinear {
    type A = u8;
    type W = i8;
    type Acc = i32;
    type Rows = RowBuf;

    fn panels(&self) -> &Panels<i8> {
        &self.packed
    }

    fn kernel(&self) -> (bool, &'static str) {
        (self.kernel.supported(), self.kernel.name())
    }

    fn tile_rows(&self) -> usize {
        match self.kernel {
            Kernel::Amx => TILE_ROWS,
            Kernel::Vnni => MR,
            _ => MR_AVX2,
        }
    }

    fn convert_rows(&self, x: &[f32], rows: &mut RowBuf) {
        quantize_rows(x, self.packed.inp, self.packed.k_pad, rows);
    }

    fn converted(rows: &RowBuf) -> &[u8] {
        &rows.q
    }

    #[inline(always)]
    fn tile_product(&self, a: &[u8], mr: usize, b: &[i8], tile: &mut Tile<i32>) {
        tile_product(self.kernel, a, self.packed.k_pad, mr, b, self.packed.groups(), tile);
    }

    /// Nothing: the kernels overwrite the tile, and [`Self::store`] adds `dst`.
    #[inline(always)]
    fn load(&self, _dst: &[f32], _acc: &mut [i32; NR], _accumulate: bool) {}

    /// The float epilogue `sa[r] * sw[c] * (acc - za[r] * colsum[c])`.
    #[inline(always)]
    fn store(&self, rows: &RowBuf, r: usize, c0: usize, acc: &[i32], dst: &mut [f32], accumulate: bool) {
        let cols = dst.len();
        let (sw, cs) = (&self.scale[c0..c0 + cols], &self.col_sum[c0..c0 + cols]);
        let (sa, za) = (rows.scale[r], rows.zero[r]);
        let vals = acc.iter().zip(sw).zip(cs);
        if accumulate {
            for (o, ((&a, &w), &s)) in dst.iter_mut().zip(vals) {
                *o += sa * w * (a - za * s) as f32;
            }
        } else {
            for (o, ((&a, &w), &s)) in dst.iter_mut().zip(vals) {
                *o = sa * w * (a - za * s) as f32;
            }
        }
    }

    fn block(&self, dst: &mut [f32], accumulate: bool, rows: &RowBuf) {
        block(dst, accumulate, rows, self);
    }

    /// The outliers' share, in float32: dst[row] += x * W^T[input].
    fn finish(&self, dst: &mut [f32], rows: &RowBuf) {
        let out = self.packed.out;
        for &(r, j, v) in &rows.outliers {
            let (r, j) = (r as usize, j as usize);
            axpy(&mut dst[r * out..(r + 1) * out], v, &self.wt[j * out..(j + 1) * out]);
        }
    }
}

super::kernels::dispatch! {
    /// `y += a * x`.
    pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += a * x;
        }
    }
}

super::kernels::dispatch! {
    /// [`panel::block`] for the int8 layers, compiled for the CPU (the epilogue vectorises
    /// inside the AVX2 and AVX-512 variants).
    pub fn block(dst: &mut [f32], accumulate: bool, rows: &RowBuf, l: &QuantLinear) {
        panel::block(l, dst, accumulate, rows)
    }
}

/// `tile[i][c] = Σ_k a[i][k] * b[k][c]` for `mr` rows of `a` (row stride `lda`) and one packed
/// panel `b` of `groups` groups.
fn tile_product(kernel: Kernel, a: &[u8], lda: usize, mr: usize, b: &[i8], groups: usize, tile: &mut Tile<i32>) {
    let mr_max = if kernel == Kernel::Amx { TILE_ROWS } else { MR };
    assert!((1..=mr_max).contains(&mr) && a.len() >= mr * lda && lda >= groups * KG);
    assert!(b.len() >= groups * NR * KG);
    #[cfg(target_arch = "x86_64")]
    {
        let (a, b, out) = (a.as_ptr(), b.as_ptr(), tile.as_mut_ptr() as *mut i32);
        // SAFETY: the asserts bound every read (mr rows of lda bytes of `a`, groups * NR * 4
        // bytes of `b`) and write (mr rows of NR i32 of `tile`); `kernel.supported()` was
        // checked by `linear` and the test helpers before any kernel runs.
        unsafe {
            match kernel {
                Kernel::Amx => {
                    assert!((groups * KG).is_multiple_of(AMX_K));
                    let (b, out) = (b as *const u8, out as *mut u8);
                    return amx::tile_product(amx::Feature::Int8, a, lda, mr, b, groups * KG, out, false);
                }
                Kernel::Vnni => {
                    return by_rows!(
                        mr,
                        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
                        12,
                        x86::tile_vnni(a, lda, b, groups, out)
                    );
                }
                Kernel::Avx2 => return by_rows!(mr, [1, 2, 3], 4, x86::tile_avx2(a, lda, b, groups, out)),
                Kernel::Scalar => {}
            }
        }
    }
    tile_scalar(a, lda, mr, b, groups, tile);
}

fn tile_scalar(a: &[u8], lda: usize, mr: usize, b: &[i8], groups: usize, tile: &mut Tile<i32>) {
    for (i, acc) in tile[..mr].iter_mut().enumerate() {
        acc.fill(0);
        let row = &a[i * lda..];
        for g in 0..groups {
            let bg = &b[g * NR * KG..(g + 1) * NR * KG];
            let ag = &row[g * KG..(g + 1) * KG];
            for (c, acc) in acc.iter_mut().enumerate() {
                for t in 0..KG {
                    *acc += ag[t] as i32 * bg[c * KG + t] as i32;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{KG, NR};
    use std::arch::x86_64::*;

    /// VNNI tile: `R` rows x 32 channels on 512-bit registers, 2R accumulators (R <= 12 of
    /// the 32 zmm registers), the 4-byte activation group broadcast from memory.
    #[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
    pub unsafe fn tile_vnni<const R: usize>(a: *const u8, lda: usize, b: *const i8, groups: usize, out: *mut i32) {
        unsafe {
            let mut acc = [[_mm512_setzero_si512(); 2]; R];
            let mut bp = b as *const __m512i;
            for g in 0..groups {
                let b0 = _mm512_loadu_si512(bp);
                let b1 = _mm512_loadu_si512(bp.add(1));
                bp = bp.add(2);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_epi32((a.add(r * lda + g * KG) as *const i32).read_unaligned());
                    acc[0] = _mm512_dpbusd_epi32(acc[0], av, b0);
                    acc[1] = _mm512_dpbusd_epi32(acc[1], av, b1);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                _mm512_storeu_si512(out.add(r * NR) as *mut __m512i, acc[0]);
                _mm512_storeu_si512(out.add(r * NR + 16) as *mut __m512i, acc[1]);
            }
        }
    }

    /// AVX2 tile: `R` rows x 32 channels in two halves of 16 (16 ymm registers).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_avx2<const R: usize>(a: *const u8, lda: usize, b: *const i8, groups: usize, out: *mut i32) {
        unsafe {
            let ones = _mm256_set1_epi16(1);
            for half in 0..2 {
                let mut acc = [[_mm256_setzero_si256(); 2]; R];
                let mut bp = (b as *const __m256i).add(half * 2);
                for g in 0..groups {
                    let b0 = _mm256_loadu_si256(bp);
                    let b1 = _mm256_loadu_si256(bp.add(1));
                    bp = bp.add(4);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let av = _mm256_set1_epi32((a.add(r * lda + g * KG) as *const i32).read_unaligned());
                        let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones);
                        let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones);
                        acc[0] = _mm256_add_epi32(acc[0], p0);
                        acc[1] = _mm256_add_epi32(acc[1], p1);
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    for (c, v) in acc.iter().enumerate() {
                        _mm256_storeu_si256(out.add(r * NR + half * 16 + c * 8) as *mut __m256i, *v);
                    }
                }
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
                let mut s = 0f64;
                for k in 0..inp {
                    s += x[i * inp + k] as f64 * w[j * inp + k] as f64;
                }
                y[i * out + j] = s as f32;
            }
        }
        y
    }

    /// The int8 kernels this CPU runs; each one it lacks is skipped, saying so (or fails the
    /// test where VDB_REQUIRE_KERNELS requires it).
    fn kernels() -> Vec<Kernel> {
        let all = [(Kernel::Amx, "amx"), (Kernel::Vnni, "vnni"), (Kernel::Avx2, "avx2"), (Kernel::Scalar, "")];
        all.into_iter()
            .filter(|(k, required_as)| {
                !crate::embed::require_kernels::skip_unless(k.supported(), required_as, "int8 kernel tests")
            })
            .map(|(k, _)| k)
            .collect()
    }

    /// Odd sizes exercise every row remainder, a partial panel and padded inputs.
    #[test]
    fn int8_linear_is_close_to_f32_and_kernels_agree_exactly() {
        let (m, out, inp) = (101, 70, 45);
        let mut seed = 7;
        let x: Vec<f32> = (0..m * inp).map(|_| lcg(&mut seed) * 3.0).collect();
        let w: Vec<f32> = (0..out * inp).map(|_| lcg(&mut seed) * 0.2).collect();
        let want = reference(&x, &w, m, out, inp);
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let mut by_wmax: Vec<(f32, Vec<f32>)> = Vec::new();
        for kernel in kernels() {
            let q = QuantLinear::new(&w, out, inp, kernel);
            let mut got = vec![1.0f32; m * out];
            linear(&mut got, true, &x, &q);
            let worst = got.iter().zip(&want).map(|(g, w)| (g - 1.0 - w).abs()).fold(0f32, f32::max);
            assert!(worst < 0.02 * scale, "{kernel:?}: max error {worst} (scale {scale})");
            // Same quantisation, same integer sums, same epilogue: identical floats.
            if let Some((_, prev)) = by_wmax.iter().find(|(w, _)| *w == kernel.weight_max()) {
                assert_eq!(prev, &got, "{kernel:?} differs from a kernel with the same weights");
            }
            by_wmax.push((kernel.weight_max(), got));
        }
    }

    #[test]
    fn quantize_row_keeps_zero_exact_and_spans_the_range() {
        let x = [-1.0f32, 0.0, 0.5, 3.0];
        let mut q = [0u8; 4];
        let (s, z) = quantize_row(&x, &mut q, f32::INFINITY);
        assert_eq!(q[1] as i32, z);
        assert_eq!(q[0], 0);
        assert_eq!(q[3], 255);
        for (v, q) in x.iter().zip(q) {
            assert!(((q as i32 - z) as f32 * s - v).abs() <= s / 2.0 + 1e-6);
        }
        let (s0, _) = quantize_row(&[0.0; 3], &mut q[..3], f32::INFINITY);
        assert_eq!(s0, 1.0);
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --lib quant_speed -- --ignored --nocapture`: int8 vs f32 GEMM on MiniLM shapes.
    #[test]
    #[ignore]
    fn quant_speed() {
        let threads = 2;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for (m, k, n) in [(1024, 384, 1152), (1024, 384, 1536), (1024, 1536, 384)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 1000) as f32 / 5000.0 - 0.1).collect();
            let mut y = vec![0f32; m * n];
            let reps = 20;
            let flops = 2.0 * (m * n * k) as f64 * reps as f64;
            pool.install(|| {
                for kernel in [Kernel::Amx, Kernel::Vnni, Kernel::Avx2].into_iter().filter(|k| k.supported()) {
                    let q = QuantLinear::new(&w, n, k, kernel);
                    linear(&mut y, false, &x, &q);
                    let t = std::time::Instant::now();
                    for _ in 0..reps {
                        linear(&mut y, false, &x, &q);
                    }
                    let s = t.elapsed().as_secs_f64();
                    eprintln!("{m}x{k}x{n} int8 {:?}: {:.1} GOP/s", kernel, flops / s / 1e9);
                }
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            y.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            x.as_ptr(),
                            1,
                            k as isize,
                            w.as_ptr(),
                            k as isize,
                            1,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::Rayon(threads),
                        );
                    }
                }
                let s = t.elapsed().as_secs_f64();
                eprintln!("{m}x{k}x{n} f32 gemm: {:.1} GFLOP/s", flops / s / 1e9);
            });
        }
    }
}
