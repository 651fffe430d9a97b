//! What the running CPU is and which instruction set each GEMM path uses on it, plus a
//! measurement of the GEMM paths themselves on MiniLM's shapes (the "peak" the benchmarks
//! compare against: the same library and instruction set the forward pass uses).

use super::{bf16, quant, Precision};
use crate::error::{ErrorKind, Result, VdbError};

/// The CPU's marketing name (`model name` in `/proc/cpuinfo`), or `"unknown CPU"`.
pub fn cpu_model() -> String {
    proc_cpuinfo("model name").unwrap_or_else(|| "unknown CPU".to_string())
}

/// The microkernel family the `gemm` crate (float32 GEMMs) picks on this CPU. Mirrors gemm
/// 0.19's own dispatch (`avx512f` when built with its `x86-v4` feature, which Cargo.toml
/// enables, else `fma`, else scalar).
pub fn f32_gemm_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::is_x86_feature_detected!("fma") {
            return "avx2-fma";
        }
    }
    "scalar"
}

/// The CPU's name and the kernel each GEMM path would use on it (`None`: the path cannot run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CpuInfo {
    pub cpu: String,
    pub f32_gemm: &'static str,
    pub int8: &'static str,
    pub bf16: Option<&'static str>,
    /// The x86 extensions that matter to the kernels, as Linux reports them (`/proc/cpuinfo`
    /// flags; empty elsewhere).
    pub features: Vec<&'static str>,
}

/// The lines of `/proc/cpuinfo` ("model name", "flags") of the first CPU, if readable.
fn proc_cpuinfo(key: &str) -> Option<String> {
    let s = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = s.lines().find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))?;
    Some(line.split_once(':')?.1.trim().to_string()).filter(|v| !v.is_empty())
}

/// The kernel-relevant flags the kernel (Linux) reports, in `/proc/cpuinfo` spelling.
const FLAGS: &[&str] = &[
    "avx2",
    "fma",
    "avx512f",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
];

pub fn cpu_info() -> CpuInfo {
    let flags = proc_cpuinfo("flags").unwrap_or_default();
    let have: Vec<&str> = flags.split_whitespace().collect();
    CpuInfo {
        cpu: cpu_model(),
        f32_gemm: f32_gemm_isa(),
        int8: quant::Kernel::detect().name(),
        bf16: bf16::Kernel::detect().map(bf16::Kernel::name),
        features: FLAGS.iter().copied().filter(|f| have.contains(f)).collect(),
    }
}

/// The kernels an embedder's GEMMs run on (`None`: the path is not in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Kernels {
    /// The `gemm` crate's microkernel family: attention always, linear layers in float32.
    pub f32_gemm: &'static str,
    /// The int8 linear layers' kernel (int8 mode).
    pub int8: Option<&'static str>,
    /// The bf16 linear layers' kernel (bf16 mode).
    pub bf16: Option<&'static str>,
}

/// The error of a bf16 request on a CPU without bf16 dot-product instructions.
pub fn no_bf16_error() -> VdbError {
    VdbError::new(
        ErrorKind::InvalidConfig,
        format!("bf16 needs AVX512-BF16 or AMX; this CPU ({}) has neither; use float32 or int8", cpu_model()),
    )
}

/// `dst = (accumulate ? dst : 0) + x W^T` in float32 through the `gemm` crate, `W` being
/// `[out, inp]` row-major (read transposed through strides). `threads > 1` runs on the current
/// rayon pool.
pub fn f32_gemm(dst: &mut [f32], accumulate: bool, x: &[f32], w: &[f32], out: usize, threads: usize) {
    let inp = w.len() / out;
    let m = x.len() / inp;
    assert!(w.len() == out * inp && dst.len() == m * out && x.len() == m * inp);
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the assert above bounds every access: dst is m x out (row stride out), x is
    // m x inp (row stride inp), W^T is inp x out read from the [out, inp] weight with row
    // stride 1 and column stride inp.
    unsafe {
        gemm::gemm(
            m,
            out,
            inp,
            dst.as_mut_ptr(),
            1,
            out as isize,
            accumulate,
            x.as_ptr(),
            1,
            inp as isize,
            w.as_ptr(),
            inp as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// GFLOP/s (2 flops per multiply-add) of one linear layer `m x inp -> m x out` in `precision`,
/// on `threads` threads, the best of `rounds` rounds of `reps` products each. The kernels are the
/// ones the forward pass uses on this CPU.
pub fn linear_gflops(
    precision: Precision,
    m: usize,
    inp: usize,
    out: usize,
    threads: usize,
    reps: usize,
) -> Result<f64> {
    if m == 0 || inp == 0 || out == 0 || threads == 0 || reps == 0 {
        return Err(VdbError::new(ErrorKind::InvalidConfig, "sizes, threads and reps must be at least 1"));
    }
    let x: Vec<f32> = (0..m * inp).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let w: Vec<f32> = (0..out * inp).map(|i| ((i * 104729) % 1000) as f32 / 5000.0 - 0.1).collect();
    let mut y = vec![0f32; m * out];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| VdbError::internal(format!("cannot start {threads} threads: {e}")))?;
    type Product<'a> = Box<dyn Fn(&mut [f32]) + Sync + 'a>;
    let run: Product = match precision {
        Precision::Float32 => Box::new(|y: &mut [f32]| f32_gemm(y, false, &x, &w, out, threads)),
        Precision::Int8 => {
            let q = quant::QuantLinear::new(&w, out, inp, quant::Kernel::detect());
            Box::new(move |y: &mut [f32]| quant::linear(y, false, &x, &q))
        }
        Precision::Float16 => return Err(super::device::float16_on_cpu_error()),
        Precision::Bf16 => {
            let l = bf16::Bf16Linear::new(&w, out, inp, bf16::Kernel::detect().ok_or_else(no_bf16_error)?);
            Box::new(move |y: &mut [f32]| bf16::linear(y, false, &x, &l))
        }
    };
    Ok(pool.install(|| {
        run(&mut y);
        let mut best = 0f64;
        for _ in 0..3 {
            let t = std::time::Instant::now();
            for _ in 0..reps {
                run(&mut y);
            }
            best = best.max(2.0 * (m * inp * out * reps) as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        best
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_info_is_consistent_with_the_kernels() {
        let info = cpu_info();
        eprintln!("{info:?}");
        assert!(!info.cpu.is_empty());
        if info.features.is_empty() {
            eprintln!("SKIP cpu_info_is_consistent_with_the_kernels: no /proc/cpuinfo flags to compare with");
            return;
        }
        // Two independent sources: std's CPUID detection (the kernels) and Linux's flags.
        let has = |f: &str| info.features.contains(&f);
        match info.bf16 {
            Some("amx-bf16") => assert!(has("amx_bf16") && has("amx_tile")),
            Some(k) => assert_eq!((k, has("avx512_bf16")), ("avx512-bf16", true)),
            None => assert!(!has("avx512_bf16")),
        }
        assert_eq!(info.f32_gemm == "avx512f", has("avx512f"));
        match info.int8 {
            "amx-int8" => assert!(has("amx_int8") && has("amx_tile")),
            "avx512-vnni" => assert!(has("avx512_vnni") && has("avx512vl")),
            _ => assert!(!(has("avx512_vnni") && has("avx512vl"))),
        }
    }

    #[test]
    fn no_bf16_error_names_the_cpu_and_the_alternatives() {
        let e = no_bf16_error();
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(e.message.contains(&cpu_model()) && e.message.contains("float32 or int8"), "{}", e.message);
    }

    #[test]
    fn f32_gemm_computes_x_w_transposed() {
        let (x, w) = ([1.0f32, 2.0, 3.0, 4.0], [1.0f32, 0.0, 0.5, 1.0, 0.0, -1.0]);
        let mut y = [10.0f32; 6];
        f32_gemm(&mut y, true, &x, &w, 3, 1);
        assert_eq!(y, [11.0, 12.5, 8.0, 13.0, 15.5, 6.0]);
        f32_gemm(&mut y, false, &x, &w, 3, 1);
        assert_eq!(y, [1.0, 2.5, -2.0, 3.0, 5.5, -4.0]);
    }
}
