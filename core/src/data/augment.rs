//! Augmentation of images on the host: seeded crops (shifts with zero fill, or torchvision's
//! random resized crops) and mirrors, and per-channel normalisation.

use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::ImageSet;
use crate::error::{NmlError, Result};

/// Standard augmentation for small images: zero-pad by `pad` pixels and crop back to the
/// original size at a random offset; or, for photos, torchvision's `RandomResizedCrop`
/// (`resized_crop`, with `pad = 0`); optionally mirror left-right (off for digits, whose mirror
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
    /// Absent and left out when unset, as `normalize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resized_crop: Option<ResizedCrop>,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { pad: 2, flip: false, normalize: None, resized_crop: None }
    }
}

impl AugmentConfig {
    pub fn validate(&self) -> Result<()> {
        match &self.resized_crop {
            Some(_) if self.pad > 0 => Err(NmlError::Invalid(
                "augment: a resized crop replaces the padded shift crop; set pad = 0 with it"
                    .into(),
            )),
            Some(crop) => crop.validate(),
            None => Ok(()),
        }
    }
}

/// torchvision's `RandomResizedCrop`: a box of a random share `scale` of the image's area and
/// a random aspect ratio (log-uniform in `ratio`), at a random place, resampled (bilinear) to
/// the image's size. Ten tries at a box that fits, then the centre crop torchvision falls back
/// to. Written `resized_crop = {}` for torchvision's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizedCrop {
    #[serde(default = "ResizedCrop::default_scale")]
    pub scale: [f64; 2],
    #[serde(default = "ResizedCrop::default_ratio")]
    pub ratio: [f64; 2],
}

impl Default for ResizedCrop {
    fn default() -> Self {
        Self { scale: Self::default_scale(), ratio: Self::default_ratio() }
    }
}

impl ResizedCrop {
    fn default_scale() -> [f64; 2] {
        [0.08, 1.0]
    }

    fn default_ratio() -> [f64; 2] {
        [3.0 / 4.0, 4.0 / 3.0]
    }

    fn validate(&self) -> Result<()> {
        let [s0, s1] = self.scale;
        let [r0, r1] = self.ratio;
        if !(0.0 < s0 && s0 <= s1 && s1 <= 1.0 && 0.0 < r0 && r0 <= r1 && r1.is_finite()) {
            return Err(NmlError::Invalid(format!(
                "augment.resized_crop needs 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1] (got scale {:?}, ratio {:?})",
                self.scale, self.ratio
            )));
        }
        Ok(())
    }

    /// The box `(top, left, height, width)` of one crop of an `h x w` image, drawn as
    /// torchvision's `RandomResizedCrop.get_params` draws it.
    fn draw(&self, h: usize, w: usize, rng: &mut ChaCha8Rng) -> [usize; 4] {
        let area = (h * w) as f64;
        let (log_r0, log_r1) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target = area * rng.random_range(self.scale[0]..=self.scale[1]);
            let aspect = rng.random_range(log_r0..=log_r1).exp();
            let cw = (target * aspect).sqrt().round() as usize;
            let ch = (target / aspect).sqrt().round() as usize;
            if 0 < cw && cw <= w && 0 < ch && ch <= h {
                let top = rng.random_range(0..=h - ch);
                let left = rng.random_range(0..=w - cw);
                return [top, left, ch, cw];
            }
        }
        let in_ratio = w as f64 / h as f64;
        let (ch, cw) = if in_ratio < self.ratio[0] {
            (((w as f64) / self.ratio[0]).round() as usize, w)
        } else if in_ratio > self.ratio[1] {
            (h, ((h as f64) * self.ratio[1]).round() as usize)
        } else {
            (h, w)
        };
        let (ch, cw) = (ch.clamp(1, h), cw.clamp(1, w));
        [(h - ch) / 2, (w - cw) / 2, ch, cw]
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
        if images.height().max(images.width()) > MAX_BATCH_SIDE {
            return Err(NmlError::format(
                images.name(),
                format!(
                    "images of {}x{} are larger than the {MAX_BATCH_SIDE} pixels a side a batch takes; resize them first (|resize=S)",
                    images.height(),
                    images.width()
                ),
            ));
        }
        Self::of_bytes(channels, images.max_value(), normalize, images.name())
    }

    /// The map of images with `channels` channels whose brightest value is `max_value`;
    /// `name` names them in the error when the normalisation has another number of channels.
    pub fn of_bytes(
        channels: usize,
        max_value: u8,
        normalize: Option<&Normalize>,
        name: &str,
    ) -> Result<Self> {
        let (mut mean, mut inv_std) = ([0.0; 3], [1.0; 3]);
        if let Some(n) = normalize {
            if n.mean.len() != 1 && n.mean.len() != channels {
                return Err(NmlError::format(
                    name,
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
        Ok(Self { channels, scale: 1.0 / f32::from(max_value), mean, inv_std })
    }
}

/// Integers per sample in a crop list: image index, top, left, height and width of the box
/// (top and left may be negative, and the box may reach past the image, where it reads zeros),
/// and the mirror flag.
pub const CROP_FIELDS: usize = 6;

/// The crop of each image at `indices` (images of `h x w`), [`CROP_FIELDS`] integers per sample,
/// drawn from `rng`; without `augment`, the images as they are.
pub fn draw_crops(
    indices: &[usize],
    [h, w]: [usize; 2],
    mut augment: Option<(&AugmentConfig, &mut ChaCha8Rng)>,
) -> Vec<i32> {
    let mut crops = Vec::with_capacity(indices.len() * CROP_FIELDS);
    for &i in indices {
        let crop = match &mut augment {
            None => [0, 0, h as i32, w as i32, 0],
            Some((config, rng)) => draw_crop([h, w], config, rng),
        };
        crops.push(i as i32);
        crops.extend(crop);
    }
    crops
}

/// One augmented crop of an `h x w` image, `[top, left, height, width, flip]` (the last
/// [`CROP_FIELDS`] - 1 fields of a crop list): a box drawn as `config` says, then the mirror.
pub fn draw_crop([h, w]: [usize; 2], config: &AugmentConfig, rng: &mut ChaCha8Rng) -> [i32; 5] {
    let pad = config.pad as i32;
    let [top, left, ch, cw] = match &config.resized_crop {
        Some(crop) => crop.draw(h, w, rng).map(|v| v as i32),
        None => {
            // Offset of the crop inside the padded image, relative to the original. Drawn as
            // usize, as nml always has, so seeded runs keep their crops.
            let dy = rng.random_range(0..=2 * config.pad) as i32 - pad;
            let dx = rng.random_range(0..=2 * config.pad) as i32 - pad;
            [dy, dx, h as i32, w as i32]
        }
    };
    let flip = config.flip && rng.random::<bool>();
    [top, left, ch, cw, i32::from(flip)]
}

/// Sub-pixel steps of the crop's sampling grid. Coordinates and bilinear weights are integers
/// in these units, and a sample is an exact integer (at most 255 x 2^16 < 2^24, so exact as an
/// f32 too), which makes the host, the WGSL kernel and Burn's integer ops agree to the bit.
pub const SUBPIXEL: i32 = 256;

/// The largest image side a batch takes: the crop arithmetic stays within i32 below it.
pub const MAX_BATCH_SIDE: usize = 2048;

/// Added before dividing by [`SUBPIXEL`], so integer division rounds down for the negative
/// coordinates of a shift crop as well (any coordinate above -4096 pixels).
pub const SUBPIXEL_OFFSET: i32 = 4096 * SUBPIXEL;

/// Where output pixel `o` of `out_len` samples the box `[start, start + len)`, in
/// [`SUBPIXEL`] units: half-pixel centres (`align_corners = false`), clamped to the box's first
/// and last pixel centres, as resizing the cropped box alone would.
pub fn crop_coordinate(o: i32, start: i32, len: i32, out_len: i32) -> i32 {
    let at = start * SUBPIXEL + ((2 * o + 1) * len * (SUBPIXEL / 2)) / out_len - SUBPIXEL / 2;
    at.clamp(start * SUBPIXEL, (start + len - 1) * SUBPIXEL)
}

/// Pixels of the images at `indices` as a row-major `[B, C, H, W]` buffer (channels first, as
/// convolutions take them), scaled to [0, 1] and normalised by `normalize`; cropped and flipped
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
    let crops = draw_crops(indices, [images.height(), images.width()], augment);
    let size = [images.height(), images.width()];
    let mut out = Vec::with_capacity(indices.len() * images.image_len());
    for crop in crops.chunks_exact(CROP_FIELDS) {
        let image = images.image(crop[0] as usize);
        let crop = std::array::from_fn(|k| crop[k + 1]);
        resample_crop(image, size, crop, size, &map, &mut out);
    }
    Ok(out)
}

/// Appends the `crop` (`[top, left, height, width, flip]`) of one image (`[h, w]` pixels of
/// `map.channels` bytes, row-major, channels innermost) to `out`, resampled (bilinear, in
/// [`SUBPIXEL`] steps) to `[out_h, out_w]` and mapped by `map`, channels first. Box pixels
/// outside the image read as zero.
pub fn resample_crop(
    image: &[u8],
    [h, w]: [usize; 2],
    [top, left, ch, cw, flip]: [i32; 5],
    [out_h, out_w]: [usize; 2],
    map: &PixelMap,
    out: &mut Vec<f32>,
) {
    let c = map.channels;
    // A sample is a pixel times SUBPIXEL^2; scaling by a power of two is exact.
    let scale = map.scale / (SUBPIXEL * SUBPIXEL) as f32;
    // Each output row (column) reads two image rows (columns) with integer weights. One outside
    // the image reads zero: its weight is zero, and it points at the first row (column) so
    // every read stays in bounds; the sums are integers, so this gives the same bits.
    let taps = |at: i32, len: usize, stride: usize| -> [(usize, i32); 2] {
        let at = at + SUBPIXEL_OFFSET;
        let (first, frac) = (at / SUBPIXEL - SUBPIXEL_OFFSET / SUBPIXEL, at % SUBPIXEL);
        let tap = |p: i32, weight: i32| match usize::try_from(p) {
            Ok(p) if p < len => (p * stride, weight),
            _ => (0, 0),
        };
        [tap(first, SUBPIXEL - frac), tap(first + 1, frac)]
    };
    let rows: Vec<[(usize, i32); 2]> = (0..out_h as i32)
        .map(|y| taps(crop_coordinate(y, top, ch, out_h as i32), h, w * c))
        .collect();
    let cols: Vec<[(usize, i32); 2]> = (0..out_w as i32)
        .map(|x| {
            let x = if flip != 0 { out_w as i32 - 1 - x } else { x };
            taps(crop_coordinate(x, left, cw, out_w as i32), w, c)
        })
        .collect();
    let plane = out_h * out_w;
    let start = out.len();
    out.resize(start + c * plane, 0.0);
    let out = &mut out[start..];
    for (y, [(r0, wy0), (r1, wy1)]) in rows.iter().copied().enumerate() {
        let (row0, row1) = (&image[r0..], &image[r1..]);
        for (x, [(x0, wx0), (x1, wx1)]) in cols.iter().copied().enumerate() {
            for channel in 0..c {
                let tap = |row: &[u8], at: usize| i32::from(row[at + channel]);
                let upper = tap(row0, x0) * wx0 + tap(row0, x1) * wx1;
                let lower = tap(row1, x0) * wx0 + tap(row1, x1) * wx1;
                let sample = upper * wy0 + lower * wy1;
                out[channel * plane + y * out_w + x] =
                    (sample as f32 * scale - map.mean[channel]) * map.inv_std[channel];
            }
        }
    }
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
        let config = AugmentConfig { pad: 1, ..AugmentConfig::default() };
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

    /// A box the size of the image at offset 0 is the image itself; a box of one pixel fills
    /// the output with that pixel; the drawn boxes follow torchvision's ranges.
    #[test]
    fn resized_crops_resample_their_box() {
        let pixels: Vec<u8> = (0..6 * 8).map(|v| (v * 5) as u8).collect();
        let images = ImageSet::new("g", [6, 8, 1], pixels, vec![0], None).unwrap();
        let plain = image_batch(&images, &[0], None, None).unwrap();
        let crop = ResizedCrop { scale: [1.0, 1.0], ratio: [8.0 / 6.0, 8.0 / 6.0] };
        let whole = AugmentConfig { pad: 0, resized_crop: Some(crop), ..AugmentConfig::default() };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(image_batch(&images, &[0], None, Some((&whole, &mut rng))).unwrap(), plain);
        // Box sampling by hand: top 2, left 3, 1 x 1 -> every output pixel is pixel (2, 3).
        assert_eq!(crop_coordinate(0, 2, 1, 6), 2 * SUBPIXEL);
        assert_eq!(crop_coordinate(5, 2, 1, 6), 2 * SUBPIXEL);
        // Half-pixel centres: output 0 of 4 over a box of 2 sits a quarter pixel in, clamped
        // to the box's first centre; output 1 at 0.25 of the way to the second.
        assert_eq!(crop_coordinate(0, 0, 2, 4), 0);
        assert_eq!(crop_coordinate(1, 0, 2, 4), SUBPIXEL / 4);
        let torchvision = ResizedCrop::default();
        for _ in 0..200 {
            let [top, left, h, w] = torchvision.draw(60, 80, &mut rng);
            assert!(top + h <= 60 && left + w <= 80 && h > 0 && w > 0);
            let share = (h * w) as f64 / 4800.0;
            assert!((0.07..=1.0).contains(&share), "{share}");
        }
        let bad = AugmentConfig { pad: 2, resized_crop: Some(torchvision), ..whole };
        assert!(bad.validate().unwrap_err().to_string().contains("set pad = 0"));
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
            resized_crop: None,
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
