//! Kernel tests on a CPU that lacks the kernel: a skip that says so on stderr, or, when the kernel
//! is named in `VDB_REQUIRE_KERNELS` (comma-separated: `avx2`, `avx512`, `vnni`, `bf16`, `amx`), a
//! failure. `.ci/run` sets it from the CPU's flags, so a CI run proves every kernel its CPU has,
//! and a skip there is a bug (a detection that missed a kernel the CPU has), never a quiet pass.
//!
//! One file for the library's unit tests (`#[path]`-included under `#[cfg(test)]`) and the
//! integration tests (`#[path = "support/kernels.rs"]`): no test helper in the public API.

/// The kernels `VDB_REQUIRE_KERNELS` names, lower case.
pub fn required() -> Vec<String> {
    std::env::var("VDB_REQUIRE_KERNELS")
        .unwrap_or_default()
        .split(',')
        .map(|k| k.trim().to_ascii_lowercase())
        .filter(|k| !k.is_empty())
        .collect()
}

/// `true`: skip `test`, which needs `kernel` (one of the names above) and this CPU cannot run it.
/// Panics instead when `VDB_REQUIRE_KERNELS` requires that kernel. `false` when `available`.
pub fn skip_unless(available: bool, kernel: &str, test: &str) -> bool {
    if available {
        return false;
    }
    if required().iter().any(|k| k == kernel) {
        panic!(
            "{test}: this CPU cannot run the {kernel} kernel, but VDB_REQUIRE_KERNELS={} requires it",
            std::env::var("VDB_REQUIRE_KERNELS").unwrap_or_default()
        );
    }
    eprintln!("SKIP {test}: this CPU cannot run the {kernel} kernel");
    true
}
