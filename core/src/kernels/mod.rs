//! nml's own GPU kernels. The WGSL sources live in `shaders/`; this module reaches them through
//! one Burn backend extension ([`KernelBackend`], implemented for the CubeCL/WGPU backend) and
//! gives every caller one function per operation. On any other device (Burn's CPU backend, a
//! browser without WebGPU) the same function runs its composed-ops reference from
//! [`reference`], so callers never care which ran; tests hold the two to agreement.

pub mod reference;
#[cfg(feature = "wgpu")]
mod wgsl;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{DType, Device, Int, Tensor};

use crate::spectrum::Preprocess;

#[cfg(feature = "wgpu")]
pub use wgsl::KernelBackend;

static WGSL_ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns nml's WGSL kernels off (or back on) for this process, so a benchmark can time the
/// composed-ops reference on the same device. Results agree either way.
pub fn set_wgsl_enabled(enabled: bool) {
    WGSL_ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether operations on `device` run nml's WGSL kernels.
pub fn uses_wgsl(device: &Device) -> bool {
    cfg!(feature = "wgpu") && WGSL_ENABLED.load(Ordering::Relaxed) && !crate::device::is_host(device)
}

/// The D x D Gram matrix `V^T V` of the features `x` (N x D) after `mode`'s preprocessing,
/// without forming V on a GPU. In f32; see `shaders/gram_preprocessed.wgsl` for how it is
/// accumulated.
pub fn preprocessed_gram(x: Tensor<2>, mode: Preprocess) -> Tensor<2> {
    let x = x.without_autodiff().cast(DType::F32);
    #[cfg(feature = "wgpu")]
    if uses_wgsl(&x.device()) {
        let stats = reference::AffineStats::of(x.clone(), mode);
        return wgsl::preprocessed_gram(x, stats);
    }
    reference::preprocessed_gram(x, mode)
}

/// One batch of augmented images, `[B, 1, H, W]` f32, from images already on the device.
/// `crops` holds four integers per sample: image index, dy, dx, mirror flag (see
/// [`crate::pretrain::draw_crops`]); pixels become `(p * scale - mean) / std`.
pub fn augment_images(images: &crate::pretrain::DeviceImages, crops: &[i32], mean: f32, std: f32) -> Tensor<4> {
    let device = images.packed.device();
    let batch = crops.len() / 4;
    let crops = Tensor::<1, Int>::from_data(burn::tensor::TensorData::new(crops.to_vec(), [crops.len()]), (&device, DType::I32));
    let layout = reference::ImageLayout { batch, height: images.height, width: images.width, scale: images.scale, mean, inv_std: 1.0 / std };
    #[cfg(feature = "wgpu")]
    if uses_wgsl(&device) {
        return wgsl::augment_images(images.packed.clone(), crops, layout);
    }
    reference::augment_images(images.packed.clone(), crops, layout)
}

#[cfg(test)]
mod tests;
