//! Augmentation of images on the host: seeded crops and mirrors, and per-channel normalisation.

use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::ImageSet;
use crate::error::{NmlError, Result};

/// Standard augmentation for small images: zero-pad by `pad` pixels and crop back to the
/// original size at a random offset; optionally mirror left-right (off for digits, whose mirror
/// images are other shapes); optionally normalise pixels (scaled to [0, 1]) per channel.
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

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { pad: 2, flip: false, normalize: None }
    }
}

/// Normalisation of pixels already scaled to [0, 1], `(p - mean[c]) / std[c]`: one mean and
/// standard deviation for every channel, or one per channel of colour images. Written as
/// numbers when there is one value (`{ mean = 0.13, std = 0.31 }`, as configs had before colour
/// images), else as lists. Built only through checked constructors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NormalizeFields", into = "NormalizeFields")]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NormalizeFields {
    mean: OneOrMany,
    std: OneOrMany,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(f32),
    Many(Vec<f32>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<f32> {
        match self {
            Self::One(v) => vec![v],
            Self::Many(v) => v,
        }
    }

    fn from_vec(v: Vec<f32>) -> Self {
        match v.as_slice() {
            &[one] => Self::One(one),
            _ => Self::Many(v),
        }
    }
}

impl TryFrom<NormalizeFields> for Normalize {
    type Error = NmlError;
    fn try_from(fields: NormalizeFields) -> Result<Self> {
        Normalize::new(fields.mean.into_vec(), fields.std.into_vec())
    }
}

impl From<Normalize> for NormalizeFields {
    fn from(n: Normalize) -> Self {
        Self { mean: OneOrMany::from_vec(n.mean), std: OneOrMany::from_vec(n.std) }
    }
}

impl Normalize {
    /// ImageNet's per-channel statistics (RGB), as torchvision's and timm's models expect.
    pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

    /// One value for all channels, or one per channel (three); every std finite and positive.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if mean.len() != std.len() || !matches!(mean.len(), 1 | 3) {
            return Err(NmlError::Invalid(format!(
                "normalisation needs one mean and std, or three of each (got {} and {})",
                mean.len(),
                std.len()
            )));
        }
        if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(NmlError::Invalid(format!(
                "normalisation needs finite means and positive stds (got {mean:?} and {std:?})"
            )));
        }
        Ok(Self { mean, std })
    }

    /// ImageNet's statistics (see [`Normalize::IMAGENET_MEAN`]).
    pub fn imagenet() -> Self {
        Self { mean: Self::IMAGENET_MEAN.to_vec(), std: Self::IMAGENET_STD.to_vec() }
    }

    /// `(x - 127) / 128` on byte values, about [-1, 1]: the input of TensorFlow's mobile
    /// models, EfficientNet-Lite among them.
    pub fn centered_bytes() -> Self {
        Self { mean: vec![127.0 / 255.0], std: vec![128.0 / 255.0] }
    }

    /// `(p - 0.5) / 0.5`, [-1, 1]: Inception's input, and timm's default for its ViT weights.
    pub fn inception() -> Self {
        Self { mean: vec![0.5], std: vec![0.5] }
    }

    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    pub fn std(&self) -> &[f32] {
        &self.std
    }
}

/// The pixel map of a batch: `(p * scale - mean[c]) * inv_std[c]` for channel c (the first
/// `channels` entries are used).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelMap {
    pub channels: usize,
    pub scale: f32,
    pub mean: [f32; 3],
    pub inv_std: [f32; 3],
}

impl PixelMap {
    /// The map of `images` under `normalize` (none: only scaling to [0, 1]); three-channel
    /// statistics for grey images are an error.
    pub fn new(images: &ImageSet, normalize: Option<&Normalize>) -> Result<Self> {
        let channels = images.channels();
        let (mut mean, mut inv_std) = ([0.0; 3], [1.0; 3]);
        if let Some(n) = normalize {
            if n.mean.len() != 1 && n.mean.len() != channels {
                return Err(NmlError::format(
                    images.name(),
                    format!(
                        "images have {channels} channel(s); the normalisation has {} values",
                        n.mean.len()
                    ),
                ));
            }
            for c in 0..channels {
                let k = if n.mean.len() == 1 { 0 } else { c };
                mean[c] = n.mean[k];
                inv_std[c] = 1.0 / n.std[k];
            }
        }
        Ok(Self { channels, scale: 1.0 / f32::from(images.max_value()), mean, inv_std })
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

/// Pixels of the images at `indices` as a row-major `[B, C, H, W]` buffer (channels first, as
/// convolutions take them), scaled to [0, 1] and normalised by `normalize`; shifted and flipped
/// when `augment` is given (drawing from its rng; the normalisation is the model's input, so it
/// is passed on its own even where it comes from the same config). Computed on the host;
/// pre-training uses `pretrain::DeviceImages`, which gives the same values on the device.
pub fn image_batch(
    images: &ImageSet,
    indices: &[usize],
    normalize: Option<&Normalize>,
    augment: Option<(&AugmentConfig, &mut ChaCha8Rng)>,
) -> Result<Vec<f32>> {
    let map = PixelMap::new(images, normalize)?;
    let crops = draw_crops(indices, augment);
    let (h, w, c) = (images.height() as i32, images.width() as i32, map.channels);
    let mut out = Vec::with_capacity(indices.len() * images.image_len());
    for crop in crops.chunks_exact(4) {
        let [image, dy, dx, flip] = [crop[0], crop[1], crop[2], crop[3]];
        let img = images.image(image as usize);
        for ch in 0..c {
            let (mean, inv_std) = (map.mean[ch], map.inv_std[ch]);
            for y in 0..h {
                for x in 0..w {
                    let sy = y + dy;
                    let sx = if flip != 0 { w - 1 - x } else { x } + dx;
                    let inside = (0..h).contains(&sy) && (0..w).contains(&sx);
                    let value = if inside {
                        f32::from(img[((sy * w + sx) * c as i32 + ch as i32) as usize]) * map.scale
                    } else {
                        0.0
                    };
                    out.push((value - mean) * inv_std);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn set() -> ImageSet {
        let pixels: Vec<u8> = (0..2 * 3 * 3).map(|v| v as u8 * 10).collect();
        ImageSet::new("t", [3, 3, 1], pixels, vec![0, 1], None).unwrap()
    }

    #[test]
    fn plain_batch_scales_and_orders() {
        let b = image_batch(&set(), &[1, 0], None, None).unwrap();
        assert_eq!(b.len(), 18);
        assert!((b[0] - 90.0 / 255.0).abs() < 1e-6 && b[9] == 0.0);
    }

    #[test]
    fn crops_are_shifts_of_the_image_with_zero_fill() {
        let images = set();
        let config = AugmentConfig { pad: 1, flip: false, normalize: None };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut seen = std::collections::HashSet::new();
        let full: f32 = image_batch(&images, &[0], None, None).unwrap().iter().sum();
        for _ in 0..64 {
            let b =
                image_batch(&images, &[0], config.normalize.as_ref(), Some((&config, &mut rng)))
                    .unwrap();
            // Every output pixel is either zero fill or a pixel of image 0, and the sum of any
            // crop never exceeds the image's own.
            let total: f32 = b.iter().sum();
            assert!(total <= full + 1e-5);
            seen.insert(b.iter().map(|v| (v * 255.0).round() as u32).collect::<Vec<_>>());
        }
        // 3 x 3 offsets, all reached.
        assert_eq!(seen.len(), 9);
    }

    #[test]
    fn colour_batches_are_channels_first_and_normalised_per_channel() {
        // One 1 x 2 RGB image: pixel 0 is (255, 0, 51), pixel 1 is (0, 255, 102).
        let images =
            ImageSet::new("rgb", [1, 2, 3], vec![255, 0, 51, 0, 255, 102], vec![0], None).unwrap();
        let plain = image_batch(&images, &[0], None, None).unwrap();
        let want = [1.0, 0.0, 0.0, 1.0, 0.2, 0.4];
        assert!(plain.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6), "{plain:?}");
        let config = AugmentConfig {
            pad: 0,
            flip: true,
            normalize: Some(Normalize::new(vec![0.5, 0.0, 0.2], vec![0.5, 1.0, 0.1]).unwrap()),
        };
        // Mirrored or not: each plane's two values are its own, normalised by its own stats.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..8 {
            let mut b =
                image_batch(&images, &[0], config.normalize.as_ref(), Some((&config, &mut rng)))
                    .unwrap();
            for plane in b.chunks_exact_mut(2) {
                plane.sort_by(f32::total_cmp);
            }
            let want = [-1.0, 1.0, 0.0, 1.0, 0.0, 2.0];
            assert!(b.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6), "{b:?}");
        }
        let grey = AugmentConfig { normalize: Some(Normalize::imagenet()), ..config };
        let err = image_batch(&set(), &[0], grey.normalize.as_ref(), Some((&grey, &mut rng)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("t: images have 1 channel(s); the normalisation has 3"), "{err}");
    }

    #[test]
    fn normalisation_reads_and_writes_numbers_or_lists() {
        let one: Normalize = serde_json::from_str(r#"{"mean":0.13,"std":0.31}"#).unwrap();
        assert_eq!((one.mean(), one.std()), (&[0.13][..], &[0.31][..]));
        assert_eq!(serde_json::to_string(&one).unwrap(), r#"{"mean":0.13,"std":0.31}"#);
        let three = serde_json::to_string(&Normalize::imagenet()).unwrap();
        assert_eq!(three, r#"{"mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}"#);
        assert_eq!(serde_json::from_str::<Normalize>(&three).unwrap(), Normalize::imagenet());
        for bad in [r#"{"mean":[0.1,0.2],"std":[1,1]}"#, r#"{"mean":0.1,"std":0}"#] {
            let err = serde_json::from_str::<Normalize>(bad).unwrap_err().to_string();
            assert!(err.contains("normalisation needs"), "{err}");
        }
    }
}
