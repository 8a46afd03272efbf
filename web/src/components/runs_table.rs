//! Every run so far, side by side: settings, status, accuracy in and out of domain, backend.

use nml_core::tune::Method;
use yew::prelude::*;

use crate::state::{RunStatus, State};

#[derive(Properties, PartialEq)]
pub struct RunsTableProps {
    pub state: UseReducerHandle<State>,
}

#[function_component(RunsTable)]
pub fn runs_table(props: &RunsTableProps) -> Html {
    let state = &props.state;
    let ood_names: Vec<String> =
        state.runs.iter().flat_map(|r| r.ood_names.clone()).fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    html! {
        <table id="results">
            <tr>
                <th>{ "run" }</th><th>{ "model" }</th><th>{ "method" }</th><th>{ "settings" }</th><th>{ "status" }</th>
                <th>{ "ID accuracy" }</th>
                { for ood_names.iter().map(|n| html! { <th>{ format!("OOD {n}") }</th> }) }
                <th>{ "seconds" }</th><th>{ "backend" }</th>
            </tr>
            { for state.runs.iter().map(|run| {
                let c = &run.config;
                let settings = format!("{} epochs, lr {}, batch {}, seed {}, data {}%, val {}%{}", c.epochs, c.lr, c.batch_size, c.seed, c.data_fraction * 100.0, c.val_fraction * 100.0,
                    if c.method == Method::Nmtune { format!(", mse {} cov {} svd {} k {}", c.w_mse, c.w_cov, c.w_svd, c.top_k) } else { String::new() });
                let (status, result) = match &run.status {
                    RunStatus::Running => (format!("running, epoch {}", run.epochs.len()), None),
                    RunStatus::Done(r) => ("done".to_string(), Some(r.clone())),
                    RunStatus::Stopped => (format!("stopped after {} epochs", run.epochs.len()), None),
                    RunStatus::Failed(m) => (format!("failed: {m}"), None),
                };
                let pct = |v: Option<f64>| v.map_or("–".to_string(), |a| format!("{:.2}%", a * 100.0));
                html! {
                    <tr class={classes!(matches!(run.status, RunStatus::Done(_)).then_some("done"))}>
                        <td>{ run.id }</td><td>{ run.model_label.clone() }</td><td>{ c.method.name() }</td><td>{ settings }</td><td>{ status }</td>
                        <td id={format!("acc-{}", run.id)}>{ pct(result.as_ref().map(|r| r.report.accuracy)) }</td>
                        { for ood_names.iter().map(|n| html! { <td>{ pct(result.as_ref().and_then(|r| r.report.ood.get(n).copied())) }</td> }) }
                        <td>{ result.as_ref().map_or(String::new(), |r| format!("{:.1}", r.report.seconds)) }</td>
                        <td class="backend">{ result.as_ref().map_or(run.backend.to_string(), |r| r.report.backend.clone()) }</td>
                    </tr>
                }
            }) }
        </table>
    }
}
