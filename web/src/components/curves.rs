//! The latest run's loss and validation-accuracy curves, growing as its epochs arrive.

use nml_core::tune::EpochStats;
use yew::prelude::*;

use super::chart::{COLOURS, Line, LineChart};
use crate::state::State;

#[derive(Properties, PartialEq)]
pub struct CurvesProps {
    pub state: UseReducerHandle<State>,
}

#[function_component(Curves)]
pub fn curves(props: &CurvesProps) -> Html {
    let Some(run) = props.state.runs.last() else {
        return html! {};
    };
    let epochs = |f: fn(&EpochStats) -> Option<f64>| -> Vec<(f64, f64)> {
        run.epochs.iter().filter_map(|e| f(e).map(|v| (e.epoch as f64, v))).collect()
    };
    let losses = vec![
        Line {
            label: "loss".into(),
            colour: COLOURS[0],
            points: epochs(|e| Some(e.loss)),
            dashed: false,
        },
        Line {
            label: "cross-entropy".into(),
            colour: COLOURS[1],
            points: epochs(|e| Some(e.ce)),
            dashed: true,
        },
    ];
    let accuracy = vec![Line {
        label: "validation accuracy".into(),
        colour: COLOURS[2],
        points: epochs(|e| e.val_accuracy),
        dashed: false,
    }];
    html! {
        <section id="curves">
            <h2>{ format!("Run {} ({} on {}): epoch {} of {}", run.id, run.config.method.name(), run.model_label, run.epochs.len(), run.config.epochs) }</h2>
            <LineChart id="loss-curve" title="training loss" x_label="epoch" lines={losses} />
            <LineChart id="accuracy-curve" title="validation accuracy (set val fraction > 0)" x_label="epoch" lines={accuracy} />
        </section>
    }
}
