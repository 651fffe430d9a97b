//! Vectorised CPU kernels for the fused BERT forward pass: bias + GELU, layer norm and row
//! softmax (the matrix products go to the `gemm` crate).
//!
//! Each kernel is written once as plain branch-free Rust over slices (`#[inline(always)]`, fixed
//! 8-lane accumulators instead of serial float reductions) and compiled three times: for the
//! baseline target, and inside `#[target_feature]` wrappers for AVX2+FMA and AVX-512 that the
//! compiler auto-vectorises with 256- and 512-bit instructions. The widest the CPU runs is picked
//! at run time.
//!
//! `erf` and `exp` are polynomial/rational approximations with no branches and no libm calls, so
//! they vectorise: `erf` is the rational approximation used by Eigen and XLA (absolute error
//! below 5e-7 in f32), `exp` is the Cephes polynomial with a 2^n scale (relative error ~1e-7).

/// Lanes of the fixed-width accumulators (one AVX2 register of f32).
const LANES: usize = 8;

/// `true` when the running CPU has every feature listed (`false` off x86_64).
macro_rules! cpu_has {
    ($($feature:tt),+) => {{
        #[cfg(target_arch = "x86_64")]
        let all = $(std::is_x86_feature_detected!($feature))&&+;
        #[cfg(not(target_arch = "x86_64"))]
        let all = false;
        all
    }};
}

/// The instruction sets a [`dispatch!`] kernel is compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// The baseline target (SSE2 on x86_64).
    Base,
    /// AVX2 + FMA, 256-bit vectors.
    Avx2,
    /// AVX-512 F/VL/BW/DQ + AVX2 + FMA, 512-bit vectors.
    Avx512,
}

impl Isa {
    /// The widest variant the running CPU supports.
    pub fn detect() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(Isa::probe)
    }

    fn probe() -> Isa {
        if cpu_has!("avx512f", "avx512vl", "avx512bw", "avx512dq") && has_avx2() {
            return Isa::Avx512;
        }
        if has_avx2() {
            return Isa::Avx2;
        }
        Isa::Base
    }
}

/// `true` when the running CPU has AVX2 and FMA.
pub(crate) fn has_avx2() -> bool {
    cpu_has!("avx2", "fma")
}

/// `true` when the running CPU has AVX-512 VNNI (with the F, VL and AVX2 the int8 kernel uses).
pub(crate) fn has_avx512_vnni() -> bool {
    cpu_has!("avx512vnni", "avx512vl", "avx512f", "avx2")
}

/// `true` when the running CPU has AVX512-BF16 (and F).
pub(crate) fn has_avx512_bf16() -> bool {
    cpu_has!("avx512bf16", "avx512f")
}

/// Defines `pub fn $name(args)` that runs `$body` compiled for the widest instruction set the CPU
/// has ([`Isa::detect`]): AVX-512, AVX2+FMA, or the baseline target. `$name::with(isa, args)`
/// runs a given variant (tests and benchmarks compare them; `isa` must not exceed the CPU's).
macro_rules! dispatch {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            $name::with($crate::embed::kernels::Isa::detect(), $($arg),*)
        }

        #[doc = concat!("The variants of [`", stringify!($name), "()`].")]
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;

            /// Runs the variant compiled for `isa`; panics if the CPU lacks it.
            #[allow(clippy::too_many_arguments)]
            pub fn with(isa: $crate::embed::kernels::Isa, $($arg: $ty),*) $(-> $ret)? {
                #[inline(always)]
                fn generic($($arg: $ty),*) $(-> $ret)? $body

                #[cfg(target_arch = "x86_64")]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    generic($($arg),*)
                }

                #[cfg(target_arch = "x86_64")]
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    generic($($arg),*)
                }

                assert!(isa <= $crate::embed::kernels::Isa::detect(), "the CPU lacks {isa:?}");
                #[cfg(target_arch = "x86_64")]
                match isa {
                    // SAFETY: the CPU supports the features each variant was compiled for
                    // (asserted above).
                    $crate::embed::kernels::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::embed::kernels::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::embed::kernels::Isa::Base => {}
                }
                generic($($arg),*)
            }
        }
    };
}
pub(crate) use dispatch;

/// erf(x), absolute error < 5e-7 (rational approximation on [-4, 4], ±1 outside).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_6e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_473_9e-2;
    x * p / q
}

/// exp(x) for x in [-87, 88] (clamped), relative error ~1e-7.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // ln 2 split in two so that `n * LN2_HI` is exact.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n built from n's bits: n is a whole number in [-126, 127], so n + 1.5 * 2^23 has the bits
    // 0x4B40_0000 + n. (A float-to-int `as` cast saturates and checks for NaN, which kept this
    // loop scalar.)
    let n_bits = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    y * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// Sum of `v` with 8 independent accumulators (vectorisable, unlike a serial float sum).
#[inline(always)]
fn sum(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Maximum of `v` (−inf for an empty slice), 8 lanes at a time.
#[inline(always)]
fn max(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter().fold(tail, |m, &x| m.max(x))
}

dispatch! {
    /// `x[r][c] = gelu(x[r][c] + bias[c])` for every row of `x` (rows of `bias.len()`), with the
    /// exact (erf) GELU of BERT: `0.5 x (1 + erf(x / sqrt 2))`.
    pub fn bias_gelu(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, &b) in row.iter_mut().zip(bias) {
                let t = *v + b;
                *v = 0.5 * t * (1.0 + erf(t * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
    }
}

dispatch! {
    /// `x[r][c] += bias[c]` for every row of `x` (rows of `bias.len()`).
    pub fn add_bias(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    }
}

dispatch! {
    /// Layer norm of every row of `x` in place (rows of `gamma.len()`):
    /// `(x - mean) / sqrt(var + eps) * gamma + beta`, biased variance as in torch.
    pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let n = gamma.len();
        for row in x.chunks_exact_mut(n) {
            let mean = sum(row) / n as f32;
            let mut acc = [0.0f32; LANES];
            let chunks = row.chunks_exact(LANES);
            let mut tail = 0.0f32;
            for &v in chunks.remainder() {
                tail += (v - mean) * (v - mean);
            }
            for c in chunks {
                for i in 0..LANES {
                    let d = c[i] - mean;
                    acc[i] += d * d;
                }
            }
            let var = (acc.iter().sum::<f32>() + tail) / n as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

dispatch! {
    /// Softmax of every row of `x` (rows of `width`) in place.
    pub fn softmax_rows(x: &mut [f32], width: usize) {
        for row in x.chunks_exact_mut(width) {
            let m = max(row);
            for v in row.iter_mut() {
                *v = exp(*v - m);
            }
            let inv = 1.0 / sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series in f64 (accurate to ~1e-9 on [-5, 5]).
    fn erf_reference(x: f64) -> f64 {
        let (mut term, mut total, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * total.abs().max(1e-300) || n < 5.0 {
            n += 1.0;
            term *= -x * x / n;
            total += term / (2.0 * n + 1.0);
            if n > 400.0 {
                break;
            }
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_accurate() {
        let mut worst = 0.0f64;
        for i in -5000..=5000 {
            let x = i as f32 * 1e-3;
            worst = worst.max((erf(x) as f64 - erf_reference(x as f64)).abs());
        }
        assert!(worst < 5e-7, "max |erf error| = {worst}");
        assert!((erf(10.0) - 1.0).abs() < 5e-7 && (erf(-10.0) + 1.0).abs() < 5e-7);
    }

    #[test]
    fn exp_is_accurate() {
        for i in -870..=880 {
            let x = i as f32 * 0.1;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            assert!(((got - want) / want).abs() < 3e-7, "exp({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn layer_norm_matches_definition() {
        let mut x: Vec<f32> = (0..2 * 13).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let gamma: Vec<f32> = (0..13).map(|i| 1.0 + i as f32 * 0.1).collect();
        let beta: Vec<f32> = (0..13).map(|i| i as f32 * -0.05).collect();
        let want: Vec<f32> = x
            .chunks(13)
            .flat_map(|r| {
                let mean = r.iter().sum::<f32>() / 13.0;
                let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 13.0;
                r.iter()
                    .enumerate()
                    .map(|(i, v)| (v - mean) / (var + 1e-12).sqrt() * gamma[i] + beta[i])
                    .collect::<Vec<_>>()
            })
            .collect();
        layer_norm(&mut x, &gamma, &beta, 1e-12);
        for (a, b) in x.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    /// The kernels' reductions have a fixed order (8-lane accumulators, no reassociation), so
    /// every variant gives the same bits; variants the CPU lacks are skipped, saying so.
    #[test]
    fn every_isa_variant_gives_identical_results() {
        let fill = |n: usize, k: f32| -> Vec<f32> { (0..n).map(|i| (i as f32 * k).sin() * 4.0).collect() };
        let (rows, width) = (5, 77);
        let (bias, gamma) = (fill(width, 0.3), fill(width, 0.7));
        let run = |isa: Isa| {
            let mut g = fill(rows * width, 0.11);
            bias_gelu::with(isa, &mut g, &bias);
            let mut n = fill(rows * width, 0.13);
            add_bias::with(isa, &mut n, &bias);
            layer_norm::with(isa, &mut n, &gamma, &bias, 1e-12);
            let mut s = fill(rows * width, 0.17);
            softmax_rows::with(isa, &mut s, width);
            [g, n, s]
        };
        let base = run(Isa::Base);
        for isa in [Isa::Avx2, Isa::Avx512] {
            let required_as = if isa == Isa::Avx512 { "avx512" } else { "avx2" };
            if crate::embed::require_kernels::skip_unless(
                isa <= Isa::detect(),
                required_as,
                "every_isa_variant_gives_identical_results",
            ) {
                continue;
            }
            for (got, want) in run(isa).iter().zip(&base) {
                let (got, want): (Vec<u32>, Vec<u32>) =
                    (got.iter().map(|v| v.to_bits()).collect(), want.iter().map(|v| v.to_bits()).collect());
                assert_eq!(got, want, "{isa:?} differs from the baseline variant");
            }
        }
    }

    #[test]
    fn softmax_rows_match_definition() {
        let width = 13;
        let mut x: Vec<f32> = (0..3 * width).map(|i| (i as f32 * 0.9).sin() * 20.0).collect();
        let want: Vec<f64> = x
            .chunks(width)
            .flat_map(|r| {
                let m = r.iter().cloned().fold(f32::MIN, f32::max) as f64;
                let z: f64 = r.iter().map(|&v| (v as f64 - m).exp()).sum();
                r.iter().map(move |&v| (v as f64 - m).exp() / z).collect::<Vec<_>>()
            })
            .collect();
        softmax_rows(&mut x, width);
        for (a, b) in x.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --lib elementwise_speed -- --ignored --nocapture`: each kernel's AVX2 and
    /// AVX-512 variants alternately on a MiniLM batch (32 sentences of 45 tokens), one thread.
    #[test]
    #[ignore]
    fn elementwise_speed() {
        if Isa::detect() < Isa::Avx512 {
            eprintln!("SKIP elementwise_speed: CPU lacks AVX-512");
            return;
        }
        let (tokens, len, h, ffn) = (32 * 45, 45, 384, 1536);
        let fill = |n: usize| -> Vec<f32> { (0..n).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect() };
        let (b_ffn, b_h, gamma) = (fill(ffn), fill(h), fill(h));
        let mut inter = fill(tokens * ffn);
        let mut x = fill(tokens * h);
        let mut scores = fill(len * len);
        let time = |f: &mut dyn FnMut()| {
            let mut best = f64::MAX;
            for _ in 0..7 {
                let t = std::time::Instant::now();
                f();
                best = best.min(t.elapsed().as_secs_f64());
            }
            best * 1e3
        };
        for isa in [Isa::Avx2, Isa::Avx512, Isa::Avx2, Isa::Avx512] {
            let gelu = time(&mut || bias_gelu::with(isa, &mut inter, &b_ffn));
            let norm = time(&mut || layer_norm::with(isa, &mut x, &gamma, &b_h, 1e-12));
            let bias = time(&mut || add_bias::with(isa, &mut x, &b_h));
            // One layer's softmax: 32 sequences x 12 heads of len x len scores.
            let soft = time(&mut || {
                for _ in 0..32 * 12 {
                    softmax_rows::with(isa, &mut scores, len)
                }
            });
            eprintln!(
                "{isa:?}: bias_gelu {gelu:.3} ms, layer_norm {norm:.3} ms, add_bias {bias:.3} ms, softmax {soft:.3} ms \
                 (one layer's worth each, best of 7)"
            );
        }
    }
}
