//! The Gram routes: how `X^T X` (or `X X^T` when N < D) of a feature matrix is formed. In f64 on
//! the host (exact), in f32 on the host from blocks summed in f64, or in f32 on a GPU, from the
//! raw features with nml's fused kernel or from host values uploaded a block at a time.

use burn::tensor::{DType, Device, Tensor};
use faer::linalg::matmul::triangular::{BlockStructure, matmul};
use faer::{Accum, Mat, MatRef, Par};

use super::Preprocess;
use crate::error::Result;
use crate::kernels;
use crate::readback::floats;

/// Rows converted to f64 at a time, so the exact Gram never holds the whole matrix in f64.
const BLOCK_ROWS: usize = 2048;

pub(super) fn parallelism() -> Par {
    #[cfg(target_arch = "wasm32")]
    {
        Par::Seq
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Par::rayon(0)
    }
}

/// The Gram matrix of a row-major `n x d` f32 matrix X, accumulated in f64: `X^T X` (d x d) when
/// `d <= n`, else `X X^T` (n x n). Only the lower triangle is computed, then mirrored.
pub fn gram_f64(x: &[f32], n: usize, d: usize) -> Mat<f64> {
    assert_eq!(x.len(), n * d);
    let par = parallelism();
    let mut gram;
    if d <= n {
        gram = Mat::<f64>::zeros(d, d);
        let mut block = vec![0f64; BLOCK_ROWS.min(n) * d];
        for start in (0..n).step_by(BLOCK_ROWS) {
            let rows = BLOCK_ROWS.min(n - start);
            let block = &mut block[..rows * d];
            copy_column_major(&x[start * d..(start + rows) * d], rows, d, block);
            let b = MatRef::from_column_major_slice(block, rows, d);
            matmul(
                gram.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Add,
                b.transpose(),
                BlockStructure::Rectangular,
                b,
                BlockStructure::Rectangular,
                1.0,
                par,
            );
        }
    } else {
        // Row-major, so that both factors run along the summed index (as for the f32 blocks).
        let values: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let full = MatRef::from_row_major_slice(&values, n, d);
        gram = Mat::<f64>::zeros(n, n);
        matmul(
            gram.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Replace,
            full,
            BlockStructure::Rectangular,
            full.transpose(),
            BlockStructure::Rectangular,
            1.0,
            par,
        );
    }
    mirror_lower(&mut gram);
    gram
}

/// Inner-dimension rows (or columns) per f32 block of [`gram_f32_blocks`].
const F32_BLOCK: usize = 1024;
/// Memory for f32 blocks held at once, so that several are summed into the f64 Gram in one pass.
const GROUP_BYTES: usize = 128 << 20;
/// Most f32 blocks summed in one pass: with four, the sum at 50000 x 2048 took 0.06-0.13 s
/// instead of 0.27 s one block at a time.
const MAX_GROUP: usize = 4;

/// The same Gram as [`gram_f64`], from f32 products over blocks of 1024 rows (columns when
/// `d > n`) whose results are summed in f64. Each block rounds like an f32 Gram of 1024 rows,
/// and the f64 sum adds nothing, so the whole is far more accurate than one f32 Gram of N rows
/// (the device path, which the `auto` check is written for) at the speed of f32 arithmetic.
pub fn gram_f32_blocks(x: &[f32], n: usize, d: usize) -> Mat<f64> {
    assert_eq!(x.len(), n * d);
    let par = parallelism();
    let full = MatRef::from_row_major_slice(x, n, d);
    let (m, inner) = if d <= n { (d, n) } else { (n, d) };
    let mut gram = Mat::<f64>::zeros(m, m);
    let starts: Vec<usize> = (0..inner).step_by(F32_BLOCK).collect();
    let group = (GROUP_BYTES / (m * m * size_of::<f32>()).max(1))
        .clamp(1, MAX_GROUP)
        .min(starts.len().max(1));
    let mut blocks: Vec<Mat<f32>> = (0..group).map(|_| Mat::<f32>::zeros(m, m)).collect();
    // A block of rows copied column-major, so that both factors of its Gram run along the
    // summed index: faer's f32 product of a 1024 x 2048 block ran at 152 GFLOPS read from
    // the rows as they lie and at 305 from this copy (Xeon, 2 threads).
    let mut columns = if d <= n { vec![0f32; F32_BLOCK.min(n) * d] } else { Vec::new() };
    for chunk in starts.chunks(group) {
        for (block, &start) in blocks.iter_mut().zip(chunk) {
            let len = F32_BLOCK.min(inner - start);
            let (lhs, rhs) = if d <= n {
                let columns = &mut columns[..len * d];
                copy_column_major(&x[start * d..(start + len) * d], len, d, columns);
                let rows = MatRef::from_column_major_slice(columns, len, d);
                (rows.transpose(), rows)
            } else {
                let cols = full.subcols(start, len);
                (cols, cols.transpose())
            };
            matmul(
                block.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Replace,
                lhs,
                BlockStructure::Rectangular,
                rhs,
                BlockStructure::Rectangular,
                1.0f32,
                par,
            );
        }
        add_lower(&mut gram, &blocks[..chunk.len()]);
    }
    mirror_lower(&mut gram);
    gram
}

/// Columns copied per task, and rows per tile within a column, by [`copy_column_major`].
const COPY_TILE: usize = 32;

/// Copies a row-major `rows x d` matrix into `out` column-major, converting f32 to `T`, in
/// tiles of 32 x 32 so that reads and writes both stay in cache, column ranges shared among
/// threads (each is one contiguous run of `out`). Hand-written rather than taken from a
/// transposition crate, which copies on one thread only: the 49 blocks of a 50000 x 2048
/// matrix took 0.09-0.10 s here against 0.18-0.20 s with the `transpose` crate.
fn copy_column_major<T: From<f32> + Send>(x: &[f32], rows: usize, d: usize, out: &mut [T]) {
    assert_eq!((x.len(), out.len()), (rows * d, rows * d));
    let copy = |(task, out): (usize, &mut [T])| {
        let first = task * COPY_TILE;
        for r0 in (0..rows).step_by(COPY_TILE) {
            let r1 = (r0 + COPY_TILE).min(rows);
            for (offset, column) in out.chunks_exact_mut(rows).enumerate() {
                for (r, v) in (r0..r1).zip(&mut column[r0..r1]) {
                    *v = T::from(x[r * d + first + offset]);
                }
            }
        }
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(COPY_TILE * rows).enumerate().for_each(copy);
    }
    #[cfg(target_arch = "wasm32")]
    out.chunks_mut(COPY_TILE * rows).enumerate().for_each(copy);
}

/// Adds the lower triangles of `parts` into that of `sum`, columns shared among threads.
fn add_lower(sum: &mut Mat<f64>, parts: &[Mat<f32>]) {
    let add = |c: usize, column: faer::ColMut<'_, f64>| {
        let column =
            &mut column.try_as_col_major_mut().expect("faer columns are contiguous").as_slice_mut()
                [c..];
        for part in parts {
            for (g, &b) in column.iter_mut().zip(&part.col_as_slice(c)[c..]) {
                *g += f64::from(b);
            }
        }
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        sum.par_col_iter_mut().enumerate().with_min_len(16).for_each(|(c, column)| add(c, column));
    }
    #[cfg(target_arch = "wasm32")]
    {
        sum.col_iter_mut().enumerate().for_each(|(c, column)| add(c, column));
    }
}

/// Inner-dimension rows per step of [`gram_times`]: small enough that a block in f64 stays in
/// a core's cache while both of its products read it.
const PROBE_CHUNK: usize = 64;

/// `G X` for the exact Gram G of a row-major `n x d` f32 matrix (oriented as in [`gram_f64`])
/// without forming G: one pass over the matrix, `G X = sum_b B^T (B X)` over blocks B of rows
/// (of columns when `d > n`) converted to f64, the blocks shared among threads.
pub fn gram_times(x: &[f32], n: usize, d: usize, rhs: MatRef<'_, f64>) -> Mat<f64> {
    assert_eq!(x.len(), n * d);
    let (m, inner) = if d <= n { (d, n) } else { (n, d) };
    assert_eq!(rhs.nrows(), m);
    let part = |range: std::ops::Range<usize>| gram_times_part(x, d, d <= n, m, range, rhs);
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        let threads = rayon::current_num_threads().max(1);
        let per_thread = inner.div_ceil(PROBE_CHUNK).div_ceil(threads) * PROBE_CHUNK;
        (0..threads)
            .into_par_iter()
            .map(|t| part((t * per_thread).min(inner)..((t + 1) * per_thread).min(inner)))
            .reduce(|| Mat::<f64>::zeros(m, rhs.ncols()), |a, b| a + b)
    }
    #[cfg(target_arch = "wasm32")]
    {
        part(0..inner)
    }
}

/// [`gram_times`] over the inner indices in `range`, on the calling thread.
fn gram_times_part(
    x: &[f32],
    d: usize,
    tall: bool,
    m: usize,
    range: std::ops::Range<usize>,
    rhs: MatRef<'_, f64>,
) -> Mat<f64> {
    use faer::linalg::matmul::matmul;
    let k = rhs.ncols();
    let mut out = Mat::<f64>::zeros(m, k);
    // Held so that every column is a contiguous run of x: B^T (m x len) when tall, a column
    // being one row of x; B (len x m) otherwise, a column being part of one row of x.
    let mut block =
        if tall { Mat::<f64>::zeros(m, PROBE_CHUNK) } else { Mat::<f64>::zeros(PROBE_CHUNK, m) };
    let mut partial = Mat::<f64>::zeros(PROBE_CHUNK, k);
    for start in range.clone().step_by(PROBE_CHUNK) {
        let len = PROBE_CHUNK.min(range.end - start);
        let mut partial = partial.as_mut().subrows_mut(0, len);
        let bt = if tall {
            for r in 0..len {
                let row = &x[(start + r) * d..(start + r + 1) * d];
                for (dst, &src) in block.col_as_slice_mut(r).iter_mut().zip(row) {
                    *dst = f64::from(src);
                }
            }
            block.as_ref().subcols(0, len)
        } else {
            for c in 0..m {
                let run = &x[c * d + start..c * d + start + len];
                for (dst, &src) in block.col_as_slice_mut(c)[..len].iter_mut().zip(run) {
                    *dst = f64::from(src);
                }
            }
            block.as_ref().subrows(0, len).transpose()
        };
        matmul(partial.as_mut(), Accum::Replace, bt.transpose(), rhs, 1.0, Par::Seq);
        matmul(out.as_mut(), Accum::Add, bt, partial.as_ref(), 1.0, Par::Seq);
    }
    out
}

fn mirror_lower(m: &mut Mat<f64>) {
    for c in 0..m.ncols() {
        for r in 0..c {
            m[(r, c)] = m[(c, r)];
        }
    }
}

/// Converts a row-major f32 square matrix into f64.
pub fn square_from_f32(values: &[f32], size: usize) -> Mat<f64> {
    Mat::<f64>::from_fn(size, size, |r, c| f64::from(values[r * size + c]))
}

/// Where the fast Gram is formed from.
// One lives per spectrum taken, so its size is of no account.
#[allow(clippy::large_enum_variant)]
pub(super) enum Source {
    /// Preprocessed values on the host (the CPU backend).
    Host(Vec<f32>),
    /// The raw features on a GPU.
    Device(Tensor<2>),
    /// Preprocessed values on the host whose Gram a GPU forms, uploaded by [`staged_gram`].
    Staged { values: Vec<f32>, device: Device },
}

/// Most feature bytes [`staged_gram`] uploads at once: half of WebGPU's default 128 MiB limit
/// on a storage binding, so a browser's adapter takes every block (a 50000 x 2048 matrix is
/// 410 MB in f32, more than llvmpipe allocates in one buffer).
const STAGE_BYTES: usize = 64 << 20;

/// The Gram (N >= D) of row-major host values, formed on `device` from blocks of
/// `rows_per_stage` rows: each block's f32 Gram comes from nml's kernel (its composed reference
/// where there is none), and the blocks are summed in f64 on the host, which adds no f32
/// rounding. The next block is queued before the last one is read back, so the device does
/// not wait on the host.
///
/// The values come preprocessed, not raw with the kernel's fused preprocessing: then the
/// Gram's only error is the one the `Auto` check bounds against these same values. Fused, the
/// device's rounding of the preprocessing was a second error the check counts against the
/// Gram: at 50000 x 2048 on llvmpipe it took the true error from 1.4e-4 to 2.4e-4 and the
/// measured bound past what the 1e-4 guarantee allows.
pub(super) async fn staged_gram(
    values: &[f32],
    n: usize,
    d: usize,
    device: &Device,
    rows_per_stage: usize,
) -> Result<faer::Mat<f64>> {
    use burn::tensor::TensorData;
    let rows_per_stage = rows_per_stage.max(1);
    let mut gram = faer::Mat::<f64>::zeros(d, d);
    let mut add = |part: Vec<f32>| {
        // Row-major, but symmetric: row j is column j.
        for (j, column) in part.chunks_exact(d).enumerate() {
            for (g, &v) in gram.col_as_slice_mut(j).iter_mut().zip(column) {
                *g += f64::from(v);
            }
        }
    };
    let mut queued: Option<Tensor<2>> = None;
    for start in (0..n).step_by(rows_per_stage) {
        let end = (start + rows_per_stage).min(n);
        let block = Tensor::<2>::from_data(
            TensorData::new(values[start * d..end * d].to_vec(), [end - start, d]),
            device,
        );
        let part = feature_gram(block, Preprocess::Raw);
        if let Some(previous) = queued.replace(part) {
            add(floats(previous).await?);
        }
    }
    if let Some(last) = queued {
        add(floats(last).await?);
    }
    Ok(gram)
}

/// The f32 D x D Gram `V^T V` of features on a device after `mode`: from nml's fused kernel
/// where the device runs it, else from Burn's ops on the preprocessed features.
fn feature_gram(x: Tensor<2>, mode: Preprocess) -> Tensor<2> {
    let x = x.without_autodiff().cast(DType::F32);
    if kernels::uses_wgsl(&x.device()) {
        let stats = mode.affine_stats(x.clone());
        return kernels::affine_gram(x, stats);
    }
    let v = mode.apply(x);
    v.clone().transpose().matmul(v)
}

/// The smaller f32 Gram (`V^T V` for N >= D, else `V V^T`) of features on a GPU after `mode`.
fn device_gram(x: Tensor<2>, mode: Preprocess) -> Tensor<2> {
    let [n, d] = x.dims();
    if d <= n {
        return feature_gram(x, mode);
    }
    let v = mode.apply(x.without_autodiff().cast(DType::F32));
    v.clone().matmul(v.transpose())
}

/// The fast (f32) Gram of `source` in f64 on the host, with the name of the route it took.
pub(super) async fn fast_gram(
    source: &Source,
    mode: Preprocess,
    n: usize,
    d: usize,
) -> Result<(Mat<f64>, &'static str)> {
    Ok(match source {
        Source::Host(values) => (gram_f32_blocks(values, n, d), "gram-f32-blocks-host"),
        Source::Device(x) => (
            square_from_f32(&floats(device_gram(x.clone(), mode)).await?, n.min(d)),
            "gram-f32-device",
        ),
        Source::Staged { values, device } => {
            let rows = STAGE_BYTES / (d * size_of::<f32>());
            (staged_gram(values, n, d, device, rows).await?, "gram-f32-device")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_matches_naive_in_both_orientations() {
        for (n, d) in [(5usize, 3usize), (3, 5), (4100, 3)] {
            let x: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
            let g = gram_f64(&x, n, d);
            let m = n.min(d);
            assert_eq!((g.nrows(), g.ncols()), (m, m));
            for a in 0..m {
                for b in 0..m {
                    let naive: f64 = if d <= n {
                        (0..n).map(|r| f64::from(x[r * d + a]) * f64::from(x[r * d + b])).sum()
                    } else {
                        (0..d).map(|c| f64::from(x[a * d + c]) * f64::from(x[b * d + c])).sum()
                    };
                    assert!((g[(a, b)] - naive).abs() < 1e-9 * naive.abs().max(1.0));
                }
            }
        }
    }

    /// Several blocks plus a ragged last one, in both orientations, against the f64 Gram.
    #[test]
    fn f32_blocks_agree_with_the_f64_gram() {
        for (n, d) in [(2 * F32_BLOCK + 77, 33usize), (29, 3 * F32_BLOCK + 5)] {
            let x: Vec<f32> = (0..n * d)
                .map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * (1.0 + (i % d) as f32))
                .collect();
            let (exact, blocks) = (gram_f64(&x, n, d), gram_f32_blocks(&x, n, d));
            let m = n.min(d);
            let scale = (0..m).map(|i| exact[(i, i)]).fold(0.0, f64::max);
            for a in 0..m {
                for b in 0..m {
                    assert_eq!(blocks[(a, b)], blocks[(b, a)]);
                    let err = (blocks[(a, b)] - exact[(a, b)]).abs();
                    assert!(err < 1e-6 * scale, "({a},{b}) off by {err} of {scale}");
                }
            }
        }
    }

    /// Ragged tiles on both sides: 45 rows and 70 columns are not multiples of 32.
    #[test]
    fn column_major_copy_transposes() {
        let (rows, d) = (45, 70);
        let x: Vec<f32> = (0..rows * d).map(|i| i as f32).collect();
        let mut out = vec![f32::NAN; rows * d];
        copy_column_major(&x, rows, d, &mut out);
        assert_eq!(
            MatRef::from_column_major_slice(&out, rows, d),
            MatRef::from_row_major_slice(&x, rows, d)
        );
    }

    #[test]
    fn gram_times_matches_the_formed_gram() {
        for (n, d) in [(4 * PROBE_CHUNK + 37, 17usize), (13, 4 * PROBE_CHUNK + 37)] {
            let x: Vec<f32> = (0..n * d).map(|i| (i * 7919 % 1009) as f32 / 1009.0 - 0.5).collect();
            let m = n.min(d);
            let rhs = Mat::<f64>::from_fn(m, 3, |r, c| ((r * 3 + c) % 7) as f64 - 3.0);
            let expected = gram_f64(&x, n, d) * &rhs;
            let got = gram_times(&x, n, d, rhs.as_ref());
            let err = (&got - &expected).norm_max();
            assert!(err < 1e-10 * expected.norm_max(), "{n} x {d}: off by {err}");
        }
    }
}
