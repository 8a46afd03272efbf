//! Spectrum cost in each precision, the exact path's Gram alone, and the eigenvalue solver
//! choice (faer vs nalgebra). `bench/compare.py` puts these next to numpy on the same machine.

use std::hint::black_box;
use std::time::Duration;

use burn::tensor::Device;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use nml_core::bench::{synthetic_feature_set, synthetic_features as features};
use nml_core::spectrum::{Precision, Preprocess, gram_f64, measure};

/// The nml binary's allocator (native/Cargo.toml says why), so these figures are what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn sizes() -> Vec<(usize, usize)> {
    // NML_BENCH_QUICK=1 shrinks the run for a smoke test.
    if std::env::var_os("NML_BENCH_QUICK").is_some() {
        vec![(2000, 128)]
    } else {
        vec![(20000, 1024), (50000, 2048)]
    }
}

fn spectrum(c: &mut Criterion) {
    let device = Device::flex();
    let mut group = c.benchmark_group("spectrum");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(20));
    for (n, d) in sizes() {
        let set = synthetic_feature_set(n, d, 0);
        let id = format!("{n}x{d}");
        for (name, precision) in [("paper_auto", Precision::Auto), ("paper_fast", Precision::Fast), ("paper_exact", Precision::Exact)] {
            group.bench_function(BenchmarkId::new(name, &id), |b| {
                b.iter(|| black_box(measure(&set, Preprocess::Paper, precision, &device).unwrap()))
            });
        }
        // The exact path's Gram alone (f64, faer), without preprocessing or eigenvalues.
        group.bench_function(BenchmarkId::new("gram_f64_host_only", &id), |b| b.iter(|| black_box(gram_f64(&set.features, n, d))));
    }
    group.finish();
}

fn eigensolvers(c: &mut Criterion) {
    let mut group = c.benchmark_group("eigenvalues");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    let sizes: &[usize] = if std::env::var_os("NML_BENCH_QUICK").is_some() { &[128] } else { &[512, 1024, 2048] };
    for &m in sizes {
        let x = features(4 * m, m, 1);
        let gram = gram_f64(&x, 4 * m, m);
        let as_nalgebra = nalgebra::DMatrix::<f64>::from_fn(m, m, |r, c| gram[(r, c)]);
        group.bench_function(BenchmarkId::new("faer_self_adjoint_eigenvalues", m), |b| {
            b.iter(|| black_box(gram.self_adjoint_eigenvalues(faer::Side::Lower).unwrap()))
        });
        group.bench_function(BenchmarkId::new("nalgebra_symmetric_eigenvalues", m), |b| {
            b.iter(|| black_box(as_nalgebra.clone().symmetric_eigenvalues()))
        });
    }
    group.finish();
}

criterion_group!(benches, spectrum, eigensolvers);
criterion_main!(benches);
