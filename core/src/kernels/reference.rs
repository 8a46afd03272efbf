//! The composed-ops reference of every kernel: what runs where there is no WGSL kernel, and
//! what tests and benchmarks compare the kernels against.

use burn::tensor::{DType, Int, Tensor, TensorData};

use crate::data::PixelMap;

/// A preprocessing written as an affine map of each element,
/// `v_ij = x_ij / row_scale_i - row_offset_i - col_offset_j`, so a kernel can apply it while
/// reading x (`spectrum` computes these for its modes).
pub struct AffineStats {
    /// `[N, 1]`.
    pub row_scale: Tensor<2>,
    /// `[N, 1]`.
    pub row_offset: Tensor<2>,
    /// `[1, D]`.
    pub col_offset: Tensor<2>,
}

impl AffineStats {
    /// The affine map that leaves `x` (N x D) as it is.
    pub fn identity(n: usize, d: usize, device: &burn::tensor::Device) -> Self {
        Self {
            row_scale: Tensor::ones([n, 1], device),
            row_offset: Tensor::zeros([n, 1], device),
            col_offset: Tensor::zeros([1, d], device),
        }
    }
}

/// `V^T V` for V the affinely mapped features, by Burn's own ops.
pub fn affine_gram(x: Tensor<2>, stats: AffineStats) -> Tensor<2> {
    let v = x / stats.row_scale - stats.row_offset - stats.col_offset;
    v.clone().transpose().matmul(v)
}

/// Sizes and pixel map of one augmentation batch.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    /// Channels, scale and per-channel normalisation.
    pub map: PixelMap,
}

/// Crops, mirrors and normalises a batch by index arithmetic and gathers in Burn's int ops.
pub fn augment_images(
    packed: Tensor<1, Int>,
    crops: Tensor<1, Int>,
    layout: ImageLayout,
) -> Tensor<4> {
    let ImageLayout { batch, height: h, width: w, map } = layout;
    let c = map.channels;
    let device = packed.device();
    let int = (&device, DType::I32);
    let crops = crops.reshape([batch, 4]);
    let column = |k: usize| crops.clone().slice([0..batch, k..k + 1]).reshape([batch, 1, 1, 1]);
    let (image, dy, dx, flip) = (column(0), column(1), column(2), column(3));
    let ys = Tensor::<1, Int>::arange(0..h as i64, int).reshape([1, 1, h, 1]);
    let xs = Tensor::<1, Int>::arange(0..w as i64, int).reshape([1, 1, 1, w]);
    let cs = Tensor::<1, Int>::arange(0..c as i64, int).reshape([1, c, 1, 1]);
    // Mirrored: x -> w - 1 - x, i.e. x + flip * (w - 1 - 2x).
    let sx = xs.clone() + flip * (xs.mul_scalar(-2).add_scalar(w as i64 - 1)) + dx;
    let sy = ys + dy;
    let inside = sy
        .clone()
        .greater_equal_elem(0)
        .bool_and(sy.clone().lower_elem(h as i64))
        .bool_and(sx.clone().greater_equal_elem(0))
        .bool_and(sx.clone().lower_elem(w as i64))
        .expand([batch, c, h, w]);
    // Pixels are stored channels innermost: ((image * H + y) * W + x) * C + c.
    let src = image.mul_scalar((h * w * c) as i64)
        + sy.clamp(0, h as i64 - 1).mul_scalar((w * c) as i64)
        + sx.clamp(0, w as i64 - 1).mul_scalar(c as i64)
        + cs;
    let src = src.reshape([batch * c * h * w]);
    let words = packed.select(0, src.clone().div_scalar(4));
    let shift = src.remainder_scalar(4).mul_scalar(8);
    let bytes = words.bitwise_right_shift(shift).bitwise_and_scalar(0xFF);
    let value = bytes.float().cast(DType::F32).mul_scalar(map.scale).reshape([batch, c, h, w]);
    let value = value.mask_fill(inside.bool_not(), 0.0);
    let per_channel = |v: [f32; 3]| {
        Tensor::<1>::from_data(TensorData::new(v[..c].to_vec(), [c]), (&device, DType::F32))
            .reshape([1, c, 1, 1])
    };
    (value - per_channel(map.mean)) * per_channel(map.inv_std)
}
