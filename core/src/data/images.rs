use std::path::Path;

use crate::data::FeatureSet;
use crate::data::idx::read_idx;
use crate::error::{NmlError, Result};
use crate::io::read_file;

/// Labelled greyscale images, one byte a pixel, row-major, all the same size.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    pub name: String,
    pub n: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
    pub num_classes: usize,
    /// The brightest value the format allows (255 for MNIST, 16 for the 8x8 digits).
    pub max_value: u8,
}

impl ImageSet {
    /// Pairs an IDX image file (N x H x W) with an IDX label file (N).
    pub fn from_idx(image_bytes: &[u8], image_name: &str, label_bytes: &[u8], label_name: &str) -> Result<Self> {
        let images = read_idx(image_bytes, image_name)?;
        let labels = read_idx(label_bytes, label_name)?;
        let &[n, height, width] = images.dims.as_slice() else {
            return Err(NmlError::format(
                image_name,
                format!("image files must be 3-D (N x H x W), found {:?}", images.dims),
            ));
        };
        if labels.dims != [n] {
            return Err(NmlError::format(
                label_name,
                format!("labels have shape {:?}; {image_name} holds {n} images", labels.dims),
            ));
        }
        if n == 0 || height == 0 || width == 0 {
            return Err(NmlError::format(image_name, "no images"));
        }
        let num_classes = usize::from(*labels.data.iter().max().expect("n > 0")) + 1;
        let max_value = images.data.iter().copied().max().unwrap_or(0).max(1);
        Ok(Self {
            name: image_name.to_string(),
            n,
            height,
            width,
            pixels: images.data,
            labels: labels.data.into_iter().map(u32::from).collect(),
            num_classes,
            // 8x8 digits top out at 16; anything brighter than that is an 8-bit image.
            max_value: if max_value <= 16 { 16 } else { 255 },
        })
    }

    pub fn load_idx(images: &Path, labels: &Path) -> Result<Self> {
        let (ib, lb) = (read_file(images)?, read_file(labels)?);
        Self::from_idx(&ib, &images.display().to_string(), &lb, &labels.display().to_string())
    }

    /// Pixels scaled to [0, 1] as D = H * W features: the simplest "feature extractor", useful
    /// as a baseline and for tests on real data.
    pub fn pixel_features(&self) -> Result<FeatureSet> {
        let scale = 1.0 / f32::from(self.max_value);
        let features = self.pixels.iter().map(|&p| f32::from(p) * scale).collect();
        let labels = self.labels.iter().map(|&l| i64::from(l)).collect();
        FeatureSet::new(self.name.clone(), features, self.height * self.width, labels, Some(self.num_classes))
    }
}
