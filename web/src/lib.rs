//! The browser app: pick a feature file, see its spectrum. Everything runs in the page on
//! Burn's CPU backend (WebGPU arrives with the browser-app issue); nothing is uploaded.

mod app;
pub mod analysis;

use wasm_bindgen::prelude::wasm_bindgen;

/// Entry point called by the generated JS glue.
#[wasm_bindgen(start)]
pub fn start() {
    yew::Renderer::<app::App>::new().render();
}
