//! WASM tests in headless Chromium (`wasm-pack test --headless --chrome --release web`).
#![cfg(target_arch = "wasm32")]

mod parity;

use nml_core::device::BackendChoice;
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
    let adapter = probe_webgpu().await.expect("no WebGPU adapter: Chromium needs --enable-unsafe-webgpu (web/webdriver.json)");
    let device = select(BackendChoice::Wgpu, Some(&adapter)).await.unwrap();
    assert_eq!(device.kind, "wgpu", "{}", device.description);
    let result = parity::run_parity(&device).await;
    assert!(result.report.backend.starts_with("wgpu: WebGPU"), "{}", result.report.backend);
}
