//! One training epoch of NMTune and of the linear probe on 50000 x 512 features (the paper's
//! recipe: batch 64, AdamW, per-step cosine). `bench/nmtune_torch.py` is the PyTorch side.

use std::hint::black_box;
use std::time::Duration;

use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use nml_core::tune::{Method, TuneConfig, fit};
use nml_core::bench::teacher_task;

/// The nml binary's allocator (native/Cargo.toml says why), so these figures are what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn epoch(c: &mut Criterion) {
    let quick = std::env::var_os("NML_BENCH_QUICK").is_some();
    let (n, d) = if quick { (2000, 64) } else { (50000, 512) };
    let train = teacher_task(n, d, 10, 0);
    let device = Device::flex();
    let mut group = c.benchmark_group("tune_epoch");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(30));
    for method in [Method::Lp, Method::Nmtune] {
        let config = TuneConfig { epochs: 1, ..TuneConfig::for_method(method) };
        group.bench_function(format!("{}_{n}x{d}", method.name()), |b| {
            b.iter(|| black_box(fit(&train, None, &config, &device, &mut ()).unwrap().history))
        });
    }
    group.finish();
}

criterion_group!(benches, epoch);
criterion_main!(benches);
