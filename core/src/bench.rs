//! Workloads and timing for `nml bench` (and the tests that time things), kept in one place so
//! every measurement is taken the same way.

use std::time::Instant;

use burn::tensor::Device;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::data::{FeatureSet, ImageSet};

/// Random features with a decaying column scale, like a trained network's: not flat, not
/// rank-deficient. The same generator (seed aside) as bench/spectrum_numpy.py's.
pub fn synthetic_features(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let scale: Vec<f32> = (0..d).map(|j| 1.0 / (1.0 + j as f32 / 16.0)).collect();
    (0..n * d).map(|i| (rng.random::<f32>() - 0.5) * scale[i % d]).collect()
}

/// [`synthetic_features`] as a feature set (one class), the input of the spectrum benchmarks: what
/// `nml spectrum` holds after reading a features file.
pub fn synthetic_feature_set(n: usize, d: usize, seed: u64) -> FeatureSet {
    FeatureSet::new("bench", synthetic_features(n, d, seed), d, vec![0; n], None)
        .expect("consistent by construction")
}

/// Features with labels from a random linear teacher, so a head has something to learn.
pub fn teacher_task(n: usize, d: usize, classes: usize, seed: u64) -> FeatureSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let features: Vec<f32> = (0..n * d).map(|_| rng.random::<f32>() - 0.5).collect();
    let teacher: Vec<f32> = (0..d * classes).map(|_| rng.random::<f32>() - 0.5).collect();
    let labels = features
        .chunks_exact(d)
        .map(|row| {
            (0..classes)
                .map(|c| {
                    row.iter().zip(&teacher[c * d..(c + 1) * d]).map(|(a, b)| a * b).sum::<f32>()
                })
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(0, |(c, _)| c as i64)
        })
        .collect();
    FeatureSet::new("bench", features, d, labels, Some(classes))
        .expect("consistent by construction")
}

/// Random u8 images (content does not change the cost of augmenting them).
pub fn synthetic_images(n: usize, height: usize, width: usize, seed: u64) -> ImageSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pixels = (0..n * height * width).map(|_| rng.random::<u8>()).collect();
    let labels = (0..n).map(|i| (i % 10) as u32).collect();
    ImageSet::new("bench", [height, width, 1], pixels, labels, Some(10))
        .expect("consistent by construction")
}

/// Median wall time of `repeats` runs of `work` after one unmeasured warm-up run (which also
/// compiles GPU kernels). `work` must finish its device work before returning (read a result
/// back, or call [`Device::sync`]).
pub fn median_seconds(repeats: usize, mut work: impl FnMut()) -> f64 {
    work();
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Waits for `device`'s queued work; a no-op on the CPU backend.
pub fn sync(device: &Device) {
    // A failed sync surfaces again, with its cause, at the next readback.
    let _ = device.sync();
}

/// The exact f64 Gram of a row-major `n x d` matrix (oriented as the spectrum orients it), as
/// row-major values.
pub fn gram_f64_dense(x: &[f32], n: usize, d: usize) -> Vec<f64> {
    let g = crate::spectrum::gram_f64(x, n, d);
    let m = n.min(d);
    (0..m * m).map(|k| g[(k / m, k % m)]).collect()
}

/// The eigenvalues (descending) of a symmetric row-major `m x m` matrix, by the spectrum's solver.
pub fn eigenvalues_desc(values: &[f64], m: usize) -> Vec<f64> {
    let matrix = faer::Mat::<f64>::from_fn(m, m, |r, c| values[r * m + c]);
    crate::spectrum::eigenvalues_desc(matrix.as_ref())
}
