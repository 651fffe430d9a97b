//! Where the forward pass runs: the CPU (always there) or an NVIDIA GPU through candle's CUDA
//! backend, which exists only in a build with the `cuda` cargo feature (`make cuda`).

use std::fmt;
use std::str::FromStr;

use super::Precision;
use crate::error::{ErrorKind, Result, VdbError};

/// The device an embedder computes on (`VDB_DEVICE`, `Embedder(device=...)`, `--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The fused CPU forward pass (the default).
    #[default]
    Cpu,
    /// The CUDA GPU with this ordinal (`cuda:0`, ...), candle's CUDA backend.
    Cuda(usize),
}

/// True when this build has candle's CUDA backend (the `cuda` cargo feature).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

impl Device {
    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// The precisions this device runs: float32, int8 and bf16 on the CPU (bf16 only where the
    /// CPU has bf16 instructions, checked at load), float32, float16 and bf16 on a GPU.
    pub fn check_precision(self, precision: Precision) -> Result<()> {
        match (self, precision) {
            (Device::Cpu, Precision::Float16) => Err(float16_on_cpu_error()),
            (Device::Cuda(_), Precision::Int8) => Err(VdbError::new(
                ErrorKind::InvalidConfig,
                format!("precision int8 does not run on device {self}: int8 is a CPU mode; on a GPU use float32, float16 or bf16"),
            )),
            _ => Ok(()),
        }
    }

    /// The error for a GPU device in a build without the `cuda` feature.
    pub fn not_built_error(self) -> VdbError {
        VdbError::new(
            ErrorKind::InvalidConfig,
            format!(
                "device {self}: this vdb_core was built without the cuda feature: build it with `make cuda` \
                 (or `maturin build --release --features python,cuda` with nvcc on the PATH), or use device \
                 \"cpu\""
            ),
        )
    }
}

/// The error of precision float16 on the CPU.
pub fn float16_on_cpu_error() -> VdbError {
    VdbError::new(
        ErrorKind::InvalidConfig,
        "precision float16 does not run on device cpu: float16 is a GPU mode (device \"cuda\"); on the CPU use \
         float32, int8 or bf16",
    )
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = VdbError;
    /// `cpu`, `cuda` (= `cuda:0`) or `cuda:N`, case and surrounding blanks ignored.
    fn from_str(s: &str) -> Result<Device> {
        let v = s.trim().to_ascii_lowercase();
        let bad = || {
            VdbError::new(
                ErrorKind::InvalidConfig,
                format!("device must be cpu, cuda or cuda:N (N = 0, 1, ...), not {s:?}"),
            )
        };
        match v.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => {
                let n = v.strip_prefix("cuda:").ok_or_else(bad)?;
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                n.parse().map(Device::Cuda).map_err(|_| bad())
            }
        }
    }
}

impl serde::Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_cuda_and_ordinals() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!(" CPU ".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:0".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("CUDA:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        assert_eq!(Device::default(), Device::Cpu);
        assert_eq!(serde_json::to_string(&Device::Cuda(1)).unwrap(), "\"cuda:1\"");
    }

    #[test]
    fn anything_else_is_a_config_error_quoting_the_value() {
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:1.5", "cuda0", "", "metal", "cuda:+1"] {
            let err = bad.parse::<Device>().unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidConfig, "{bad}");
            assert!(err.message.contains(&format!("{bad:?}")), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn precisions_belong_to_their_device() {
        for p in [Precision::Float32, Precision::Int8, Precision::Bf16] {
            Device::Cpu.check_precision(p).unwrap();
        }
        for p in [Precision::Float32, Precision::Float16, Precision::Bf16] {
            Device::Cuda(0).check_precision(p).unwrap();
        }
        let err = Device::Cpu.check_precision(Precision::Float16).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
        assert!(err.message.contains("float16 is a GPU mode"), "{}", err.message);
        let err = Device::Cuda(1).check_precision(Precision::Int8).unwrap_err();
        assert!(err.message.contains("device cuda:1") && err.message.contains("int8 is a CPU mode"), "{}", err.message);
    }

    #[test]
    fn the_not_built_error_says_how_to_build() {
        let err = Device::Cuda(0).not_built_error();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
        assert!(err.message.contains("built without the cuda feature"), "{}", err.message);
        assert!(err.message.contains("make cuda"), "{}", err.message);
    }
}
