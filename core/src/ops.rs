//! Small tensor formulas used in more than one place.

use burn::tensor::Tensor;

/// Each row divided by its L2 norm (rows of zeros stay zero).
pub fn l2_normalize_rows(x: Tensor<2>) -> Tensor<2> {
    let norms = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norms
}
