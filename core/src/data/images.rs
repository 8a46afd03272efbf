use std::path::Path;

use crate::data::idx::read_idx;
use crate::data::npy_file;
use crate::data::{FeatureSet, FolderImage, ImageFolder};
use crate::error::{NmlError, Result};
use crate::io::read_file;

/// Labelled images, grey (one channel) or colour (three, RGB), one byte a sample, all the same
/// size. Pixels are stored as numpy and PIL hold them: image after image, row-major, the
/// channels of a pixel side by side (N x H x W x C). Built only through checked constructors:
/// every image is there, every label names a class.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    name: String,
    n: usize,
    height: usize,
    width: usize,
    channels: usize,
    pixels: Vec<u8>,
    labels: Vec<u32>,
    num_classes: usize,
    max_value: u8,
    /// Files of the source left out because they did not decode (only when asked for; see
    /// [`BadImages`]), each as `path: reason`.
    skipped: Vec<String>,
    /// The name of each class, where the source has them (a folder's subfolders); else empty.
    class_names: Vec<String>,
}

/// What reading a folder does with a file in a class folder that is not a decodable PNG or
/// JPEG (a truncated download, a stray text file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BadImages {
    /// Stop with an error naming the file.
    #[default]
    Stop,
    /// Leave it out and record it (see [`ImageSet::skipped`]).
    Skip,
}

/// Labels as class indices; negative or absurdly large ones are errors naming the index.
fn checked_labels(values: &[i64], name: &str) -> Result<Vec<u32>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            u32::try_from(v).ok().filter(|&v| v < 1 << 20).ok_or_else(|| {
                NmlError::format(name, format!("label {v} at index {i} is not a class index"))
            })
        })
        .collect()
}

/// `[N, H, W]` or `[N, H, W, C]` with C = 1 or 3, as `(n, [height, width, channels])`.
fn image_dims(dims: &[usize], name: &str) -> Result<(usize, [usize; 3])> {
    match *dims {
        [n, h, w] => Ok((n, [h, w, 1])),
        [n, h, w, c @ (1 | 3)] => Ok((n, [h, w, c])),
        _ => Err(NmlError::format(
            name,
            format!("images must be N x H x W or N x H x W x C with C = 1 or 3, found {dims:?}"),
        )),
    }
}

/// Rec. 709 luma in the integer form the `image` crate uses, so a colour folder made grey here
/// and a grey conversion by `image` agree.
fn luma(rgb: &[u8]) -> u8 {
    let [r, g, b] = [rgb[0], rgb[1], rgb[2]].map(u32::from);
    ((2126 * r + 7152 * g + 722 * b) / 10_000) as u8
}

impl ImageSet {
    /// Pairs an IDX image file (N x H x W, or N x H x W x C) with an IDX label file (N).
    pub fn from_idx(
        image_bytes: &[u8],
        image_name: &str,
        label_bytes: &[u8],
        label_name: &str,
    ) -> Result<Self> {
        let images = read_idx(image_bytes, image_name)?;
        let labels = read_idx(label_bytes, label_name)?;
        let (n, shape) = image_dims(&images.dims, image_name)?;
        if labels.dims != [n] {
            return Err(NmlError::format(
                label_name,
                format!("labels have shape {:?}; {image_name} holds {n} images", labels.dims),
            ));
        }
        let labels = labels.data.into_iter().map(u32::from).collect();
        Self::new(image_name, shape, images.data, labels, None)
    }

    /// Pairs a `.npy` image array (N x H x W grey, or N x H x W x C with C = 1 or 3; uint8 or
    /// integers 0..255, or floats in [0, 1] or [0, 255]) with a `.npy` label array (N; int64,
    /// int32 or uint8).
    pub fn from_npy(
        image_bytes: &[u8],
        image_name: &str,
        label_bytes: &[u8],
        label_name: &str,
    ) -> Result<Self> {
        let (dims, pixels) = match npy_file::read_i64(image_bytes, image_name) {
            Ok(ints) => {
                if let Some((i, v)) =
                    ints.data.iter().enumerate().find(|(_, v)| !(0..=255).contains(*v))
                {
                    return Err(NmlError::format(
                        image_name,
                        format!("pixel {v} at index {i} is outside 0..255"),
                    ));
                }
                (ints.shape, ints.data.iter().map(|&v| v as u8).collect::<Vec<u8>>())
            }
            Err(int_error) => {
                let floats = npy_file::read_f32(image_bytes, image_name).map_err(|_| int_error)?;
                if let Some(i) =
                    floats.data.iter().position(|v| !(v.is_finite() && (0.0..=255.0).contains(v)))
                {
                    return Err(NmlError::format(
                        image_name,
                        format!(
                            "pixel {} at index {i} is not a number in [0, 1] or [0, 255]",
                            floats.data[i]
                        ),
                    ));
                }
                let max = floats.data.iter().copied().fold(0.0f32, f32::max);
                let scale = if max <= 1.0 { 255.0 } else { 1.0 };
                (floats.shape, floats.data.iter().map(|v| (v * scale).round() as u8).collect())
            }
        };
        let labels = npy_file::read_i64(label_bytes, label_name)?;
        let (n, shape) = image_dims(&dims, image_name)?;
        if labels.shape != [n] {
            return Err(NmlError::format(
                label_name,
                format!("labels have shape {:?}; {image_name} holds {n} images", labels.shape),
            ));
        }
        let labels = checked_labels(&labels.data, label_name)?;
        Self::new(image_name, shape, pixels, labels, None)
    }

    /// The images of a class folder (see [`ImageFolder`]: torchvision's `ImageFolder`
    /// layout), decoded and held in memory. `per_image` is applied to each image as it is decoded (the
    /// evaluation transform, so photos of many sizes are cropped before they are stacked);
    /// images it leaves at different sizes are resampled to the size of the first one. The set
    /// is colour when any image is, else grey. A file that does not decode stops the read with
    /// its path named, or with [`BadImages::Skip`] is left out and recorded.
    pub fn read_folder(
        folder: &ImageFolder,
        bad: BadImages,
        per_image: &dyn Fn(ImageSet) -> Result<ImageSet>,
    ) -> Result<Self> {
        let (mut pixels, mut labels, mut size, mut any_colour) =
            (Vec::new(), Vec::new(), None, false);
        let mut skipped = Vec::new();
        for (i, &label) in folder.labels().iter().enumerate() {
            let one = match folder.read(i, bad)? {
                FolderImage::Image(image) => per_image(image)?,
                FolderImage::Skipped(reason) => {
                    skipped.push(reason);
                    continue;
                }
            };
            any_colour |= one.channels == 3;
            // Held as RGB until the whole folder is seen; a grey image's three channels are
            // equal, so keeping one of them later gives its grey values back.
            let [height, width] = *size.get_or_insert([one.height, one.width]);
            pixels.extend(one.with_channels(3)?.resized(height, width).pixels);
            labels.push(label);
        }
        let Some([height, width]) = size else {
            return Err(NmlError::format(
                folder.name(),
                "no PNG or JPEG images in the class subfolders",
            ));
        };
        if !any_colour {
            pixels = pixels.iter().step_by(3).copied().collect();
        }
        let channels = if any_colour { 3 } else { 1 };
        let mut set = Self::new(
            folder.name(),
            [height, width, channels],
            pixels,
            labels,
            Some(folder.num_classes()),
        )?;
        set.skipped = skipped;
        set.class_names = folder.class_names().to_vec();
        Ok(set)
    }

    /// Files of the source left out as unreadable, each as `path: reason` (empty unless the
    /// source asked to skip them).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The name of each class (a folder's subfolder names, in label order), or empty where the
    /// source has none.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// One PNG or JPEG image (label 0), grey when the file is (grey or grey with alpha), else
    /// RGB (alpha dropped); `name` names the file in the error when it does not decode.
    pub fn decode(bytes: &[u8], name: &str) -> Result<Self> {
        Self::decoded(bytes)
            .map_err(|reason| NmlError::format(name, reason))
            .and_then(|image| Self::from_decoded(image, name))
    }

    /// The image in `bytes`, or why it is not one nml reads.
    pub(super) fn decoded(bytes: &[u8]) -> std::result::Result<image::DynamicImage, String> {
        image::load_from_memory(bytes).map_err(|e| format!("cannot decode the image: {e}"))
    }

    pub(super) fn from_decoded(decoded: image::DynamicImage, name: &str) -> Result<Self> {
        let (w, h) = (decoded.width() as usize, decoded.height() as usize);
        // `into_*` keeps the decoder's buffer when it is already 8-bit RGB or grey.
        let (channels, pixels) = if decoded.color().has_color() {
            (3, decoded.into_rgb8().into_raw())
        } else {
            (1, decoded.into_luma8().into_raw())
        };
        Self::new(name, [h, w, channels], pixels, vec![0], None)
    }

    /// Images of `[height, width, channels]` (`pixels` holds them one after another, row-major,
    /// channels innermost; 1 or 3 channels) with one label each. `num_classes` defaults to the
    /// largest label plus one; the brightest value the format allows is 16 when no pixel
    /// exceeds it (the 8x8 digits), else 255.
    pub fn new(
        name: impl Into<String>,
        [height, width, channels]: [usize; 3],
        pixels: Vec<u8>,
        labels: Vec<u32>,
        num_classes: Option<usize>,
    ) -> Result<Self> {
        let name = name.into();
        let n = labels.len();
        if n == 0 || height == 0 || width == 0 {
            return Err(NmlError::format(&name, "no images"));
        }
        if !matches!(channels, 1 | 3) {
            return Err(NmlError::format(
                &name,
                format!("images have 1 (grey) or 3 (RGB) channels, not {channels}"),
            ));
        }
        let expected = n.checked_mul(height * width).and_then(|v| v.checked_mul(channels));
        if expected != Some(pixels.len()) {
            return Err(NmlError::format(
                &name,
                format!(
                    "{} values do not make {n} images of {height}x{width}x{channels}",
                    pixels.len()
                ),
            ));
        }
        let largest = *labels.iter().max().expect("n > 0") as usize;
        let num_classes = num_classes.unwrap_or(largest + 1);
        if let Some(i) = labels.iter().position(|&l| l as usize >= num_classes) {
            return Err(NmlError::format(
                &name,
                format!(
                    "label {} at index {i} is out of range for {num_classes} classes",
                    labels[i]
                ),
            ));
        }
        let brightest = pixels.iter().copied().max().unwrap_or(0);
        Ok(Self {
            name,
            n,
            height,
            width,
            channels,
            pixels,
            labels,
            num_classes,
            // 8x8 digits top out at 16; anything brighter than that is an 8-bit image.
            max_value: if brightest <= 16 { 16 } else { 255 },
            skipped: Vec::new(),
            class_names: Vec::new(),
        })
    }

    /// Where the set came from (a path or a name), used in every message about it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of images.
    pub fn n(&self) -> usize {
        self.n
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// 1 (grey) or 3 (RGB).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Bytes of one image: height x width x channels.
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// All pixels, image after image, row-major, channels innermost.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.image_len();
        &self.pixels[i * size..(i + 1) * size]
    }

    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The brightest value the format allows (255 for MNIST, 16 for the 8x8 digits).
    pub fn max_value(&self) -> u8 {
        self.max_value
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The same images with other labels (e.g. noisy ones), one per image, within the classes.
    pub fn with_labels(mut self, labels: Vec<u32>) -> Result<Self> {
        if labels.len() != self.n {
            return Err(NmlError::format(
                &self.name,
                format!("{} labels for {} images", labels.len(), self.n),
            ));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= self.num_classes) {
            return Err(NmlError::format(
                &self.name,
                format!(
                    "label {} at index {i} is out of range for {} classes",
                    labels[i], self.num_classes
                ),
            ));
        }
        self.labels = labels;
        Ok(self)
    }

    /// Reads an IDX image file (N x H x W, gzip-compressed or not) and its IDX label file.
    pub fn read_idx(images: &Path, labels: &Path) -> Result<Self> {
        let (ib, lb) = (read_file(images)?, read_file(labels)?);
        Self::from_idx(&ib, &images.display().to_string(), &lb, &labels.display().to_string())
    }

    /// Reads a `.npy` image array and its `.npy` labels (see [`ImageSet::from_npy`]).
    pub fn read_npy(images: &Path, labels: &Path) -> Result<Self> {
        let (ib, lb) = (read_file(images)?, read_file(labels)?);
        Self::from_npy(&ib, &images.display().to_string(), &lb, &labels.display().to_string())
    }

    /// The images resampled to `height x width` by bilinear interpolation at pixel centres
    /// (halving a side averages 2x2 blocks exactly).
    pub fn resized(&self, height: usize, width: usize) -> ImageSet {
        if (height, width) == (self.height, self.width) {
            return self.clone();
        }
        let (sh, sw, c) = (self.height, self.width, self.channels);
        let src_coord = |dst: usize, dst_len: usize, src_len: usize| -> (usize, usize, f32) {
            let x = ((dst as f32 + 0.5) * src_len as f32 / dst_len as f32 - 0.5)
                .clamp(0.0, (src_len - 1) as f32);
            let lo = x.floor() as usize;
            (lo, (lo + 1).min(src_len - 1), x - lo as f32)
        };
        let rows: Vec<_> = (0..height).map(|y| src_coord(y, height, sh)).collect();
        let cols: Vec<_> = (0..width).map(|x| src_coord(x, width, sw)).collect();
        let mut pixels = Vec::with_capacity(self.n * height * width * c);
        for img in self.pixels.chunks_exact(sh * sw * c) {
            for &(y0, y1, fy) in &rows {
                for &(x0, x1, fx) in &cols {
                    for ch in 0..c {
                        let p = |y: usize, x: usize| f32::from(img[(y * sw + x) * c + ch]);
                        let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
                        let bottom = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
                        pixels.push((top * (1.0 - fy) + bottom * fy).round() as u8);
                    }
                }
            }
        }
        ImageSet {
            name: format!("{} ({height}x{width})", self.name),
            height,
            width,
            pixels,
            ..self.clone()
        }
    }

    /// The images with their shorter side resampled to `side` (bilinear, as
    /// [`ImageSet::resized`]) and the longer side in proportion, rounded down as torchvision's
    /// `Resize(side)` does: the first half of the evaluation transform. The sizes are
    /// torchvision's; the pixels are not where it shrinks, since it (and PIL) antialias there
    /// and this plain bilinear does not.
    pub fn resized_shorter_side(&self, side: usize) -> ImageSet {
        let (h, w) = (self.height, self.width);
        let (height, width) = if h <= w { (side, side * w / h) } else { (side * h / w, side) };
        self.resized(height, width.max(1))
    }

    /// The central `size x size` crop of every image, placed as torchvision's `CenterCrop`
    /// places it (the offset `(H - size) / 2` rounded half to even): the second half of the
    /// evaluation transform. A crop larger than the images is an error.
    pub fn center_cropped(&self, size: usize) -> Result<ImageSet> {
        let (h, w, c) = (self.height, self.width, self.channels);
        if size == 0 || size > h || size > w {
            return Err(NmlError::format(
                &self.name,
                format!("a {size} x {size} centre crop does not fit images of {h}x{w}"),
            ));
        }
        // Python's round(): an offset of k + 0.5 goes to the even one of k and k + 1.
        let offset = |extra: usize| {
            let half = extra / 2;
            if extra % 2 == 1 && half % 2 == 1 { half + 1 } else { half }
        };
        let (top, left) = (offset(h - size), offset(w - size));
        let mut pixels = Vec::with_capacity(self.n * size * size * c);
        for img in self.pixels.chunks_exact(self.image_len()) {
            for y in top..top + size {
                let row = (y * w + left) * c;
                pixels.extend_from_slice(&img[row..row + size * c]);
            }
        }
        Ok(ImageSet { height: size, width: size, pixels, ..self.clone() })
    }

    /// Each image shrunk or grown to `inner x inner` and centred on an `outer x outer` black
    /// canvas: puts digits that fill their frame (the 8x8 set) into MNIST's geometry, where a
    /// 20-pixel digit sits in a 28-pixel frame.
    pub fn framed(&self, inner: usize, outer: usize) -> Result<ImageSet> {
        if inner == 0 || inner > outer {
            return Err(NmlError::Invalid(format!(
                "frame needs 0 < inner <= outer, got {inner} in {outer}"
            )));
        }
        let small = self.resized(inner, inner);
        let offset = (outer - inner) / 2;
        let c = self.channels;
        let mut pixels = vec![0u8; self.n * outer * outer * c];
        for (img, canvas) in small
            .pixels
            .chunks_exact(inner * inner * c)
            .zip(pixels.chunks_exact_mut(outer * outer * c))
        {
            for (y, row) in img.chunks_exact(inner * c).enumerate() {
                let start = ((y + offset) * outer + offset) * c;
                canvas[start..start + inner * c].copy_from_slice(row);
            }
        }
        Ok(ImageSet {
            name: format!("{} (framed {inner} in {outer})", self.name),
            height: outer,
            width: outer,
            pixels,
            ..small
        })
    }

    /// Each image rotated by `degrees` (counter-clockwise) about its centre, bilinear, with black
    /// fill: the rotated-digits shift.
    pub fn rotated(&self, degrees: f64) -> ImageSet {
        let (h, w, c) = (self.height, self.width, self.channels);
        let (sin, cos) = degrees.to_radians().sin_cos();
        let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
        let mut pixels = Vec::with_capacity(self.pixels.len());
        for img in self.pixels.chunks_exact(h * w * c) {
            let at = |y: isize, x: isize, ch: usize| -> f64 {
                if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
                    f64::from(img[(y as usize * w + x as usize) * c + ch])
                } else {
                    0.0
                }
            };
            for y in 0..h {
                for x in 0..w {
                    // Inverse map: where in the source this output pixel comes from.
                    let (dy, dx) = (y as f64 - cy, x as f64 - cx);
                    let sy = cy + dy * cos + dx * sin;
                    let sx = cx - dy * sin + dx * cos;
                    let (y0, x0) = (sy.floor(), sx.floor());
                    let (fy, fx) = (sy - y0, sx - x0);
                    let (y0, x0) = (y0 as isize, x0 as isize);
                    for ch in 0..c {
                        let v = at(y0, x0, ch) * (1.0 - fy) * (1.0 - fx)
                            + at(y0, x0 + 1, ch) * (1.0 - fy) * fx
                            + at(y0 + 1, x0, ch) * fy * (1.0 - fx)
                            + at(y0 + 1, x0 + 1, ch) * fy * fx;
                        pixels.push(v.round().clamp(0.0, 255.0) as u8);
                    }
                }
            }
        }
        ImageSet { name: format!("{} (rotated {degrees})", self.name), pixels, ..self.clone() }
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let size = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * size);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * size..(i + 1) * size]);
        }
        ImageSet {
            name: self.name.clone(),
            n: indices.len(),
            height: self.height,
            width: self.width,
            channels: self.channels,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            num_classes: self.num_classes,
            max_value: self.max_value,
            skipped: self.skipped.clone(),
            class_names: self.class_names.clone(),
        }
    }

    /// The same images with `channels` channels: grey repeated over three for a colour model,
    /// or colour made grey (Rec. 709 luma, as the `image` crate computes it). Unchanged when
    /// they already have that many.
    pub fn with_channels(&self, channels: usize) -> Result<ImageSet> {
        let pixels = match (self.channels, channels) {
            (from, to) if from == to => return Ok(self.clone()),
            (1, 3) => self.pixels.iter().flat_map(|&p| [p, p, p]).collect(),
            (3, 1) => self.pixels.chunks_exact(3).map(luma).collect(),
            (_, to) => {
                return Err(NmlError::format(
                    &self.name,
                    format!("images have 1 (grey) or 3 (RGB) channels, not {to}"),
                ));
            }
        };
        // Luma never exceeds the brightest channel, so the format's range stays as it was.
        Ok(ImageSet { channels, pixels, ..self.clone() })
    }

    /// Pixels scaled to [0, 1] as D = H * W * C features (channels innermost): the simplest
    /// "feature extractor", useful as a baseline and for tests on real data.
    pub fn pixel_features(&self) -> Result<FeatureSet> {
        let scale = 1.0 / f32::from(self.max_value);
        let features = self.pixels.iter().map(|&p| f32::from(p) * scale).collect();
        let labels = self.labels.iter().map(|&l| i64::from(l)).collect();
        FeatureSet::new(
            self.name.clone(),
            features,
            self.image_len(),
            labels,
            Some(self.num_classes),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(height: usize, width: usize, pixels: Vec<u8>) -> ImageSet {
        ImageSet {
            name: "t".into(),
            n: 1,
            height,
            width,
            channels: 1,
            pixels,
            labels: vec![0],
            num_classes: 1,
            max_value: 255,
            skipped: Vec::new(),
            class_names: Vec::new(),
        }
    }

    #[test]
    fn halving_averages_blocks() {
        let img = one(2, 4, vec![0, 100, 10, 30, 200, 100, 50, 70]);
        assert_eq!(img.resized(1, 2).pixels, vec![100, 40]);
    }

    #[test]
    fn constant_images_stay_constant_and_shapes_follow() {
        let img = one(8, 8, vec![9; 64]);
        let up = img.resized(14, 14);
        assert_eq!((up.height, up.width, up.pixels.len()), (14, 14, 196));
        assert!(up.pixels.iter().all(|&p| p == 9));
    }

    #[test]
    fn framing_centres_the_resized_image() {
        let img = one(2, 2, vec![200; 4]).framed(2, 6).unwrap();
        assert_eq!((img.height, img.width), (6, 6));
        let lit: Vec<usize> =
            img.pixels.iter().enumerate().filter(|(_, p)| **p > 0).map(|(i, _)| i).collect();
        assert_eq!(lit, vec![14, 15, 20, 21]);
        assert!(one(2, 2, vec![0; 4]).framed(7, 6).is_err());
    }

    #[test]
    fn rotation_by_quarter_turns_permutes_pixels() {
        let img = one(3, 3, (1..=9).collect());
        let quarter = img.rotated(90.0);
        // Counter-clockwise: the top row becomes the left column, read upwards.
        assert_eq!(quarter.pixels, vec![3, 6, 9, 2, 5, 8, 1, 4, 7]);
        assert_eq!(img.rotated(360.0).pixels, img.pixels);
    }

    #[test]
    fn npy_images_round_trip_and_bad_pixels_are_named() {
        let pixels: Vec<u8> = (0..2 * 3 * 4).map(|v| v as u8 * 9).collect();
        let images = npy_file::write_u8(&[2, 3, 4], &pixels);
        let labels = npy_file::write_i64(&[2], &[1, 0]);
        let set = ImageSet::from_npy(&images, "i.npy", &labels, "l.npy").unwrap();
        assert_eq!((set.n, set.height, set.width, set.num_classes), (2, 3, 4, 2));
        assert_eq!((set.pixels.clone(), set.labels.clone()), (pixels, vec![1, 0]));
        let floats: Vec<f32> = (0..24).map(|v| v as f32 / 23.0).collect();
        let from_floats = ImageSet::from_npy(
            &npy_file::write_f32(&[2, 3, 4], &floats),
            "f.npy",
            &labels,
            "l.npy",
        )
        .unwrap();
        assert_eq!(from_floats.pixels[23], 255);
        let bad = npy_file::write_f32(&[2, 3, 4], &[f32::NAN; 24]);
        let err = ImageSet::from_npy(&bad, "bad.npy", &labels, "l.npy").unwrap_err().to_string();
        assert!(err.contains("bad.npy") && err.contains("index 0"), "{err}");
        let err =
            ImageSet::from_npy(&images, "i.npy", &npy_file::write_i64(&[3], &[0, 1, 2]), "l.npy")
                .unwrap_err()
                .to_string();
        assert!(err.contains("l.npy: labels have shape [3]"), "{err}");
    }

    #[test]
    fn image_folders_give_one_class_per_subfolder() {
        let dir = tempfile::tempdir().unwrap();
        for (class, value) in [("cat", 10u8), ("dog", 200)] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for k in 0..2 {
                let img = image::GrayImage::from_pixel(6, 4, image::Luma([value + k]));
                img.save(dir.path().join(class).join(format!("{k}.png"))).unwrap();
            }
        }
        let read = |bad| ImageSet::read_folder(&ImageFolder::scan(dir.path()).unwrap(), bad, &Ok);
        let grey = read(BadImages::Stop).unwrap();
        assert_eq!((grey.n, grey.height, grey.width, grey.channels), (4, 4, 6, 1));
        assert_eq!((grey.labels.clone(), grey.num_classes), (vec![0, 0, 1, 1], 2));
        assert_eq!(grey.class_names(), ["cat", "dog"]);
        assert_eq!(grey.pixels[0], 10);

        // One RGB JPEG of another size makes the set colour: the grey images are repeated over
        // the channels, the JPEG is resampled to the first image's size.
        image::RgbImage::from_pixel(12, 8, image::Rgb([250, 20, 120]))
            .save(dir.path().join("dog/2.jpg"))
            .unwrap();
        let colour = read(BadImages::Stop).unwrap();
        assert_eq!((colour.n, colour.channels, colour.image_len()), (5, 3, 72));
        assert_eq!(colour.with_channels(1).unwrap().pixels[..96], grey.pixels[..]);
        assert_eq!(&colour.image(0)[..3], &[10, 10, 10]);
        let jpeg = colour.image(4);
        // JPEG is lossy and subsamples chroma: near the colour, not equal to it.
        for (got, want) in jpeg[..3].iter().zip([250u8, 20, 120]) {
            assert!(got.abs_diff(want) <= 12, "{:?}", &jpeg[..3]);
        }

        // A broken image and a stray file stop the read by name, or are left out and counted.
        std::fs::write(dir.path().join("cat/broken.png"), b"\x89PNG not really").unwrap();
        std::fs::write(dir.path().join("dog/notes.txt"), "not an image").unwrap();
        let err = read(BadImages::Stop).unwrap_err().to_string();
        assert!(err.contains("broken.png") && err.contains("cannot decode"), "{err}");
        assert!(err.contains("skip-bad"), "{err}");
        let skipping = read(BadImages::Skip).unwrap();
        assert_eq!(skipping.pixels, colour.pixels);
        assert_eq!(skipping.skipped().len(), 2, "{:?}", skipping.skipped());
        assert!(skipping.skipped()[0].contains("broken.png"), "{:?}", skipping.skipped());
        assert!(skipping.skipped()[1].contains("notes.txt"), "{:?}", skipping.skipped());
        assert!(colour.skipped().is_empty());

        // A transform for each image as it is read: a centre crop of the 12x8 JPEG keeps its
        // middle instead of squeezing the whole photo into the first image's size.
        let cropped = ImageSet::read_folder(
            &ImageFolder::scan(dir.path()).unwrap(),
            BadImages::Skip,
            &|one: ImageSet| one.center_cropped(4),
        )
        .unwrap();
        assert_eq!((cropped.n, cropped.height, cropped.width), (5, 4, 4));
        let empty = tempfile::tempdir().unwrap();
        assert!(
            ImageFolder::scan(empty.path())
                .unwrap_err()
                .to_string()
                .contains("no class subfolders")
        );
    }

    /// A 3-channel image whose channels are three different grey images.
    fn stacked(h: usize, w: usize) -> (ImageSet, [ImageSet; 3]) {
        let planes: [Vec<u8>; 3] =
            std::array::from_fn(|c| (0..h * w).map(|i| ((i * 7 + c * 50) % 256) as u8).collect());
        let pixels = (0..h * w).flat_map(|i| planes.clone().map(|p| p[i])).collect();
        let colour = ImageSet::new("rgb", [h, w, 3], pixels, vec![0], None).unwrap();
        (colour, planes.map(|p| ImageSet::new("grey", [h, w, 1], p, vec![0], None).unwrap()))
    }

    fn channel(set: &ImageSet, c: usize) -> Vec<u8> {
        set.pixels.iter().skip(c).step_by(3).copied().collect()
    }

    #[test]
    fn colour_transforms_act_on_each_channel_alone() {
        let (colour, planes) = stacked(5, 7);
        for (c, plane) in planes.iter().enumerate() {
            assert_eq!(channel(&colour.resized(3, 9), c), plane.resized(3, 9).pixels);
            assert_eq!(channel(&colour.rotated(30.0), c), plane.rotated(30.0).pixels);
            assert_eq!(
                channel(&colour.framed(4, 8).unwrap(), c),
                plane.framed(4, 8).unwrap().pixels
            );
        }
        let features = colour.pixel_features().unwrap();
        assert_eq!(features.d(), 5 * 7 * 3);
    }

    #[test]
    fn evaluation_transform_resizes_the_shorter_side_and_crops_the_centre() {
        // 4 x 6 with value 10 * row + column, so crops show where they were taken.
        let pixels: Vec<u8> = (0..4).flat_map(|y| (0..6).map(move |x| 10 * y + x)).collect();
        let set = ImageSet::new("t", [4, 6, 1], pixels, vec![0], None).unwrap();
        // Identity when the sizes already match.
        assert_eq!(set.resized_shorter_side(4).pixels, set.pixels);
        let tall = ImageSet::new("t", [6, 4, 1], vec![0; 24], vec![0], None).unwrap();
        assert_eq!(
            (tall.resized_shorter_side(2).height, tall.resized_shorter_side(2).width),
            (3, 2)
        );
        assert_eq!((set.resized_shorter_side(3).height, set.resized_shorter_side(3).width), (3, 4));
        // Offsets (4 - 3) / 2 = 0.5 and (6 - 3) / 2 = 1.5 round half to even: 0 and 2.
        assert_eq!(set.center_cropped(3).unwrap().pixels, vec![2, 3, 4, 12, 13, 14, 22, 23, 24]);
        // (4 - 1) / 2 = 1.5 -> 2 and (6 - 1) / 2 = 2.5 -> 2.
        assert_eq!(set.center_cropped(1).unwrap().pixels, vec![22]);
        assert!(set.center_cropped(5).is_err() && set.center_cropped(0).is_err());
    }

    #[test]
    fn channel_conversions_repeat_grey_and_take_luma() {
        let (colour, planes) = stacked(2, 3);
        let grey = planes[0].with_channels(3).unwrap();
        assert_eq!(grey.channels, 3);
        assert!(grey.pixels.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        assert_eq!(grey.with_channels(1).unwrap().pixels, planes[0].pixels);
        // The image crate's own conversion of the same pixels.
        let rgb = image::RgbImage::from_raw(3, 2, colour.pixels.clone()).unwrap();
        let luma = image::DynamicImage::ImageRgb8(rgb).to_luma8().into_raw();
        assert_eq!(colour.with_channels(1).unwrap().pixels, luma);
        assert!(colour.with_channels(2).is_err());
        let err = ImageSet::new("x", [2, 2, 4], vec![0; 16], vec![0], None).unwrap_err();
        assert!(err.to_string().contains("1 (grey) or 3 (RGB) channels, not 4"), "{err}");
    }

    #[test]
    fn npy_colour_images_keep_their_channels() {
        let pixels: Vec<u8> = (0..2 * 2 * 3 * 3).map(|v| v as u8).collect();
        let images = npy_file::write_u8(&[2, 2, 3, 3], &pixels);
        let labels = npy_file::write_i64(&[2], &[0, 1]);
        let set = ImageSet::from_npy(&images, "i.npy", &labels, "l.npy").unwrap();
        assert_eq!((set.n, set.height, set.width, set.channels), (2, 2, 3, 3));
        assert_eq!(set.image(1), &pixels[18..]);
        let four = npy_file::write_u8(&[1, 2, 2, 4], &[0; 16]);
        let one = npy_file::write_i64(&[1], &[0]);
        let err = ImageSet::from_npy(&four, "four.npy", &one, "l.npy").unwrap_err().to_string();
        assert!(err.contains("four.npy") && err.contains("C = 1 or 3"), "{err}");
    }

    #[test]
    fn mismatched_idx_pair_is_refused() {
        let images = [0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 5, 6];
        let labels = [0u8, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3];
        let err = ImageSet::from_idx(&images, "i", &labels, "l").unwrap_err().to_string();
        assert!(err.contains("l: labels have shape [3]; i holds 2 images"), "{err}");
    }
}
