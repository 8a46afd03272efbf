//! The WGSL kernels of `shaders/`, launched on Burn's CubeCL backend (WGPU runtime) through
//! Burn's custom-kernel pattern: a [`KernelSource`] per shader, run as a [`SourceKernel`].

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::wgpu::{
    CubeBackend, CubeDim, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::backend::{Dispatch, backend_extension};
use burn::cubecl::CubeCount;
use burn::cubecl::prelude::KernelId;
use burn::cubecl::server::KernelArguments;
use burn::tensor::{DType, Int, Shape, Tensor};

use super::reference::{AffineStats, ImageLayout};
use crate::data::SUBPIXEL;

/// Operations nml implements in its own shaders.
#[backend_extension(Cube: cfg(feature = "wgpu"))]
pub trait KernelBackend: burn::backend::Backend {
    /// `V^T V` with `v_ij = x_ij * inv_row_scale_i - row_offset_i - col_offset_j`; x is N x D f32.
    fn gram_preprocessed(
        x: FloatTensor<Self>,
        inv_row_scale: FloatTensor<Self>,
        row_offset: FloatTensor<Self>,
        col_offset: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// A batch of cropped, mirrored, normalised images, `[B, C, H, W]`; `layout` packed as
    /// `[batch, height, width, channels, scale / SUBPIXEL^2, mean x 3, 1/std x 3]` (floats as
    /// their bits).
    fn augment_images(
        packed: IntTensor<Self>,
        crops: IntTensor<Self>,
        layout: [u32; 11],
    ) -> FloatTensor<Self>;
}

const GRAM_TILE: usize = 64;
/// Shared-memory steps (of 32 rows) summed plainly before a compensated add: 256 rows.
const GRAM_BLOCK_STEPS: u32 = 8;

struct GramKernel;

impl KernelSource for GramKernel {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(include_str!("../../../shaders/gram_preprocessed.wgsl"))
            .register("block_steps", GRAM_BLOCK_STEPS.to_string())
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info(GRAM_BLOCK_STEPS)
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

struct AugmentKernel;

impl KernelSource for AugmentKernel {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(include_str!("../../../shaders/augment_images.wgsl"))
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>()
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

fn u32_bytes(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl KernelBackend for CubeBackend {
    fn gram_preprocessed(
        x: FloatTensor<Self>,
        inv_row_scale: FloatTensor<Self>,
        row_offset: FloatTensor<Self>,
        col_offset: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [x, inv_row_scale, row_offset, col_offset] =
            [x, inv_row_scale, row_offset, col_offset].map(into_contiguous);
        let (n, d) = (x.meta.shape()[0], x.meta.shape()[1]);
        let client = x.client.clone();
        let gram = CubeTensor::new_contiguous(
            client.clone(),
            x.device.clone(),
            Shape::from([d, d]),
            client.empty(d * d * 4),
            DType::F32,
        );
        let info = client.create_from_slice(&u32_bytes(&[n as u32, d as u32]));
        let tiles = d.div_ceil(GRAM_TILE) as u32;
        client.launch(
            Box::new(SourceKernel::new(GramKernel, CubeDim::new_3d(8, 8, 1))),
            CubeCount::Static(tiles, tiles, 1),
            KernelArguments::new().with_buffers(vec![
                x.handle.binding(),
                inv_row_scale.handle.binding(),
                row_offset.handle.binding(),
                col_offset.handle.binding(),
                gram.handle.clone().binding(),
                info.binding(),
            ]),
        );
        gram
    }

    fn augment_images(
        packed: IntTensor<Self>,
        crops: IntTensor<Self>,
        layout: [u32; 11],
    ) -> FloatTensor<Self> {
        let [packed, crops] = [packed, crops].map(into_contiguous);
        let client = packed.client.clone();
        let [batch, h, w, c] = [layout[0], layout[1], layout[2], layout[3]].map(|v| v as usize);
        let output = CubeTensor::new_contiguous(
            client.clone(),
            packed.device.clone(),
            Shape::from([batch, c, h, w]),
            client.empty(batch * c * h * w * 4),
            DType::F32,
        );
        let info = client.create_from_slice(&u32_bytes(&layout));
        // One thread per output value; a second grid dimension past 65535 workgroups.
        let groups = (batch * c * h * w).div_ceil(256) as u32;
        let (gx, gy) =
            if groups <= 65_535 { (groups, 1) } else { (65_535, groups.div_ceil(65_535)) };
        client.launch(
            Box::new(SourceKernel::new(AugmentKernel, CubeDim::new_3d(256, 1, 1))),
            CubeCount::Static(gx, gy, 1),
            KernelArguments::new().with_buffers(vec![
                packed.handle.binding(),
                crops.handle.binding(),
                output.handle.clone().binding(),
                info.binding(),
            ]),
        );
        output
    }
}

pub(super) fn affine_gram(x: Tensor<2>, stats: AffineStats) -> Tensor<2> {
    let gram = <Dispatch as KernelBackend>::gram_preprocessed(
        x.into_dispatch(),
        stats.row_scale.recip().cast(DType::F32).into_dispatch(),
        stats.row_offset.cast(DType::F32).into_dispatch(),
        stats.col_offset.cast(DType::F32).into_dispatch(),
    );
    Tensor::from_dispatch(gram)
}

pub(super) fn augment_images(
    packed: Tensor<1, Int>,
    crops: Tensor<1, Int>,
    layout: ImageLayout,
) -> Tensor<4> {
    let map = layout.map;
    let words = [
        layout.batch as u32,
        layout.height as u32,
        layout.width as u32,
        map.channels as u32,
        // The shader's samples are pixels times SUBPIXEL^2 (see data::image_batch).
        (map.scale / (SUBPIXEL * SUBPIXEL) as f32).to_bits(),
        map.mean[0].to_bits(),
        map.mean[1].to_bits(),
        map.mean[2].to_bits(),
        map.inv_std[0].to_bits(),
        map.inv_std[1].to_bits(),
        map.inv_std[2].to_bits(),
    ];
    Tensor::from_dispatch(<Dispatch as KernelBackend>::augment_images(
        packed.into_dispatch(),
        crops.into_dispatch(),
        words,
    ))
}
