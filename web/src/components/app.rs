//! The page: load feature sets for four models (or the built-in demo), or embed text files
//! with a sentence encoder picked from disk, tune heads in a Web
//! Worker with live curves, compare runs, and overlay spectra before and after NMTune.

use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use super::curves::Curves;
use super::model_panel::{FilesFor, ModelPanel};
use super::runs_table::RunsTable;
use super::spectra::Spectra;
use super::text_panel::TextPanel;
use super::tune_panel::TunePanel;
use crate::backend::probe_webgpu;
use crate::io::{Workers, load_demo, load_files, spawn_worker, start_run};
use crate::state::{Action, State};

#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer(State::default);
    let workers = use_mut_ref(Workers::default);
    {
        let dispatch = state.dispatcher();
        let workers = workers.clone();
        use_effect_with((), move |_| {
            workers.borrow_mut().page = spawn_worker(&dispatch);
            let probed = dispatch.clone();
            spawn_local(async move { probed.dispatch(Action::WebGpu(probe_webgpu().await)) });
            spawn_local(load_demo(dispatch));
        });
    }
    let dispatch = state.dispatcher();
    let on_run = {
        let state = state.clone();
        let workers = workers.clone();
        Callback::from(move |_: MouseEvent| start_run(&state, &mut workers.borrow_mut()))
    };
    let on_files = {
        let state = state.clone();
        let workers = workers.clone();
        Callback::from(move |(files, model, role): FilesFor| {
            load_files(files, model, role, &state, &workers)
        })
    };
    let on_stop = {
        let dispatch = dispatch.clone();
        let workers = workers.clone();
        Callback::from(move |_: MouseEvent| {
            // A worker busy in a training loop reads no messages: end them and start another.
            *workers.borrow_mut() = Workers { page: spawn_worker(&dispatch), webgpu: None };
            dispatch.dispatch(Action::Stop);
        })
    };
    let backend_line = match (state.worker_ready && state.webgpu_probed, &state.webgpu) {
        (false, _) => "Starting the Web Worker…".to_string(),
        (true, Some(adapter)) => format!(
            "Backend: tuning runs in a Web Worker, on WebGPU ({}) or Burn's CPU backend; auto takes WebGPU only on a hardware adapter. Nothing leaves this page.",
            adapter.summary()
        ),
        (true, None) => "Backend: tuning runs in a Web Worker on Burn's CPU backend (this browser offers no WebGPU). Nothing leaves this page.".to_string(),
    };
    html! {
        <main>
            <h1>{ "nml: tune heads on frozen features, watch their spectra" }</h1>
            <p id="backend">{ backend_line }</p>
            if let Some(message) = &state.error { <p id="error" class="error">{ message.clone() }</p> }
            <section id="data">
                <h2>{ "Feature sets" }</h2>
                <p class="hint">{ "Pick or drop files exported by `nml extract` or `nml embed` (one .safetensors, or a features .npy with its labels .npy), or a text file to embed (below)." }</p>
                { for state.models.iter().enumerate().map(|(i, m)| html! { <ModelPanel index={i} model={m.clone()} on_files={on_files.clone()} /> }) }
                <TextPanel state={state.clone()} dispatch={dispatch.clone()} />
            </section>
            <TunePanel state={state.clone()} {on_run} {on_stop} />
            <Curves state={state.clone()} />
            <section id="runs"><h2>{ "Runs" }</h2><RunsTable state={state.clone()} /></section>
            <Spectra state={state.clone()} />
        </main>
    }
}
