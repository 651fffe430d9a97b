//! Only for the `cuda` feature: the Python extension finds the CUDA 13 libraries of the PyPI wheels
//! `nvidia-cublas`, `nvidia-curand`, `nvidia-cuda-nvrtc` and `nvidia-cuda-runtime` installed next to
//! it (`site-packages/nvidia/cu13/lib`), as torch's wheels do; the system's (ld.so.conf,
//! `LD_LIBRARY_PATH`) otherwise. The CPU build links nothing of CUDA and is left alone.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/../nvidia/cu13/lib");
    }
}
