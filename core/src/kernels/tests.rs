use burn::tensor::{Device, Distribution, Tensor};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

use super::*;
use crate::data::ImageSet;
use crate::pretrain::{AugmentConfig, DeviceImages, Normalize, image_batch};
use crate::spectrum::{Preprocess, gram_f64};
use crate::test_support::wgpu_or_skip;

fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Features with rows of very different lengths and a strong common offset, so each
/// preprocessing mode changes the Gram substantially.
fn features(n: usize, d: usize, device: &Device) -> Tensor<2> {
    let base = Tensor::<2>::random([n, d], Distribution::Normal(0.5, 1.0), device);
    let row_lengths = Tensor::<2>::random([n, 1], Distribution::Uniform(0.1, 10.0), device);
    base * row_lengths
}

/// Largest |a - b| relative to the largest |b|.
fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn gram_reference_f64(x: Tensor<2>, mode: Preprocess) -> Vec<f64> {
    let [n, d] = x.dims();
    let v = host(mode.apply(x));
    let g = gram_f64(&v, n, d);
    (0..d).flat_map(|i| (0..d).map(move |j| (i, j))).map(|(i, j)| g[(i, j)]).collect()
}

#[test]
fn affine_stats_reproduce_every_mode() {
    let device = Device::flex();
    let x = features(300, 70, &device);
    for mode in [Preprocess::Paper, Preprocess::Centered, Preprocess::Raw] {
        let s = reference::AffineStats::of(x.clone(), mode);
        let affine = x.clone() / s.row_scale - s.row_offset - s.col_offset;
        let direct = mode.apply(x.clone());
        let diff = (affine - direct).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "{mode:?}: {diff}");
    }
}

#[test]
fn gram_kernel_matches_f64_reference_in_every_mode() {
    let Some(gpu) = wgpu_or_skip("kernels::gram_kernel_matches_f64_reference_in_every_mode") else { return };
    // D not a multiple of the 64-wide tile and N not a multiple of the 16-row step, so the
    // edge handling is exercised; N long enough that plain f32 accumulation would drift.
    let (n, d) = (20_011, 150);
    let cpu = features(n, d, &Device::flex());
    let x = Tensor::<2>::from_data(cpu.to_data(), &gpu);
    for mode in [Preprocess::Paper, Preprocess::Centered, Preprocess::Raw] {
        let expected = gram_reference_f64(cpu.clone(), mode);
        let kernel: Vec<f64> = host(preprocessed_gram(x.clone(), mode)).into_iter().map(f64::from).collect();
        let composed: Vec<f64> = host(reference::preprocessed_gram(x.clone(), mode)).into_iter().map(f64::from).collect();
        let (e_kernel, e_composed) = (relative_error(&kernel, &expected), relative_error(&composed, &expected));
        eprintln!("{mode:?}: kernel {e_kernel:.2e}, Burn's matmul {e_composed:.2e} (relative to f64)");
        assert!(e_kernel < 2e-6, "{mode:?}: kernel Gram off by {e_kernel:e}");
        // Symmetric exactly: each tile writes its mirror.
        for i in 0..d {
            for j in 0..i {
                assert_eq!(kernel[i * d + j], kernel[j * d + i]);
            }
        }
    }
}

fn image_set() -> ImageSet {
    let (n, h, w) = (37, 11, 9);
    let pixels: Vec<u8> = (0..n * h * w).map(|i| ((i * 97 + 13) % 256) as u8).collect();
    ImageSet { name: "t".into(), n, height: h, width: w, pixels, labels: vec![0; n], num_classes: 1, max_value: 255 }
}

fn assert_same_as_host(device: &Device, composed: bool) {
    let images = image_set();
    let on_device = DeviceImages::upload(&images, device);
    let indices: Vec<usize> = (0..images.n).rev().chain([0, 36, 5]).collect();
    let config = AugmentConfig { pad: 3, flip: true, normalize: Some(Normalize { mean: 0.25, std: 0.5 }) };
    for augment in [false, true] {
        let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(7), ChaCha8Rng::seed_from_u64(7));
        let expected = image_batch(&images, &indices, augment.then_some((&config, &mut r1)));
        let got = if composed {
            let crops = crate::pretrain::draw_crops(&indices, augment.then_some((&config, &mut r2)));
            let (mean, std) = if augment { (0.25, 0.5) } else { (0.0, 1.0) };
            let layout = reference::ImageLayout { batch: indices.len(), height: 11, width: 9, scale: 1.0 / 255.0, mean, inv_std: 1.0 / std };
            let crops = Tensor::<1, burn::tensor::Int>::from_data(burn::tensor::TensorData::new(crops.clone(), [crops.len()]), (device, burn::tensor::DType::I32));
            reference::augment_images(on_device.packed.clone(), crops, layout)
        } else {
            on_device.batch(&indices, augment.then_some((&config, &mut r2)))
        };
        assert_eq!(got.dims(), [indices.len(), 1, 11, 9]);
        let got = got.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        assert_eq!(got, expected, "augment {augment}");
    }
}

#[test]
fn composed_augmentation_equals_the_host_loop() {
    assert_same_as_host(&Device::flex(), false);
    assert_same_as_host(&Device::flex(), true);
}

#[test]
fn augmentation_kernel_equals_the_host_loop() {
    let Some(gpu) = wgpu_or_skip("kernels::augmentation_kernel_equals_the_host_loop") else { return };
    assert!(uses_wgsl(&gpu));
    assert_same_as_host(&gpu, false);
    // And the composed reference on the same device agrees with it.
    assert_same_as_host(&gpu, true);
}

/// The issue-sized case: SVE and LSVR of a 50000 x 2048 feature set (410 MB in f32, more than
/// llvmpipe allocates in one buffer, so it is uploaded in blocks) from the kernel's Gram
/// against the exact f64 path. `cargo test -p nml-core --lib kernels::tests::issue_sized --
/// --ignored --nocapture` (minutes on llvmpipe).
#[test]
#[ignore]
fn issue_sized_gram_on_wgpu() {
    use crate::spectrum::{Precision, measure};
    let Some(gpu) = wgpu_or_skip("kernels::issue_sized_gram_on_wgpu") else { return };
    let set = crate::bench::synthetic_feature_set(50_000, 2048, 0);
    let timed = |precision| {
        let started = std::time::Instant::now();
        let report = measure(&set, Preprocess::Paper, precision, &gpu).unwrap();
        (report, started.elapsed().as_secs_f64())
    };
    let (exact, exact_seconds) = timed(Precision::Exact);
    for precision in [Precision::Fast, Precision::Auto] {
        let (report, seconds) = timed(precision);
        let sve = (report.sve - exact.sve).abs() / exact.sve;
        let lsvr = (report.lsvr_ratio - exact.lsvr_ratio).abs() / exact.lsvr_ratio;
        eprintln!("{precision:?} ({}): {seconds:.1} s, SVE within {sve:.1e}, LSVR within {lsvr:.1e} (exact path {exact_seconds:.1} s)", report.method);
        assert_eq!(report.method, "gram-f32-device");
        assert!(sve < 1e-4 && lsvr < 1e-4, "{precision:?}: SVE {sve:e}, LSVR {lsvr:e}");
    }
}
