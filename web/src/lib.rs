//! The browser app: load feature sets (or the built-in demo), tune LP / MLP / NMTune heads in a
//! Web Worker, compare runs, and see the spectra before and after. Everything runs in the page
//! from the same core crate as the command line; nothing is uploaded.

pub mod analysis;
mod app;
pub mod backend;
mod chart;
pub mod protocol;
mod worker;

pub use worker::worker_entry;

use wasm_bindgen::prelude::wasm_bindgen;

/// Renders the app into the page; called by index.html (the worker calls `worker_entry`).
#[wasm_bindgen]
pub fn run_app() {
    yew::Renderer::<app::App>::new().render();
}
