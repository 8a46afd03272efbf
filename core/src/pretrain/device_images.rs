//! An image set on a device, packed four pixels to a word, with batches cut from it there.

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use rand::rngs::ChaCha8Rng;

use crate::data::{AugmentConfig, ImageSet, draw_crops, image_batch};
use crate::kernels::{self, ImageLayout};

/// An image set uploaded to a device once, four u8 pixels to an i32 word, so each batch moves
/// only its crop parameters to the device. On the CPU backend the set stays as it is: the host
/// loop of [`image_batch`] is the fastest way there (measured in `nml bench`'s kernel section).
#[derive(Clone, Debug)]
pub struct DeviceImages {
    packed: Tensor<1, Int>,
    host: Option<ImageSet>,
    height: usize,
    width: usize,
    /// 1 / the set's largest pixel value.
    scale: f32,
}

impl DeviceImages {
    pub fn upload(images: &ImageSet, device: &Device) -> Self {
        let words = kernels::pack_bytes(images.pixels());
        let len = words.len();
        let device = device.clone().without_autodiff();
        Self {
            packed: Tensor::from_data(TensorData::new(words, [len]), (&device, DType::I32)),
            host: crate::device::is_host(&device).then(|| images.clone()),
            height: images.height(),
            width: images.width(),
            scale: 1.0 / f32::from(images.max_value()),
        }
    }

    /// The images at `indices` as a `[B, 1, H, W]` tensor on the device the set lives on,
    /// augmented when `augment` is given: the same values as [`image_batch`].
    pub fn batch(
        &self,
        indices: &[usize],
        augment: Option<(&AugmentConfig, &mut ChaCha8Rng)>,
    ) -> Tensor<4> {
        let device = self.packed.device();
        if let Some(images) = &self.host {
            let pixels = image_batch(images, indices, augment);
            return Tensor::from_data(
                TensorData::new(pixels, [indices.len(), 1, self.height, self.width]),
                &device,
            );
        }
        let (mean, std) = augment.as_ref().map_or((0.0, 1.0), |(config, _)| config.mean_std());
        let crops = draw_crops(indices, augment);
        let layout = ImageLayout {
            batch: indices.len(),
            height: self.height,
            width: self.width,
            scale: self.scale,
            mean,
            inv_std: 1.0 / std,
        };
        let crops = Tensor::<1, Int>::from_data(
            TensorData::new(crops.clone(), [crops.len()]),
            (&device, DType::I32),
        );
        kernels::augment_images(self.packed.clone(), crops, layout)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::test_support::wgpu_or_skip;

    /// Digit-like images of an odd size, so crops reach every edge and words straddle images.
    fn images() -> ImageSet {
        let (n, h, w) = (5, 9, 7);
        let pixels = (0..n * h * w).map(|i| ((i * 37) % 251) as u8).collect();
        ImageSet::new("t", h, w, pixels, vec![0; n], None).unwrap()
    }

    /// On WGPU the batch comes from nml's augmentation kernel; it equals the host path bit for
    /// bit, with and without augmentation and normalisation.
    #[test]
    fn device_batches_equal_the_host_path() {
        let Some(device) = wgpu_or_skip("device_batches_equal_the_host_path") else {
            return;
        };
        let images = images();
        let on_device = DeviceImages::upload(&images, &device);
        assert!(on_device.host.is_none());
        let config = AugmentConfig {
            pad: 2,
            flip: true,
            normalize: Some(crate::data::Normalize { mean: 0.13, std: 0.31 }),
        };
        let indices = [4, 0, 3, 3, 1];
        for augment in [false, true] {
            let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(5), ChaCha8Rng::seed_from_u64(5));
            let with = |rng| augment.then_some((&config, rng));
            let got: Vec<f32> =
                on_device.batch(&indices, with(&mut a)).into_data().try_to_vec::<f32>().unwrap();
            let want = image_batch(&images, &indices, with(&mut b));
            assert_eq!(got, want, "augment {augment}");
        }
    }
}
