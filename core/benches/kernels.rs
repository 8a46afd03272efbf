//! nml's WGSL kernels against their composed-ops references, on the WGPU device (a software
//! Vulkan adapter such as llvmpipe counts), plus the CPU paths for scale. A kernel stays in
//! shaders/ only if it wins here; shaders/README.md records the figures.

use std::hint::black_box;
use std::time::Duration;

use burn::tensor::{Device, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use nml_core::bench::{synthetic_features, synthetic_images, sync};
use nml_core::device::{BackendChoice, select};
use nml_core::kernels::{self, reference};
use nml_core::pretrain::{AugmentConfig, DeviceImages, image_batch};
use nml_core::spectrum::Preprocess;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

/// The nml binary's allocator (native/Cargo.toml says why), so these figures are what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn quick() -> bool {
    std::env::var_os("NML_BENCH_QUICK").is_some()
}

fn wgpu() -> Option<Device> {
    select(BackendChoice::Wgpu).ok().map(|d| d.device)
}

fn gram(c: &mut Criterion) {
    let mut group = c.benchmark_group("gram_paper_mode");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    let sizes: &[(usize, usize)] = if quick() { &[(2000, 128)] } else { &[(5000, 256), (20000, 512), (20000, 1024)] };
    let Some(gpu) = wgpu() else {
        eprintln!("no WGPU adapter: kernel benches skipped");
        return;
    };
    for &(n, d) in sizes {
        let x = Tensor::<2>::from_data(TensorData::new(synthetic_features(n, d, 0), [n, d]), &gpu);
        let id = format!("{n}x{d}");
        // Readback alone does not wait for the device here: sync does.
        group.bench_function(BenchmarkId::new("wgsl_kernel", &id), |b| {
            b.iter(|| {
                let g = kernels::preprocessed_gram(x.clone(), Preprocess::Paper);
                sync(&gpu);
                black_box(g)
            })
        });
        group.bench_function(BenchmarkId::new("composed_ops", &id), |b| {
            b.iter(|| {
                let g = reference::preprocessed_gram(x.clone(), Preprocess::Paper);
                sync(&gpu);
                black_box(g)
            })
        });
    }
    group.finish();
}

fn augment(c: &mut Criterion) {
    let mut group = c.benchmark_group("augment_batch_256x28x28");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    let images = synthetic_images(6000, 28, 28, 0);
    let indices: Vec<usize> = (0..256).map(|i| i * 23 % images.n).collect();
    let config = AugmentConfig { pad: 2, flip: true, normalize: None };
    let cpu = Device::flex();
    let host_path = |device: &Device| {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let pixels = image_batch(&images, &indices, Some((&config, &mut rng)));
        Tensor::<4>::from_data(TensorData::new(pixels, [256, 1, 28, 28]), device)
    };
    group.bench_function("cpu_host_loop", |b| b.iter(|| black_box(host_path(&cpu))));
    let on_cpu = DeviceImages::upload(&images, &cpu);
    group.bench_function("cpu_composed_ops", |b| {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        b.iter(|| black_box(on_cpu.batch(&indices, Some((&config, &mut rng)))))
    });
    if let Some(gpu) = wgpu() {
        let on_gpu = DeviceImages::upload(&images, &gpu);
        group.bench_function("wgpu_host_loop_upload", |b| {
            b.iter(|| {
                let t = host_path(&gpu);
                sync(&gpu);
                black_box(t)
            })
        });
        for (name, wgsl) in [("wgpu_wgsl_kernel", true), ("wgpu_composed_ops", false)] {
            kernels::set_wgsl_enabled(wgsl);
            group.bench_function(name, |b| {
                let mut rng = ChaCha8Rng::seed_from_u64(0);
                b.iter(|| {
                    let t = on_gpu.batch(&indices, Some((&config, &mut rng)));
                    sync(&gpu);
                    black_box(t)
                })
            });
        }
        kernels::set_wgsl_enabled(true);
    }
    group.finish();
}

criterion_group!(benches, gram, augment);
criterion_main!(benches);
