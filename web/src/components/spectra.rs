//! Spectra of the chosen evaluation set, with SVE and LSVR tabled and defined on hover.

use nml_core::SpectrumReport;
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use super::chart::{COLOURS, Line, LineChart};
use crate::state::{Action, RunStatus, State, model_letter};

fn spectrum_line(
    report: &SpectrumReport,
    label: String,
    colour: &'static str,
    dashed: bool,
) -> Line {
    let total: f64 = report.singular_values.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let points = report
        .singular_values
        .iter()
        .enumerate()
        .map(|(i, s)| ((i + 1) as f64, s / total))
        .collect();
    Line { label, colour, points, dashed }
}

#[derive(Properties, PartialEq)]
pub struct SpectraProps {
    pub state: UseReducerHandle<State>,
}

/// The chosen set's spectrum for every model, frozen and after the latest MLP/NMTune transform.
#[function_component(Spectra)]
pub fn spectra(props: &SpectraProps) -> Html {
    let state = &props.state;
    let view = state.view.clone();
    let mut shown: Vec<(String, &SpectrumReport)> = Vec::new();
    let mut lines = Vec::new();
    for (i, model) in state.models.iter().enumerate() {
        let loaded = if view == "test" {
            model.test.as_ref()
        } else {
            model.ood.iter().find(|(n, _)| *n == view).map(|(_, l)| l)
        };
        let Some(loaded) = loaded else { continue };
        lines.push(spectrum_line(
            &loaded.spectrum,
            format!("{} frozen", model_letter(i)),
            COLOURS[i],
            false,
        ));
        shown.push((format!("{} frozen", model.label), &loaded.spectrum));
        // The latest finished run with a transform on this model, if it saw this set.
        let after = state.runs.iter().rev().find_map(|run| match &run.status {
            RunStatus::Done(result) if run.model == i && !result.after.is_empty() => {
                let index = if view == "test" {
                    Some(0)
                } else {
                    run.ood_names.iter().position(|n| *n == view).map(|p| p + 1)
                };
                index.and_then(|k| result.after.get(k)).map(|r| (run.id, run.config.method, r))
            }
            _ => None,
        });
        if let Some((id, method, report)) = after {
            lines.push(spectrum_line(
                report,
                format!("{} after {} (run {id})", model_letter(i), method.name()),
                COLOURS[i],
                true,
            ));
            shown.push((format!("{} after {} (run {id})", model.label, method.name()), report));
        }
    }
    let names: Vec<String> = std::iter::once("test".to_string()).chain(state.ood_names()).collect();
    let on_view = {
        let state = state.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            state.dispatch(Action::View(select.value()));
        })
    };
    html! {
        <section id="spectra">
            <h2>{ "Spectra" }</h2>
            <label>{ "set " }
                <select id="spectrum-set" onchange={on_view}>
                    { for names.iter().map(|n| html! { <option value={n.clone()} selected={*n == view}>{ n.clone() }</option> }) }
                </select>
            </label>
            <LineChart id="spectrum" title="singular values s_i / Σ s (log scale), paper mode" x_label="i" {lines} log_y=true />
            <table id="spectrum-metrics">
                <tr>
                    <th>{ "features" }</th>
                    <th title="Singular Value Entropy: -Σ p_i ln p_i with p_i = s_i / Σ s_j (higher: a richer, less concentrated spectrum; the paper reads it on in-domain data)">{ "SVE" }</th>
                    <th title="Largest Singular Value Ratio: s_1 / Σ s_j (higher: one direction dominates; the paper reads it on out-of-domain data)">{ "LSVR" }</th>
                    <th title="-ln(s_1 / Σ s_j), the form the paper plots">{ "-ln LSVR" }</th>
                    <th title="RankMe: exp(SVE), the number of equally strong directions with the same entropy">{ "RankMe" }</th>
                    <th title="alpha-ReQ: the power-law decay λ_k ∝ k^-α of the eigenvalues λ = s², fitted over ranks 6 to 100 as its authors fit it (– where fewer than two such ranks are retained)">{ "α-ReQ" }</th>
                    <th title="NESum: Σ λ_i / λ_1, the stable rank of the features">{ "NESum" }</th>
                    <th title="s_1 / s_r over the retained spectrum (values above s_1 · max(N, D) · ε_f32)">{ "condition" }</th>
                </tr>
                { for shown.iter().map(|(name, r)| {
                    let m = &r.metrics;
                    let optional = |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
                    html! {
                        <tr>
                            <td>{ name.clone() }</td>
                            <td class="sve">{ format!("{:.4}", m.sve) }</td>
                            <td>{ format!("{:.5}", m.lsvr_ratio) }</td>
                            <td>{ format!("{:.4}", m.lsvr_neglog) }</td>
                            <td class="rankme">{ format!("{:.2}", m.rankme) }</td>
                            <td class="alpha-req">{ optional(m.alpha_req, 3) }</td>
                            <td class="nesum">{ optional(m.nesum, 2) }</td>
                            <td class="condition">{ optional(m.condition_number, 1) }</td>
                        </tr>
                    }
                }) }
            </table>
        </section>
    }
}
