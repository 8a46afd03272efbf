//! An image set on a device, packed four pixels to a word, with batches cut from it there.

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use rand::rngs::ChaCha8Rng;

use crate::data::{AugmentConfig, ImageSet, Normalize, PixelMap, draw_crops, image_batch};
use crate::error::Result;
use crate::kernels::{self, ImageLayout};

/// An image set uploaded to a device once, four u8 pixels to an i32 word, so each batch moves
/// only its crop parameters to the device. On the CPU backend the set stays as it is: the host
/// loop of [`image_batch`] is the fastest way there (measured in `nml bench`'s kernel section).
#[derive(Clone, Debug)]
pub struct DeviceImages {
    packed: Tensor<1, Int>,
    host: Option<ImageSet>,
    /// The set's first image alone: its sizes, channels, brightest value and name, which is
    /// what a batch's pixel map needs.
    shape: ImageSet,
}

impl DeviceImages {
    pub fn upload(images: &ImageSet, device: &Device) -> Self {
        let words = kernels::pack_bytes(images.pixels());
        let len = words.len();
        let device = device.clone().without_autodiff();
        Self {
            packed: Tensor::from_data(TensorData::new(words, [len]), (&device, DType::I32)),
            host: crate::device::is_host(&device).then(|| images.clone()),
            shape: images.subset(&[0]),
        }
    }

    /// The images at `indices` as a `[B, C, H, W]` tensor on the device the set lives on,
    /// normalised and augmented as [`image_batch`] does, to the same values.
    pub fn batch(
        &self,
        indices: &[usize],
        normalize: Option<&Normalize>,
        augment: Option<(&AugmentConfig, &mut ChaCha8Rng)>,
    ) -> Result<Tensor<4>> {
        let device = self.packed.device();
        let (h, w, c) = (self.shape.height(), self.shape.width(), self.shape.channels());
        if let Some(images) = &self.host {
            let pixels = image_batch(images, indices, normalize, augment)?;
            return Ok(Tensor::from_data(
                TensorData::new(pixels, [indices.len(), c, h, w]),
                &device,
            ));
        }
        let map = PixelMap::new(&self.shape, normalize)?;
        let crops = draw_crops(indices, [h, w], augment);
        let layout = ImageLayout { batch: indices.len(), height: h, width: w, map };
        let crops = Tensor::<1, Int>::from_data(
            TensorData::new(crops.clone(), [crops.len()]),
            (&device, DType::I32),
        );
        Ok(kernels::augment_images(self.packed.clone(), crops, layout))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::test_support::wgpu_or_skip;

    /// Images of an odd size, so crops reach every edge and words straddle images.
    fn images(channels: usize) -> ImageSet {
        let (n, h, w) = (5, 9, 7);
        let pixels = (0..n * h * w * channels).map(|i| ((i * 37) % 251) as u8).collect();
        ImageSet::new("t", [h, w, channels], pixels, vec![0; n], None).unwrap()
    }

    /// On WGPU the batch comes from nml's augmentation kernel; it equals the host path bit for
    /// bit, grey and colour, with and without augmentation and normalisation.
    #[test]
    fn device_batches_equal_the_host_path() {
        let Some(device) = wgpu_or_skip("device_batches_equal_the_host_path") else {
            return;
        };
        let normalize = [
            Normalize::new(vec![0.13], vec![0.31]).unwrap(),
            Normalize::new(vec![0.4, 0.5, 0.6], vec![0.2, 0.25, 0.3]).unwrap(),
        ];
        for (channels, normalize) in [1, 3].into_iter().zip(normalize) {
            let images = images(channels);
            let on_device = DeviceImages::upload(&images, &device);
            assert!(on_device.host.is_none());
            let shift = AugmentConfig {
                pad: 2,
                flip: true,
                normalize: Some(normalize),
                resized_crop: None,
            };
            let resized = AugmentConfig {
                pad: 0,
                resized_crop: Some(crate::data::ResizedCrop::default()),
                ..shift.clone()
            };
            let indices = [4, 0, 3, 3, 1];
            for (augment, config) in [(false, &shift), (true, &shift), (true, &resized)] {
                let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(5), ChaCha8Rng::seed_from_u64(5));
                let with = |rng| augment.then_some((config, rng));
                let normalize = augment.then_some(config.normalize.as_ref()).flatten();
                let batch = on_device.batch(&indices, normalize, with(&mut a)).unwrap();
                assert_eq!(batch.dims(), [5, channels, 9, 7]);
                let got: Vec<f32> = batch.into_data().try_to_vec::<f32>().unwrap();
                let want = image_batch(&images, &indices, normalize, with(&mut b)).unwrap();
                assert_eq!(got, want, "{channels} channel(s), augment {augment}");
            }
        }
    }
}
