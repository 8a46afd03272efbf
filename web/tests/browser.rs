//! WASM tests in headless Chromium (`wasm-pack test --headless --chrome --release web --features webgpu`).
#![cfg(target_arch = "wasm32")]

mod parity;

use nml_core::device::BackendChoice;
use nml_core::spectrum::{GramPrecision, Preprocess, measure_async};
use nml_web::analysis::device;
use nml_web::backend::{probe_webgpu, select};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn tuning_in_the_browser_matches_native() {
    parity::run_parity(&device()).await;
}

/// The same run on WebGPU (web/webdriver.json starts Chromium with WebGPU on its software
/// adapter, so the test fails rather than skips where WebGPU is missing).
#[wasm_bindgen_test]
async fn tuning_on_webgpu_matches_native() {
    let adapter = probe_webgpu()
        .await
        .expect("no WebGPU adapter: Chromium needs --enable-unsafe-webgpu (web/webdriver.json)");
    let device = select(BackendChoice::Wgpu, Some(&adapter)).await.unwrap();
    assert_eq!(device.kind, "wgpu", "{}", device.description);
    let result = parity::run_parity(&device).await;
    assert!(result.report.backend.starts_with("wgpu: WebGPU"), "{}", result.report.backend);
    // The spectrum from nml's WGSL Gram kernel on WebGPU (the unchecked f32 path, so the kernel
    // is what is measured) against the CPU backend's exact one.
    let set = parity::parity_job().test;
    let on_gpu =
        measure_async(&set, Preprocess::Paper, GramPrecision::Fast, &device.device).await.unwrap();
    let on_cpu = measure_async(
        &set,
        Preprocess::Paper,
        GramPrecision::Exact,
        &nml_web::analysis::device().device,
    )
    .await
    .unwrap();
    assert_eq!(
        (on_gpu.method.as_str(), on_cpu.method.as_str()),
        ("gram-f32-device", "gram-f64-host")
    );
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
    assert!(
        rel(on_gpu.metrics.sve, on_cpu.metrics.sve) < 1e-4
            && rel(on_gpu.metrics.lsvr_ratio, on_cpu.metrics.lsvr_ratio) < 1e-4,
        "{} vs {}: SVE {} vs {}, LSVR {} vs {}",
        on_gpu.method,
        on_cpu.method,
        on_gpu.metrics.sve,
        on_cpu.metrics.sve,
        on_gpu.metrics.lsvr_ratio,
        on_cpu.metrics.lsvr_ratio
    );
}
