//! gemm 0.19 float32 GFLOP/s on MiniLM's linear-layer shapes (`x W^T`, `W` stored `[out, in]`, as
//! vdb_core's fused forward calls it), best of 3 rounds of 20 products. Built with `--features v4`
//! (gemm's `x86-v4`: AVX-512 kernels where the CPU has AVX-512F) and without (AVX2/FMA kernels).
//!
//! Usage: `gemm_isa [THREADS]` (default 2). Prints `LABEL MxKxN GFLOP/s` lines.

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(2, |s| s.parse().expect("THREADS must be an integer"));
    let reps = 20;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let label = if cfg!(feature = "v4") { "x86-v4" } else { "default" };
    for (m, k, n) in [(1440usize, 384usize, 1152usize), (1440, 384, 1536), (1440, 1536, 384), (1440, 384, 384)] {
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 1000) as f32 / 5000.0 - 0.1).collect();
        let mut y = vec![0f32; m * n];
        let run = |y: &mut [f32]| {
            // SAFETY: y is m x n, x is m x k, w is n x k (read transposed): every access in bounds.
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
                )
            }
        };
        let best = pool.install(|| {
            run(&mut y);
            let mut best = 0f64;
            for _ in 0..3 {
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    run(&mut y);
                }
                best = best.max(2.0 * (m * n * k * reps) as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
            best
        });
        println!("{label} {m}x{k}x{n} {best:.1}");
    }
}
