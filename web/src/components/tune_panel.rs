//! The tune section: which model, method and backend, every setting, Run and Stop.

use nml_core::BackendChoice;
use nml_core::tune::{Method, TuneConfig};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::state::{Action, State, model_letter};

/// A labelled number field that updates one config field, or reports why it cannot.
fn number_field(
    label: &str,
    title: &str,
    value: String,
    set: impl Fn(&mut TuneConfig, &str) -> bool + 'static,
    state: &UseReducerHandle<State>,
) -> Html {
    let onchange = {
        let state = state.clone();
        let label = label.to_string();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let mut config = state.config.clone();
            if set(&mut config, input.value().trim()) && config.validate().is_ok() {
                state.dispatch(Action::Config(config));
            } else {
                state.dispatch(Action::Error(format!(
                    "{label}: {:?} is not a valid value",
                    input.value()
                )));
            }
        })
    };
    html! {
        <label title={title.to_string()}>{ format!("{label} ") }<input id={format!("cfg-{label}")} size="7" value={value} {onchange} /></label>
    }
}

macro_rules! field {
    ($state:expr, $label:literal, $title:literal, $field:ident) => {
        number_field(
            $label,
            $title,
            $state.config.$field.to_string(),
            |c, v| v.parse().map(|x| c.$field = x).is_ok(),
            $state,
        )
    };
}

#[derive(Properties, PartialEq)]
pub struct TunePanelProps {
    pub state: UseReducerHandle<State>,
    pub on_run: Callback<MouseEvent>,
    pub on_stop: Callback<MouseEvent>,
}

#[function_component(TunePanel)]
pub fn tune_panel(props: &TunePanelProps) -> Html {
    let TunePanelProps { state, on_run, on_stop } = props;
    let running = state.running();
    let on_method = {
        let state = state.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            let method = match select.value().as_str() {
                "lp" => Method::Lp,
                "mlp" => Method::Mlp,
                _ => Method::Nmtune,
            };
            let c = &state.config;
            let config = TuneConfig {
                epochs: c.epochs,
                batch_size: c.batch_size,
                seed: c.seed,
                data_fraction: c.data_fraction,
                val_fraction: c.val_fraction,
                ..TuneConfig::for_method(method)
            };
            state.dispatch(Action::Config(config));
        })
    };
    let on_model = {
        let state = state.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            state.dispatch(Action::Model(select.value().parse().unwrap_or(0)));
        })
    };
    let on_backend = {
        let state = state.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            state.dispatch(Action::Backend(select.value().parse().unwrap_or_default()));
        })
    };
    let method = state.config.method;
    html! {
            <section id="tune">
                <h2>{ "Tune" }</h2>
                <label>{ "model " }
                    <select id="model" onchange={on_model}>
                        { for state.models.iter().enumerate().map(|(i, m)| html! { <option value={i.to_string()} selected={i == state.model}>{ format!("{}: {}", model_letter(i), m.label) }</option> }) }
                    </select>
                </label>
                <label>{ " method " }
                    <select id="method" onchange={on_method}>
                        { for [Method::Lp, Method::Mlp, Method::Nmtune].iter().map(|m| html! { <option value={m.name()} selected={*m == method}>{ m.name() }</option> }) }
                    </select>
                </label>
                <label title="auto: WebGPU on a hardware adapter, else the CPU backend">{ " backend " }
                    <select id="backend-choice" onchange={on_backend}>
                        { for [(BackendChoice::Auto, "auto"), (BackendChoice::Wgpu, "webgpu"), (BackendChoice::Cpu, "cpu")].iter().map(|(b, name)| html! {
                            <option value={b.to_string()} selected={*b == state.backend}>{ *name }</option>
                        }) }
                    </select>
                </label>
                <div class="fields">
                    { field!(state, "epochs", "passes over the training set", epochs) }
                    { field!(state, "lr", "peak AdamW learning rate (cosine to 0)", lr) }
                    { field!(state, "batch", "batch size", batch_size) }
                    { field!(state, "seed", "seeds the head's weights, the batches and the data subsets", seed) }
                    { field!(state, "data", "share of each class of the training set used, in (0, 1]", data_fraction) }
                    { field!(state, "val", "share of the training set held out for the live validation accuracy", val_fraction) }
                    if method == Method::Nmtune {
                        { field!(state, "w_mse", "consistency: MSE between normalised Z and F", w_mse) }
                        { field!(state, "w_cov", "covariance: off-diagonal batch covariance of Z", w_cov) }
                        { field!(state, "w_svd", "dominant singular values: the top-k share of Z's spectrum (maximised)", w_svd) }
                        { field!(state, "k", "how many top singular values the svd term covers", top_k) }
                    }
                </div>
                <button id="run" onclick={on_run.clone()} disabled={running || !state.worker_ready || !state.webgpu_probed}>{ "Run" }</button>
                <button id="stop" onclick={on_stop.clone()} disabled={!running}>{ "Stop" }</button>
            </section>
    }
}
