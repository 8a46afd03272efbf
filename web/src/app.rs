use nml_core::spectrum::{Preprocess, SpectrumReport};
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::analysis::{Picked, feature_set, spectrum};

#[derive(Clone, PartialEq)]
enum View {
    Empty,
    Working,
    Done { n: usize, d: usize, classes: usize, report: SpectrumReport },
    Failed(String),
}

async fn read(file: web_sys::File) -> Result<Picked, String> {
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("{}: cannot read: {e:?}", file.name()))?;
    Ok(Picked { name: file.name(), bytes: js_sys::Uint8Array::new(&buffer).to_vec() })
}

/// A log-scale polyline of s_i / sum s against i.
fn spectrum_svg(values: &[f64]) -> Html {
    let total: f64 = values.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let logs: Vec<f64> = values.iter().map(|v| v / total).filter(|v| *v > 0.0).map(f64::log10).collect();
    if logs.len() < 2 {
        return html! {};
    }
    let (lo, hi) = logs.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let span = (hi - lo).max(1e-9);
    let (w, h) = (600.0, 300.0);
    let points: String = logs
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1} ", i as f64 / (logs.len() - 1) as f64 * w, (hi - v) / span * h))
        .collect();
    html! {
        <svg id="spectrum" width="620" height="320" viewBox="-10 -10 620 320">
            <polyline points={points} fill="none" stroke="#1f5fbf" stroke-width="2" />
            <text x="0" y="312" font-size="12">{ format!("log10(s_i/Σs) from {hi:.2} to {lo:.2} over {} values", logs.len()) }</text>
        </svg>
    }
}

#[function_component(App)]
pub fn app() -> Html {
    let view = use_state(|| View::Empty);
    let mode = use_state(|| Preprocess::Paper);
    let on_files = {
        let view = view.clone();
        let mode = *mode;
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let Some(list) = input.files() else { return };
            let files: Vec<web_sys::File> = (0..list.length()).filter_map(|i| list.get(i)).collect();
            let view = view.clone();
            view.set(View::Working);
            spawn_local(async move {
                let mut picked = Vec::new();
                for f in files {
                    match read(f).await {
                        Ok(p) => picked.push(p),
                        Err(e) => return view.set(View::Failed(e)),
                    }
                }
                let result = feature_set(&picked).and_then(|set| {
                    spectrum(&set, mode).map(|report| View::Done { n: set.n, d: set.d, classes: set.num_classes, report })
                });
                view.set(result.unwrap_or_else(|e| View::Failed(e.to_string())));
            });
        })
    };
    let on_mode = {
        let mode = mode.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            if let Ok(m) = input.value().parse() {
                mode.set(m);
            }
        })
    };
    let body = match &*view {
        View::Empty => html! { <p>{ "Pick a feature file: one .safetensors, or a features .npy with its labels .npy." }</p> },
        View::Working => html! { <p>{ "Computing…" }</p> },
        View::Failed(message) => html! { <p id="error" class="error">{ message.clone() }</p> },
        View::Done { n, d, classes, report } => html! {
            <div id="result">
                <p>{ format!("{n} samples × {d} features, {classes} classes, {} mode", report.mode.name()) }</p>
                <table>
                    <tr><th title="-Σ p_i ln p_i, p_i = s_i / Σ s_j">{ "SVE" }</th><td id="sve">{ format!("{:.4}", report.sve) }</td></tr>
                    <tr><th title="s_1 / Σ s_j">{ "LSVR" }</th><td id="lsvr">{ format!("{:.5}", report.lsvr_ratio) }</td></tr>
                    <tr><th title="-ln(s_1 / Σ s_j)">{ "-ln LSVR" }</th><td>{ format!("{:.4}", report.lsvr_neglog) }</td></tr>
                    <tr><th title="exp(SVE)">{ "effective rank" }</th><td>{ format!("{:.2}", report.effective_rank) }</td></tr>
                </table>
                { spectrum_svg(&report.singular_values) }
            </div>
        },
    };
    html! {
        <main>
            <h1>{ "nml: feature spectrum" }</h1>
            <label>{ "mode " }
                <select onchange={on_mode}>
                    <option value="paper" selected=true>{ "paper" }</option>
                    <option value="centered">{ "centered" }</option>
                    <option value="raw">{ "raw" }</option>
                </select>
            </label>
            <input id="files" type="file" multiple=true onchange={on_files} />
            { body }
        </main>
    }
}
