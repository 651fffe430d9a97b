//! The packed-panel GEMM driver the int8 ([`super::quant`]) and bf16 ([`super::bf16`]) linear
//! layers share: the weights' panel layout, the parallel loop over row blocks, the tiling loop
//! over panels and row tiles, the kernel choice, and the step from a row count to a register tile
//! compiled for it. A precision supplies only its arithmetic ([`PackedLinear`]): how rows are
//! converted, how a tile is multiplied, and how a tile's sums reach the output.
//!
//! Weight layout: panels of [`NR`] output channels; inside a panel, groups of `kg` consecutive
//! inputs, each group `NR` channels x `kg` values (`[panel][k / kg][NR][kg]`), so one broadcast
//! group of an activation row multiplies a whole register of channels. A group is 4 bytes in
//! both precisions (4 `i8` or 2 bf16), so an AMX B tile (16 groups x 16 channels, rows 128 bytes
//! apart) is a slice of a panel as it is ([`super::amx::tile_product`]).

use rayon::prelude::*;

use super::amx;

/// Output channels per packed panel.
pub const NR: usize = 32;
/// Rows of the AVX-512 register tiles: 2 * MR accumulators + 2 weight registers <= 32 zmm.
pub const MR: usize = 12;
/// Rows of the AMX kernels' tiles and of the tile buffer (>= [`MR`]).
pub const TILE_ROWS: usize = 16;
/// Rows converted and multiplied by one parallel task.
const ROWS_PER_TASK: usize = 48;

/// One tile of sums: up to [`TILE_ROWS`] rows of [`NR`] channels.
pub type Tile<T> = [[T; NR]; TILE_ROWS];

/// The weights of a linear layer (`[out, inp]`), packed in panels.
pub struct Panels<T> {
    data: Vec<T>,
    pub out: usize,
    pub inp: usize,
    /// `inp` rounded up to a multiple of the kernel's step (`kg`, or an AMX tile row).
    pub k_pad: usize,
    kg: usize,
}

impl<T: Copy + Default> Panels<T> {
    /// Zero weights, groups of `kg` inputs, `inp` padded to a multiple of `step`.
    pub fn new(out: usize, inp: usize, kg: usize, step: usize) -> Panels<T> {
        let k_pad = inp.div_ceil(step) * step;
        Panels { data: vec![T::default(); out.div_ceil(NR) * NR * k_pad], out, inp, k_pad, kg }
    }

    /// Sets the weight of output channel `j` for input `k`.
    pub fn set(&mut self, j: usize, k: usize, v: T) {
        let groups = self.groups();
        let (panel, c) = (j / NR, j % NR);
        let (g, t) = (k / self.kg, k % self.kg);
        self.data[((panel * groups + g) * NR + c) * self.kg + t] = v;
    }

    /// Groups of `kg` inputs in a padded row.
    pub fn groups(&self) -> usize {
        self.k_pad / self.kg
    }

    /// Panel `p`: channels `p * NR ..`, every group.
    fn panel(&self, p: usize) -> &[T] {
        let len = self.groups() * NR * self.kg;
        &self.data[p * len..(p + 1) * len]
    }
}

/// A linear layer packed in [`Panels`], with its precision's arithmetic.
pub trait PackedLinear: Sync {
    /// A converted activation (`u8`, bf16 bits).
    type A: Copy;
    /// A packed weight.
    type W: Copy + Default;
    /// A sum in the tile (`i32`, `f32`).
    type Acc: Copy + Default;
    /// The converted rows of one task (reused across the tasks of a thread).
    type Rows: Default + Send;

    fn panels(&self) -> &Panels<Self::W>;

    /// Whether this CPU runs the layer's kernel, and the kernel's name.
    fn kernel(&self) -> (bool, &'static str);

    /// The most rows one [`Self::tile_product`] takes (<= [`TILE_ROWS`]).
    fn tile_rows(&self) -> usize;

    /// Converts the rows of `x` (rows of `inp`) into `rows` (rows of `k_pad`).
    fn convert_rows(&self, x: &[f32], rows: &mut Self::Rows);

    /// The converted rows (rows of `k_pad`).
    fn converted(rows: &Self::Rows) -> &[Self::A];

    /// The product of `mr` converted rows `a` with one panel `b`, into (or onto) `tile`.
    fn tile_product(&self, a: &[Self::A], mr: usize, b: &[Self::W], tile: &mut Tile<Self::Acc>);

    /// Before the product: one tile row from its output `dst` (the row's channels of the panel).
    fn load(&self, dst: &[f32], acc: &mut [Self::Acc; NR], accumulate: bool);

    /// After the product: row `r` of the task (its sums `acc`, channels `c0..`) into `dst`.
    fn store(&self, rows: &Self::Rows, r: usize, c0: usize, acc: &[Self::Acc], dst: &mut [f32], accumulate: bool);

    /// The converted rows times every panel, into `dst` (a layer may run [`block`] compiled for
    /// its CPU).
    fn block(&self, dst: &mut [f32], accumulate: bool, rows: &Self::Rows) {
        block(self, dst, accumulate, rows)
    }

    /// After [`Self::block`]: whatever the converted product left out.
    fn finish(&self, _dst: &mut [f32], _rows: &Self::Rows) {}
}

/// `dst = (accumulate ? dst : 0) + x W^T` with `x` of `inp` columns and `dst` of `out`, the
/// product in `l`'s precision on the kernel it was packed for; tasks of [`ROWS_PER_TASK`] rows on
/// the current rayon pool.
pub fn linear<L: PackedLinear>(dst: &mut [f32], accumulate: bool, x: &[f32], l: &L) {
    let (supported, name) = l.kernel();
    assert!(supported, "the CPU cannot run the {name} kernel");
    let p = l.panels();
    let m = x.len() / p.inp;
    assert!(x.len() == m * p.inp && dst.len() == m * p.out);
    dst.par_chunks_mut(ROWS_PER_TASK * p.out).zip(x.par_chunks(ROWS_PER_TASK * p.inp)).for_each_init(
        L::Rows::default,
        |rows, (d, xs)| {
            l.convert_rows(xs, rows);
            l.block(d, accumulate, rows);
            l.finish(d, rows);
        },
    );
}

/// The converted rows of one task times every panel of `l`, into `dst`: per panel, tiles of up to
/// [`PackedLinear::tile_rows`] rows.
#[inline(always)]
pub fn block<L: PackedLinear + ?Sized>(l: &L, dst: &mut [f32], accumulate: bool, rows: &L::Rows) {
    let p = l.panels();
    let a = L::converted(rows);
    let m = a.len() / p.k_pad;
    let mr_max = l.tile_rows();
    let mut tile = [[L::Acc::default(); NR]; TILE_ROWS];
    for panel in 0..p.out.div_ceil(NR) {
        let b = p.panel(panel);
        let c0 = panel * NR;
        let cols = (p.out - c0).min(NR);
        let mut r0 = 0;
        while r0 < m {
            let mr = (m - r0).min(mr_max);
            for (i, t) in tile[..mr].iter_mut().enumerate() {
                let o = (r0 + i) * p.out + c0;
                l.load(&dst[o..o + cols], t, accumulate);
            }
            l.tile_product(&a[r0 * p.k_pad..(r0 + mr) * p.k_pad], mr, b, &mut tile);
            for (i, t) in tile[..mr].iter().enumerate() {
                let o = (r0 + i) * p.out + c0;
                l.store(rows, r0 + i, c0, &t[..cols], &mut dst[o..o + cols], accumulate);
            }
            r0 += mr;
        }
    }
}

/// The kernel to use: the AMX kernel `amx` where it may run ([`amx::enabled`], [`amx::usable`])
/// and passes its [`amx::SelfCheck`], else the first of `cpu` (fastest first) that `supported`
/// says this CPU runs.
pub fn pick<K: Copy>(amx: K, check: &amx::SelfCheck, cpu: &[K], supported: impl Fn(K) -> bool) -> Option<K> {
    if cfg!(target_arch = "x86_64") && amx::enabled() && amx::usable(check.feature) && check.passes() {
        return Some(amx);
    }
    cpu.iter().copied().find(|&k| supported(k))
}

/// `$module::$kernel::<R>(args)` with `R = $mr` for the row counts listed, the last one also for
/// any larger count (the register tiles are const-generic in their rows).
macro_rules! by_rows {
    ($mr:expr, [$($r:literal),*], $last:literal, $m:ident::$f:ident $args:tt) => {
        match $mr {
            $($r => $m::$f::<$r> $args,)*
            _ => $m::$f::<$last> $args,
        }
    };
}
pub(crate) use by_rows;
