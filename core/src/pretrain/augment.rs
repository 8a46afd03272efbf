use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::ImageSet;

/// Standard augmentation for small images: zero-pad by `pad` pixels and crop back to the
/// original size at a random offset; optionally mirror left-right (off for digits, whose mirror
/// images are other shapes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    pub pad: usize,
    pub flip: bool,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { pad: 2, flip: false }
    }
}

/// Pixels of the images at `indices`, scaled to [0, 1], as a row-major `[B, 1, H, W]` buffer;
/// augmented when `augment` is given (drawing from `rng`).
pub fn image_batch(images: &ImageSet, indices: &[usize], augment: Option<(&AugmentConfig, &mut ChaCha8Rng)>) -> Vec<f32> {
    let (h, w) = (images.height, images.width);
    let scale = 1.0 / f32::from(images.max_value);
    let mut out = Vec::with_capacity(indices.len() * h * w);
    match augment {
        None => {
            for &i in indices {
                out.extend(images.pixels[i * h * w..(i + 1) * h * w].iter().map(|&p| f32::from(p) * scale));
            }
        }
        Some((config, rng)) => {
            let pad = config.pad as isize;
            for &i in indices {
                let img = &images.pixels[i * h * w..(i + 1) * h * w];
                // Offset of the crop inside the padded image, relative to the original.
                let dy = rng.random_range(0..=2 * config.pad) as isize - pad;
                let dx = rng.random_range(0..=2 * config.pad) as isize - pad;
                let flip = config.flip && rng.random::<bool>();
                for y in 0..h as isize {
                    for x in 0..w as isize {
                        let sy = y + dy;
                        let sx = if flip { w as isize - 1 - x } else { x } + dx;
                        let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                        out.push(if inside { f32::from(img[sy as usize * w + sx as usize]) * scale } else { 0.0 });
                    }
                }
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
        ImageSet { name: "t".into(), n: 2, height: 3, width: 3, pixels, labels: vec![0, 1], num_classes: 2, max_value: 255 }
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
        let config = AugmentConfig { pad: 1, flip: false };
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
