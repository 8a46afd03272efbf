//! WASM tests in headless Chromium (`wasm-pack test --headless --chrome --release web`).
#![cfg(target_arch = "wasm32")]

mod parity;

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn tuning_in_the_browser_matches_native() {
    parity::run_parity();
}
