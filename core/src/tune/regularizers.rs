//! NMTune's regularisers on a batch of transformed features Z (B x D). The black-box head and
//! tuning under LoRA or full fine-tuning call these same functions.

use burn::tensor::{Tensor, TensorData};

use crate::error::Result;
use crate::ops::l2_normalize_rows;
use crate::readback::{blocking, floats};
use crate::spectrum::thin_svd;

/// Consistency: MSE between the row-normalised Z and row-normalised F (mean over all entries).
pub fn consistency_mse(z: Tensor<2>, f: Tensor<2>) -> Tensor<1> {
    (l2_normalize_rows(z) - l2_normalize_rows(f)).square().mean()
}

/// Covariance penalty: the sum of squared off-diagonal entries of the batch covariance of Z
/// (rows centred, divided by B - 1), divided by D.
///
/// The squared entries of the D x D covariance `C^T C / (B - 1)` sum to those of the B x B
/// matrix `C C^T / (B - 1)` (both are `tr(C^T C C^T C)`), so the smaller of the two is formed:
/// for the paper's batch of 64 on 512-dimensional features, a 64 x 64 product instead of a
/// 512 x 512 one.
pub fn covariance_penalty(z: Tensor<2>) -> Tensor<1> {
    let [b, d] = z.dims();
    let centred = z.clone() - z.mean_dim(0);
    let denom = (b.max(2) - 1) as f64;
    let product = if b < d {
        centred.clone().matmul(centred.clone().transpose())
    } else {
        centred.clone().transpose().matmul(centred.clone())
    };
    let diagonal = centred.square().sum_dim(0).div_scalar(denom);
    (product.div_scalar(denom).square().sum() - diagonal.square().sum()).div_scalar(d as f64)
}

/// Mean over the k largest singular values of Z of `s_i / sum_j s_j`, with its true gradient.
///
/// The SVD is taken on the host from a detached copy of the batch; with U and V held constant,
/// `s_i = u_i^T Z v_i` is exact in value and its autodiff gradient is `u_i v_i^T`, the derivative
/// of a simple singular value.
pub fn top_k_singular_share(z: Tensor<2>, k: usize) -> Result<Tensor<1>> {
    blocking(top_k_singular_share_async(z, k))
}

/// [`top_k_singular_share`] for devices that can only be read asynchronously (WebGPU in a browser).
pub async fn top_k_singular_share_async(z: Tensor<2>, k: usize) -> Result<Tensor<1>> {
    let [b, d] = z.dims();
    let device = z.device();
    let host = floats(z.clone().detach()).await?;
    let svd = thin_svd(&host, b, d, 1e-7);
    let r = svd.rank;
    if r == 0 {
        return Ok(Tensor::zeros([1], &device));
    }
    let u = Tensor::<2>::from_data(TensorData::new(svd.u, [b, r]), &device);
    let v = Tensor::<2>::from_data(TensorData::new(svd.v, [d, r]), &device);
    let s = (u * z.matmul(v)).sum_dim(0); // [1, r]: s_i = u_i^T Z v_i
    let k = k.min(r);
    let top = s.clone().slice([0..1, 0..k]).sum();
    Ok(top.div(s.sum()).div_scalar(k as f64))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    fn random(b: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..b * d).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
    }

    fn value(f: &dyn Fn(Tensor<2>) -> Tensor<1>, x: &[f32], b: usize, d: usize) -> f64 {
        let t = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [b, d]), &Device::flex());
        f64::from(f(t).into_scalar::<f32>())
    }

    /// Central finite differences in f64 of an f32 function, against the autodiff gradient.
    fn check_gradient(f: &dyn Fn(Tensor<2>) -> Tensor<1>, b: usize, d: usize, seed: u64, tol: f64) {
        let x = random(b, d, seed);
        let device = Device::flex().autodiff();
        let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [b, d]), &device).require_grad();
        let grads = f(t.clone()).backward();
        let analytic: Vec<f32> = t.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        let h = 1e-2f32;
        let mut worst: f64 = 0.0;
        let scale = analytic.iter().map(|g| g.abs()).fold(0.0, f32::max) as f64;
        for i in 0..b * d {
            let (mut plus, mut minus) = (x.clone(), x.clone());
            plus[i] += h;
            minus[i] -= h;
            let numeric = (value(f, &plus, b, d) - value(f, &minus, b, d)) / (2.0 * f64::from(h));
            worst = worst.max((numeric - f64::from(analytic[i])).abs());
        }
        assert!(worst < tol * scale, "worst gradient error {worst} against scale {scale}");
    }

    #[test]
    fn singular_share_gradient_is_the_true_one() {
        for (b, d) in [(8usize, 5usize), (5, 8)] {
            check_gradient(&|z| top_k_singular_share(z, 2).unwrap(), b, d, 11, 2e-2);
        }
    }

    #[test]
    fn covariance_and_consistency_gradients() {
        check_gradient(&covariance_penalty, 6, 4, 12, 2e-2);
        check_gradient(&covariance_penalty, 4, 6, 14, 2e-2);
        let f = random(6, 4, 99);
        check_gradient(
            &|z| {
                let device = z.device();
                consistency_mse(z, Tensor::from_data(TensorData::new(f.clone(), [6, 4]), &device))
            },
            6,
            4,
            13,
            2e-2,
        );
    }

    #[test]
    fn singular_share_value_matches_the_spectrum() {
        // Rows e_i * c_i: singular values are |c_i|.
        let (b, d) = (4, 4);
        let mut x = vec![0f32; 16];
        for (i, c) in [4.0f32, 3.0, 2.0, 1.0].iter().enumerate() {
            x[i * d + i] = *c;
        }
        let got = value(&|z| top_k_singular_share(z, 2).unwrap(), &x, b, d);
        assert!((got - (4.0 + 3.0) / 10.0 / 2.0).abs() < 1e-6, "{got}");
    }

    /// Both shapes (batch smaller and larger than D) against the D x D covariance formed directly.
    #[test]
    fn covariance_penalty_matches_the_full_covariance() {
        for (b, d) in [(6usize, 20usize), (20, 6)] {
            let x = random(b, d, 5);
            let mean: Vec<f64> = (0..d)
                .map(|j| (0..b).map(|i| f64::from(x[i * d + j])).sum::<f64>() / b as f64)
                .collect();
            let mut off_diagonal = 0.0;
            for j in 0..d {
                for k in 0..d {
                    if j != k {
                        let cov: f64 = (0..b)
                            .map(|i| {
                                (f64::from(x[i * d + j]) - mean[j])
                                    * (f64::from(x[i * d + k]) - mean[k])
                            })
                            .sum::<f64>()
                            / (b - 1) as f64;
                        off_diagonal += cov * cov;
                    }
                }
            }
            let expected = off_diagonal / d as f64;
            let got = value(&covariance_penalty, &x, b, d);
            assert!(
                (got - expected).abs() < 1e-5 * expected.max(1.0),
                "{b} x {d}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn covariance_penalty_closed_form() {
        // Two dimensions, perfectly correlated: cov = [[v, v], [v, v]], off-diagonal sum = 2 v^2.
        let x = vec![1.0f32, 1.0, -1.0, -1.0, 3.0, 3.0];
        let got = value(&covariance_penalty, &x, 3, 2);
        let mean = 1.0f64;
        let v = ((1.0 - mean).powi(2) + (-1.0 - mean).powi(2) + (3.0 - mean).powi(2)) / 2.0;
        assert!((got - 2.0 * v * v / 2.0).abs() < 1e-4, "{got}");
    }
}
