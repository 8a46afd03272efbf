//! Augmentation of small images on the host: seeded crops and mirrors, and normalisation.

use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::ImageSet;

/// Standard augmentation for small images: zero-pad by `pad` pixels and crop back to the
/// original size at a random offset; optionally mirror left-right (off for digits, whose mirror
/// images are other shapes); optionally normalise pixels (scaled to [0, 1]) as `(p - mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    pub pad: usize,
    pub flip: bool,
    /// Absent in configs written before it existed, and left out when unset so their
    /// checkpoints and cached sweep steps still match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalize>,
}

/// Per-channel normalisation of pixels already scaled to [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    pub mean: f32,
    pub std: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { pad: 2, flip: false, normalize: None }
    }
}

impl AugmentConfig {
    /// The normalisation's mean and standard deviation (0 and 1 without one).
    pub fn mean_std(&self) -> (f32, f32) {
        self.normalize.map_or((0.0, 1.0), |n| (n.mean, n.std))
    }
}

/// The crop of each image at `indices`, four integers per sample (image index, dy, dx, mirror
/// flag), drawn from `rng`; without `augment`, the images as they are.
pub fn draw_crops(
    indices: &[usize],
    augment: Option<(&AugmentConfig, &mut ChaCha8Rng)>,
) -> Vec<i32> {
    let mut crops = Vec::with_capacity(indices.len() * 4);
    match augment {
        None => indices.iter().for_each(|&i| crops.extend([i as i32, 0, 0, 0])),
        Some((config, rng)) => {
            let pad = config.pad as i32;
            for &i in indices {
                // Offset of the crop inside the padded image, relative to the original. Drawn
                // as usize, as nml always has, so seeded runs keep their crops.
                let dy = rng.random_range(0..=2 * config.pad) as i32 - pad;
                let dx = rng.random_range(0..=2 * config.pad) as i32 - pad;
                let flip = config.flip && rng.random::<bool>();
                crops.extend([i as i32, dy, dx, i32::from(flip)]);
            }
        }
    }
    crops
}

/// Pixels of the images at `indices`, scaled to [0, 1], as a row-major `[B, 1, H, W]` buffer;
/// augmented when `augment` is given (drawing from `rng`). Computed on the host; pre-training
/// uses `pretrain::DeviceImages`, which gives the same values on the device.
pub fn image_batch(
    images: &ImageSet,
    indices: &[usize],
    augment: Option<(&AugmentConfig, &mut ChaCha8Rng)>,
) -> Vec<f32> {
    let (mean, std) = augment.as_ref().map_or((0.0, 1.0), |(config, _)| config.mean_std());
    let crops = draw_crops(indices, augment);
    let (h, w) = (images.height() as i32, images.width() as i32);
    let scale = 1.0 / f32::from(images.max_value());
    let inv_std = 1.0 / std;
    let mut out = Vec::with_capacity(indices.len() * (h * w) as usize);
    for crop in crops.chunks_exact(4) {
        let [image, dy, dx, flip] = [crop[0], crop[1], crop[2], crop[3]];
        let img = images.image(image as usize);
        for y in 0..h {
            for x in 0..w {
                let sy = y + dy;
                let sx = if flip != 0 { w - 1 - x } else { x } + dx;
                let inside = (0..h).contains(&sy) && (0..w).contains(&sx);
                let value =
                    if inside { f32::from(img[(sy * w + sx) as usize]) * scale } else { 0.0 };
                out.push((value - mean) * inv_std);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn set() -> ImageSet {
        let pixels: Vec<u8> = (0..2 * 3 * 3).map(|v| v as u8 * 10).collect();
        ImageSet::new("t", 3, 3, pixels, vec![0, 1], None).unwrap()
    }

    #[test]
    fn plain_batch_scales_and_orders() {
        let b = image_batch(&set(), &[1, 0], None);
        assert_eq!(b.len(), 18);
        assert!((b[0] - 90.0 / 255.0).abs() < 1e-6 && b[9] == 0.0);
    }

    #[test]
    fn crops_are_shifts_of_the_image_with_zero_fill() {
        let images = set();
        let config = AugmentConfig { pad: 1, flip: false, normalize: None };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let b = image_batch(&images, &[0], Some((&config, &mut rng)));
            // Every output pixel is either zero fill or a pixel of image 0, and the sum of any
            // crop never exceeds the image's own.
            let total: f32 = b.iter().sum();
            let full: f32 = image_batch(&images, &[0], None).iter().sum();
            assert!(total <= full + 1e-5);
            seen.insert(b.iter().map(|v| (v * 255.0).round() as u32).collect::<Vec<_>>());
        }
        // 3 x 3 offsets, all reached.
        assert_eq!(seen.len(), 9);
    }
}
