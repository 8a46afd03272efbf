//! nml's own GPU kernels. The WGSL sources live in `shaders/`; this module reaches them through
//! one Burn backend extension (`KernelBackend`, implemented for the CubeCL/WGPU backend) and
//! gives every caller one function per operation, on plain inputs: tensors, an
//! [`ImageLayout`], packed bytes and [`AffineStats`]. On any other device (Burn's CPU backend, a
//! browser without WebGPU) the same function runs its composed-ops reference from
//! [`mod@reference`], so callers never care which ran; tests hold the two to agreement.

pub mod reference;
#[cfg(feature = "wgpu")]
mod wgsl;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{DType, Device, Int, Tensor};

pub use reference::{AffineStats, ImageLayout};
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
    cfg!(feature = "wgpu")
        && WGSL_ENABLED.load(Ordering::Relaxed)
        && !crate::device::is_host(device)
}

/// The D x D Gram matrix `V^T V` of `v_ij = x_ij / row_scale_i - row_offset_i - col_offset_j`
/// for features `x` (N x D), without forming V on a GPU. In f32; see
/// `shaders/gram_preprocessed.wgsl` for how it is accumulated.
pub fn affine_gram(x: Tensor<2>, stats: AffineStats) -> Tensor<2> {
    let x = x.without_autodiff().cast(DType::F32);
    #[cfg(feature = "wgpu")]
    if uses_wgsl(&x.device()) {
        return wgsl::affine_gram(x, stats);
    }
    reference::affine_gram(x, stats)
}

/// Bytes packed four to an `i32` word, little-endian, the last word zero-padded: how image
/// pixels live on a device for [`augment_images`].
pub fn pack_bytes(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks(4)
        .map(|c| {
            let mut word = [0u8; 4];
            word[..c.len()].copy_from_slice(c);
            i32::from_le_bytes(word)
        })
        .collect()
}

/// One batch of augmented images, `[B, C, H, W]` f32, from images (N x H x W x C bytes) packed
/// by [`pack_bytes`] on the device. `crops` (I32) holds [`crate::data::CROP_FIELDS`] integers
/// per sample: image index, the crop box's top, left, height and width, mirror flag (see
/// [`crate::data::draw_crops`]); the box is resampled to the image's size as
/// [`crate::data::image_batch`] does it, and pixels of channel c become
/// `(p * scale - mean[c]) * inv_std[c]`.
pub fn augment_images(
    packed: Tensor<1, Int>,
    crops: Tensor<1, Int>,
    layout: ImageLayout,
) -> Tensor<4> {
    #[cfg(feature = "wgpu")]
    if uses_wgsl(&packed.device()) {
        return wgsl::augment_images(packed, crops, layout);
    }
    reference::augment_images(packed, crops, layout)
}

#[cfg(test)]
mod tests;
