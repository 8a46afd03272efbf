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

/// Writes a class folder of `n` JPEGs (quality 90, about ImageNet's typical 500 x 375, some
/// portrait) into `out/CLASS/`, `classes` classes, cut from the photos in `photos` (PNG/JPEG
/// files): each a crop of one photo at a seeded place and scale, so no two files are equal. The
/// loader benchmark's folder, the same one nml and torchvision read.
pub fn jpeg_folder(
    photos: &std::path::Path,
    out: &std::path::Path,
    n: usize,
    classes: usize,
) -> crate::Result<()> {
    use crate::error::NmlError;
    let mut files: Vec<_> = std::fs::read_dir(photos)
        .map_err(|e| NmlError::io(photos, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut sources = Vec::new();
    for file in files {
        // Files that do not decode (the sample folder's truncated JPEG) are not photos to cut.
        if let Ok(photo) = image::open(&file) {
            sources.push(photo.to_rgb8());
        }
    }
    if sources.is_empty() {
        return Err(NmlError::format(photos.display().to_string(), "no photos that decode"));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for k in 0..n {
        let photo = &sources[k % sources.len()];
        let (w, h) = photo.dimensions();
        let scale = rng.random_range(0.5..=1.0f64);
        let (cw, ch) = ((f64::from(w) * scale) as u32, (f64::from(h) * scale) as u32);
        let (x, y) = (rng.random_range(0..=w - cw), rng.random_range(0..=h - ch));
        let crop = image::imageops::crop_imm(photo, x, y, cw, ch).to_image();
        let (tw, th) = if k % 4 == 3 { (375, 500) } else { (500, 375) };
        let resized = image::imageops::resize(&crop, tw, th, image::imageops::FilterType::Triangle);
        let dir = out.join(format!("class{:02}", k % classes));
        std::fs::create_dir_all(&dir).map_err(|e| NmlError::io(&dir, e))?;
        let path = dir.join(format!("{k:05}.jpg"));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(&resized)
            .map_err(|e| NmlError::format(path.display().to_string(), e.to_string()))?;
        crate::io::write_atomic(&path, &bytes)?;
    }
    Ok(())
}
