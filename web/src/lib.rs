//! The browser app: load feature sets (or the built-in demo), tune LP / MLP / NMTune heads in a
//! Web Worker, compare runs, and see the spectra before and after. Everything runs in the page
//! from the same core crate as the command line; nothing is uploaded.
//!
//! `state` holds the page's state and its reducer, `io` the files, the demo and the worker
//! protocol, `worker` both ends of the Web Workers, `analysis` what the page computes, and
//! `components` the views. Only `state`, `io`'s protocol and `analysis` build natively: the
//! rest needs a browser.

pub mod analysis;
#[cfg(target_arch = "wasm32")]
pub mod backend;
#[cfg(target_arch = "wasm32")]
mod components;
#[doc(hidden)]
pub mod fixtures;
pub mod io;
pub mod state;
#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
pub use worker::worker_entry;

/// Renders the app into the page; called by index.html (the worker calls `worker_entry`).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn run_app() {
    yew::Renderer::<components::App>::new().render();
}
