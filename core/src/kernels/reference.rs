//! The composed-ops reference of every kernel: what runs where there is no WGSL kernel, and
//! what tests and benchmarks compare the kernels against.

use burn::tensor::{DType, Int, Tensor, TensorData};

use crate::data::{CROP_FIELDS, PixelMap, SUBPIXEL, SUBPIXEL_OFFSET};

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

/// Crops, mirrors and normalises a batch by the host's integer arithmetic (see
/// [`crate::data::image_batch`]) in Burn's int ops, with gathers for the four neighbours.
pub fn augment_images(
    packed: Tensor<1, Int>,
    crops: Tensor<1, Int>,
    layout: ImageLayout,
) -> Tensor<4> {
    let ImageLayout { batch, height: h, width: w, map } = layout;
    let c = map.channels;
    let device = packed.device();
    let int = (&device, DType::I32);
    let crops = crops.reshape([batch, CROP_FIELDS]);
    let column = |k: usize| crops.clone().slice([0..batch, k..k + 1]).reshape([batch, 1, 1, 1]);
    let (image, top, left, ch, cw, flip) =
        (column(0), column(1), column(2), column(3), column(4), column(5));
    let ys = Tensor::<1, Int>::arange(0..h as i64, int).reshape([1, 1, h, 1]);
    let xs = Tensor::<1, Int>::arange(0..w as i64, int).reshape([1, 1, 1, w]);
    let cs = Tensor::<1, Int>::arange(0..c as i64, int).reshape([1, c, 1, 1]);
    // Mirrored: x -> w - 1 - x, i.e. x + flip * (w - 1 - 2x).
    let xo = xs.clone() + flip * (xs.mul_scalar(-2).add_scalar(w as i64 - 1));
    let sub = i64::from(SUBPIXEL);
    // crop_coordinate, elementwise: every division here is of non-negative integers.
    let coordinate = |o: Tensor<4, Int>, start: Tensor<4, Int>, len: Tensor<4, Int>, out: usize| {
        let at = start.clone().mul_scalar(sub)
            + (o.mul_scalar(2).add_scalar(1) * len.clone())
                .mul_scalar(sub / 2)
                .div_scalar(out as i64)
            - sub / 2;
        let low = start.clone().mul_scalar(sub);
        let high = (start + len).sub_scalar(1).mul_scalar(sub);
        let at = at.clone().max_pair(low.expand(at.dims())).min_pair(high.expand(at.dims()));
        let at = at.add_scalar(i64::from(SUBPIXEL_OFFSET));
        (
            at.clone().div_scalar(sub).sub_scalar(i64::from(SUBPIXEL_OFFSET) / sub),
            at.remainder_scalar(sub),
        )
    };
    let (y0, fy) = coordinate(ys, top, ch, h);
    let (x0, fx) = coordinate(xo, left, cw, w);
    // Pixels are stored channels innermost: ((image * H + y) * W + x) * C + c; outside the
    // image a neighbour reads zero.
    let neighbour = |y: Tensor<4, Int>, x: Tensor<4, Int>| {
        let shape = [batch, c, h, w];
        let inside = y
            .clone()
            .greater_equal_elem(0)
            .bool_and(y.clone().lower_elem(h as i64))
            .bool_and(x.clone().greater_equal_elem(0))
            .bool_and(x.clone().lower_elem(w as i64))
            .expand(shape);
        let src = image.clone().mul_scalar((h * w * c) as i64)
            + y.clamp(0, h as i64 - 1).mul_scalar((w * c) as i64)
            + x.clamp(0, w as i64 - 1).mul_scalar(c as i64)
            + cs.clone();
        let src = src.expand(shape).reshape([batch * c * h * w]);
        let words = packed.clone().select(0, src.clone().div_scalar(4));
        let shift = src.remainder_scalar(4).mul_scalar(8);
        let bytes = words.bitwise_right_shift(shift).bitwise_and_scalar(0xFF).reshape(shape);
        bytes.mask_fill(inside.bool_not(), 0)
    };
    let row = |y: Tensor<4, Int>| {
        neighbour(y.clone(), x0.clone()) * fx.clone().neg().add_scalar(sub)
            + neighbour(y, x0.clone().add_scalar(1)) * fx.clone()
    };
    let sample = row(y0.clone()) * fy.clone().neg().add_scalar(sub) + row(y0.add_scalar(1)) * fy;
    let scale = map.scale / (SUBPIXEL * SUBPIXEL) as f32;
    let value = sample.float().cast(DType::F32).mul_scalar(scale);
    let per_channel = |v: [f32; 3]| {
        Tensor::<1>::from_data(TensorData::new(v[..c].to_vec(), [c]), (&device, DType::F32))
            .reshape([1, c, 1, 1])
    };
    (value - per_channel(map.mean)) * per_channel(map.inv_std)
}
