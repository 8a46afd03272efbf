use burn::tensor::{DType, Device, Distribution, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

use super::*;
use crate::data::{
    AugmentConfig, ImageSet, Normalize, PixelMap, ResizedCrop, draw_crops, image_batch,
};
use crate::test_support::wgpu_or_skip;

fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Features with rows of very different lengths and a strong common offset, and affine
/// statistics of the paper mode's kind (row norms, row means), so the map changes the Gram
/// substantially.
fn features_and_stats(
    n: usize,
    d: usize,
    device: &Device,
) -> (Tensor<2>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let base = Tensor::<2>::random([n, d], Distribution::Normal(0.5, 1.0), device);
    let row_lengths = Tensor::<2>::random([n, 1], Distribution::Uniform(0.1, 10.0), device);
    let x = base * row_lengths;
    let values = host(x.clone());
    let scale: Vec<f32> =
        values.chunks(d).map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
    let offset: Vec<f32> =
        values.chunks(d).zip(&scale).map(|(r, s)| r.iter().sum::<f32>() / s / d as f32).collect();
    let column: Vec<f32> = (0..d).map(|j| 0.01 * j as f32).collect();
    (x, scale, offset, column)
}

fn stats(scale: &[f32], offset: &[f32], column: &[f32], device: &Device) -> AffineStats {
    let (n, d) = (scale.len(), column.len());
    AffineStats {
        row_scale: Tensor::from_data(TensorData::new(scale.to_vec(), [n, 1]), device),
        row_offset: Tensor::from_data(TensorData::new(offset.to_vec(), [n, 1]), device),
        col_offset: Tensor::from_data(TensorData::new(column.to_vec(), [1, d]), device),
    }
}

/// The Gram of the mapped features, formed in f64 on the host.
fn gram_f64(x: &[f32], scale: &[f32], offset: &[f32], column: &[f32]) -> Vec<f64> {
    let d = column.len();
    let mut gram = vec![0f64; d * d];
    let mut v = vec![0f64; d];
    for (i, row) in x.chunks(d).enumerate() {
        for j in 0..d {
            v[j] = f64::from(row[j]) / f64::from(scale[i])
                - f64::from(offset[i])
                - f64::from(column[j]);
        }
        for a in 0..d {
            for b in 0..=a {
                gram[a * d + b] += v[a] * v[b];
            }
        }
    }
    for a in 0..d {
        for b in 0..a {
            gram[b * d + a] = gram[a * d + b];
        }
    }
    gram
}

/// Largest |a - b| relative to the largest |b|.
fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn composed_gram_matches_f64() {
    let device = Device::flex();
    let (x, scale, offset, column) = features_and_stats(300, 70, &device);
    let expected = gram_f64(&host(x.clone()), &scale, &offset, &column);
    let got: Vec<f64> = host(affine_gram(x, stats(&scale, &offset, &column, &device)))
        .into_iter()
        .map(f64::from)
        .collect();
    let error = relative_error(&got, &expected);
    assert!(error < 1e-5, "composed Gram off by {error:e}");
}

#[test]
fn gram_kernel_matches_f64() {
    let Some(gpu) = wgpu_or_skip("kernels::gram_kernel_matches_f64") else {
        return;
    };
    assert!(uses_wgsl(&gpu));
    // D not a multiple of the 64-wide tile and N not a multiple of the 16-row step, so the
    // edge handling is exercised; N long enough that plain f32 accumulation would drift.
    let (n, d) = (20_011, 150);
    let (cpu, scale, offset, column) = features_and_stats(n, d, &Device::flex());
    let values = host(cpu);
    let x = Tensor::<2>::from_data(TensorData::new(values.clone(), [n, d]), &gpu);
    for (name, (s, o, c)) in [
        ("identity", (vec![1.0; n], vec![0.0; n], vec![0.0; d])),
        ("affine", (scale, offset, column)),
    ] {
        let expected = gram_f64(&values, &s, &o, &c);
        let kernel: Vec<f64> = host(affine_gram(x.clone(), stats(&s, &o, &c, &gpu)))
            .into_iter()
            .map(f64::from)
            .collect();
        let composed: Vec<f64> = host(reference::affine_gram(x.clone(), stats(&s, &o, &c, &gpu)))
            .into_iter()
            .map(f64::from)
            .collect();
        let (e_kernel, e_composed) =
            (relative_error(&kernel, &expected), relative_error(&composed, &expected));
        eprintln!(
            "{name}: kernel {e_kernel:.2e}, Burn's matmul {e_composed:.2e} (relative to f64)"
        );
        assert!(e_kernel < 2e-6, "{name}: kernel Gram off by {e_kernel:e}");
        // Symmetric exactly: each tile writes its mirror.
        for i in 0..d {
            for j in 0..i {
                assert_eq!(kernel[i * d + j], kernel[j * d + i]);
            }
        }
    }
}

fn image_set(channels: usize) -> ImageSet {
    let (n, h, w) = (37, 11, 9);
    let pixels: Vec<u8> = (0..n * h * w * channels).map(|i| ((i * 97 + 13) % 256) as u8).collect();
    ImageSet::new("t", [h, w, channels], pixels, vec![0; n], None).unwrap()
}

/// The kernel (on WGPU) or its composed reference (`composed`, on any device) gives the host
/// loop's batch bit for bit, grey and colour.
fn assert_same_as_host(device: &Device, composed: bool) {
    let normalize = [
        Normalize::new(vec![0.25], vec![0.5]).unwrap(),
        Normalize::new(vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225]).unwrap(),
    ];
    for (channels, normalize) in [1, 3].into_iter().zip(normalize) {
        let images = image_set(channels);
        let words = pack_bytes(images.pixels());
        let packed = Tensor::<1, Int>::from_data(
            TensorData::new(words.clone(), [words.len()]),
            (device, DType::I32),
        );
        let indices: Vec<usize> = (0..images.n()).rev().chain([0, 36, 5]).collect();
        let shift =
            AugmentConfig { pad: 3, flip: true, normalize: Some(normalize), resized_crop: None };
        // torchvision's ranges, and boxes wider than tall and taller than wide.
        let resized =
            [ResizedCrop::default(), ResizedCrop { scale: [0.3, 0.6], ratio: [0.4, 2.5] }]
                .map(|crop| AugmentConfig { pad: 0, resized_crop: Some(crop), ..shift.clone() });
        let configs = [(false, &shift), (true, &shift), (true, &resized[0]), (true, &resized[1])];
        for (augment, config) in configs {
            let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(7), ChaCha8Rng::seed_from_u64(7));
            let normalize = augment.then_some(config.normalize.as_ref()).flatten();
            let expected =
                image_batch(&images, &indices, normalize, augment.then_some((config, &mut r1)))
                    .unwrap();
            let crops = draw_crops(&indices, [11, 9], augment.then_some((config, &mut r2)));
            let map = PixelMap::new(&images, normalize).unwrap();
            let layout = ImageLayout { batch: indices.len(), height: 11, width: 9, map };
            let crops = Tensor::<1, Int>::from_data(
                TensorData::new(crops.clone(), [crops.len()]),
                (device, DType::I32),
            );
            let got = if composed {
                reference::augment_images(packed.clone(), crops, layout)
            } else {
                augment_images(packed.clone(), crops, layout)
            };
            assert_eq!(got.dims(), [indices.len(), channels, 11, 9]);
            let got = got.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
            assert_eq!(got, expected, "{channels} channel(s), augment {augment}, {config:?}");
        }
    }
}

#[test]
fn composed_augmentation_equals_the_host_loop() {
    assert_same_as_host(&Device::flex(), true);
}

#[test]
fn augmentation_kernel_equals_the_host_loop() {
    let Some(gpu) = wgpu_or_skip("kernels::augmentation_kernel_equals_the_host_loop") else {
        return;
    };
    assert!(uses_wgsl(&gpu));
    assert_same_as_host(&gpu, false);
    // And the composed reference on the same device agrees with it.
    assert_same_as_host(&gpu, true);
}

#[test]
fn bytes_pack_little_endian_with_a_padded_tail() {
    assert_eq!(pack_bytes(&[1, 2, 3, 4, 5]), vec![0x0403_0201, 5]);
}
