//! The page: load feature sets for two models (or the built-in demo), tune heads in a Web
//! Worker with live curves, compare runs, and overlay spectra before and after NMTune. All
//! state lives in one reducer.

use std::rc::Rc;

use nml_core::data::FeatureSet;
use nml_core::device::BackendChoice;
use nml_core::spectrum::SpectrumReport;
use nml_core::tune::{EpochStats, Method, TuneConfig};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{DragEvent, HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::analysis::{Picked, TuneResult, check_size, feature_set, spectrum};
use crate::backend::{WebGpuAdapter, probe_webgpu, wants_webgpu};
use crate::chart::{COLOURS, Line, line_chart};
use crate::protocol::{FromWorker, TuneRequest, encode};
use crate::worker::{TunerWorker, WorkerBuild};

/// A loaded feature set and its spectrum (measured once, on load).
#[derive(Clone)]
pub struct Loaded {
    pub set: Rc<FeatureSet>,
    pub spectrum: Rc<SpectrumReport>,
}

impl PartialEq for Loaded {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.set, &other.set)
    }
}

/// The feature sets of one pre-trained model.
#[derive(Clone, PartialEq, Default)]
pub struct Model {
    pub label: String,
    pub train: Option<Loaded>,
    pub test: Option<Loaded>,
    pub ood: Vec<(String, Loaded)>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Role {
    Train,
    Test,
    Ood,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test (ID)",
            Self::Ood => "OOD",
        }
    }
}

#[derive(Clone, PartialEq)]
pub enum RunStatus {
    Running,
    Done(Rc<TuneResult>),
    Stopped,
    Failed(String),
}

#[derive(Clone, PartialEq)]
pub struct Run {
    pub id: u32,
    pub model: usize,
    pub model_label: String,
    pub config: TuneConfig,
    pub ood_names: Vec<String>,
    /// What was asked for; the report says what ran.
    pub backend: BackendChoice,
    pub epochs: Vec<EpochStats>,
    pub status: RunStatus,
}

#[derive(Clone, PartialEq)]
pub struct State {
    pub models: Vec<Model>,
    pub runs: Vec<Run>,
    pub error: Option<String>,
    /// Whether the CPU worker is up and answering jobs.
    pub worker_ready: bool,
    /// Whether the page has asked the browser for a WebGPU adapter yet.
    pub webgpu_probed: bool,
    /// The WebGPU adapter the browser offers, if any.
    pub webgpu: Option<WebGpuAdapter>,
    /// Where the next run trains.
    pub backend: BackendChoice,
    pub config: TuneConfig,
    /// The model the next run tunes on.
    pub model: usize,
    /// The set whose spectrum is drawn: `test` or an OOD set's name.
    pub view: String,
}

impl Default for State {
    fn default() -> Self {
        let config = TuneConfig { epochs: 30, val_fraction: 0.1, ..TuneConfig::for_method(Method::Nmtune) };
        Self {
            models: vec![Model { label: "model A".into(), ..Model::default() }, Model { label: "model B".into(), ..Model::default() }],
            runs: Vec::new(),
            error: None,
            worker_ready: false,
            webgpu_probed: false,
            webgpu: None,
            backend: BackendChoice::Auto,
            config,
            model: 0,
            view: "test".into(),
        }
    }
}

pub enum Action {
    Load { model: usize, role: Role, name: String, loaded: Loaded },
    Label { model: usize, label: String },
    Error(String),
    Start(Run),
    Worker(FromWorker),
    Stop,
    Config(TuneConfig),
    Backend(BackendChoice),
    WebGpu(Option<WebGpuAdapter>),
    Model(usize),
    View(String),
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            Action::Load { model, role, name, loaded } => {
                let m = &mut s.models[model];
                match role {
                    Role::Train => m.train = Some(loaded),
                    Role::Test => m.test = Some(loaded),
                    Role::Ood => match m.ood.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = loaded,
                        None => m.ood.push((name, loaded)),
                    },
                }
                s.error = None;
            }
            Action::Label { model, label } => s.models[model].label = label,
            Action::Error(message) => s.error = Some(message),
            Action::Start(run) => {
                s.runs.push(run);
                s.error = None;
            }
            Action::Worker(message) => match message {
                FromWorker::Ready => s.worker_ready = true,
                FromWorker::Epoch { job, stats } => {
                    if let Some(run) = s.runs.iter_mut().find(|r| r.id == job && r.status == RunStatus::Running) {
                        run.epochs.push(stats);
                    }
                }
                FromWorker::Done { job, result } => {
                    if let Some(run) = s.runs.iter_mut().find(|r| r.id == job && r.status == RunStatus::Running) {
                        run.status = RunStatus::Done(Rc::new(*result));
                    }
                }
                FromWorker::Failed { job, message } => match s.runs.iter_mut().find(|r| r.id == job && r.status == RunStatus::Running) {
                    Some(run) => run.status = RunStatus::Failed(message),
                    // Not about one job (a worker that could not load or read a job): whatever
                    // was running there will not finish.
                    None => {
                        for run in s.runs.iter_mut().filter(|r| r.status == RunStatus::Running) {
                            run.status = RunStatus::Failed(message.clone());
                        }
                        s.error = Some(message);
                    }
                },
            },
            Action::Stop => {
                s.worker_ready = false;
                for run in s.runs.iter_mut().filter(|r| r.status == RunStatus::Running) {
                    run.status = RunStatus::Stopped;
                }
            }
            Action::Config(config) => s.config = config,
            Action::Backend(choice) => s.backend = choice,
            Action::WebGpu(adapter) => {
                s.webgpu_probed = true;
                s.webgpu = adapter;
            }
            Action::Model(i) => s.model = i,
            Action::View(v) => s.view = v,
        }
        Rc::new(s)
    }
}

type Dispatch = UseReducerDispatcher<State>;

/// The page's workers: one on its own build for CPU runs, and one on the WebGPU build, started
/// when a run first wants WebGPU.
#[derive(Default)]
struct Workers {
    page: Option<TunerWorker>,
    webgpu: Option<TunerWorker>,
}

fn spawn_worker(build: WorkerBuild, dispatch: &Dispatch) -> Option<TunerWorker> {
    let replies = dispatch.clone();
    match TunerWorker::spawn(build, Callback::from(move |m| replies.dispatch(Action::Worker(m)))) {
        Ok(worker) => Some(worker),
        Err(e) => {
            dispatch.dispatch(Action::Error(e));
            None
        }
    }
}

async fn read_file(file: web_sys::File) -> Result<Picked, String> {
    check_size(&file.name(), file.size()).map_err(|e| e.to_string())?;
    let buffer = JsFuture::from(file.array_buffer()).await.map_err(|e| format!("{}: cannot read: {e:?}", file.name()))?;
    Ok(Picked { name: file.name(), bytes: js_sys::Uint8Array::new(&buffer).to_vec() })
}

fn load(picked: &[Picked]) -> Result<Loaded, String> {
    let set = feature_set(picked).map_err(|e| e.to_string())?;
    let report = spectrum(&set).map_err(|e| e.to_string())?;
    Ok(Loaded { set: Rc::new(set), spectrum: Rc::new(report) })
}

/// `rotated-30.safetensors` -> `rotated-30`.
fn stem(name: &str) -> String {
    name.rsplit_once('.').map_or(name, |(s, _)| s).to_string()
}

/// Reads picked or dropped files into one set for `role` of `model`; a bad file leaves every
/// loaded set as it was and shows why.
fn load_files(files: Vec<web_sys::File>, model: usize, role: Role, dispatch: Dispatch) {
    spawn_local(async move {
        let mut picked = Vec::new();
        for file in files {
            match read_file(file).await {
                Ok(p) => picked.push(p),
                Err(e) => return dispatch.dispatch(Action::Error(e)),
            }
        }
        let name = picked.first().map(|p| stem(&p.name)).unwrap_or_default();
        match load(&picked) {
            Ok(loaded) => dispatch.dispatch(Action::Load { model, role, name, loaded }),
            Err(e) => dispatch.dispatch(Action::Error(e)),
        }
    });
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url)).await.map_err(|e| format!("{url}: {e:?}"))?.unchecked_into();
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(|e| format!("{url}: {e:?}"))?).await.map_err(|e| format!("{url}: {e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// The demo: features of the project's own quick-preset ResNets, pre-trained on clean and on
/// 30%-noisy labels, for MNIST (train, test) and MNIST rotated by 30 degrees (OOD).
pub const DEMO_MODELS: [(&str, &str); 2] = [("noise00", "clean pre-training (demo)"), ("noise30", "30% label noise (demo)")];
pub const DEMO_OOD: &str = "rotated-30";

async fn load_demo(dispatch: Dispatch) {
    for (i, (file, label)) in DEMO_MODELS.iter().enumerate() {
        for (role, part) in [(Role::Train, "train"), (Role::Test, "test"), (Role::Ood, DEMO_OOD)] {
            let name = format!("demo/{file}-{part}.safetensors");
            let loaded = fetch_bytes(&name).await.and_then(|bytes| load(&[Picked { name: name.clone(), bytes }]));
            match loaded {
                Ok(loaded) => dispatch.dispatch(Action::Load { model: i, role, name: part.to_string(), loaded }),
                Err(e) => return dispatch.dispatch(Action::Error(format!("demo not loaded: {e}"))),
            }
        }
        dispatch.dispatch(Action::Label { model: i, label: label.to_string() });
    }
}

fn describe(loaded: &Loaded) -> String {
    let s = &loaded.set;
    format!("{}: N {} × D {}, {} classes", s.name, s.n, s.d, s.num_classes)
}

fn file_zone(model: usize, role: Role, dispatch: &Dispatch) -> Html {
    let on_change = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let Some(list) = input.files() else { return };
            let files = (0..list.length()).filter_map(|i| list.get(i)).collect();
            load_files(files, model, role, dispatch.clone());
            input.set_value("");
        })
    };
    let on_drop = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            let Some(list) = e.data_transfer().and_then(|d| d.files()) else { return };
            let files = (0..list.length()).filter_map(|i| list.get(i)).collect();
            load_files(files, model, role, dispatch.clone());
        })
    };
    let id = format!("file-{model}-{}", match role { Role::Train => "train", Role::Test => "test", Role::Ood => "ood" });
    html! {
        <label class="drop" ondragover={Callback::from(|e: DragEvent| e.prevent_default())} ondrop={on_drop}>
            { format!("{} ", role.name()) }
            <input id={id} type="file" multiple=true onchange={on_change} />
        </label>
    }
}

fn model_panel(i: usize, model: &Model, dispatch: &Dispatch) -> Html {
    let lines: Vec<String> = model.train.iter().chain(model.test.iter()).chain(model.ood.iter().map(|(_, l)| l)).map(describe).collect();
    html! {
        <section class="model">
            <h3>{ format!("{}: {}", ["A", "B"][i], model.label) }</h3>
            <div class="zones">{ file_zone(i, Role::Train, dispatch) }{ file_zone(i, Role::Test, dispatch) }{ file_zone(i, Role::Ood, dispatch) }</div>
            <ul class="sets">{ for lines.into_iter().map(|l| html! { <li>{ l }</li> }) }</ul>
        </section>
    }
}

/// A labelled number field that updates one config field, or reports why it cannot.
fn number_field(label: &str, title: &str, value: String, set: impl Fn(&mut TuneConfig, &str) -> bool + 'static, state: &UseReducerHandle<State>) -> Html {
    let onchange = {
        let state = state.clone();
        let label = label.to_string();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let mut config = state.config.clone();
            if set(&mut config, input.value().trim()) && config.validate().is_ok() {
                state.dispatch(Action::Config(config));
            } else {
                state.dispatch(Action::Error(format!("{label}: {:?} is not a valid value", input.value())));
            }
        })
    };
    html! {
        <label title={title.to_string()}>{ format!("{label} ") }<input id={format!("cfg-{label}")} size="7" value={value} {onchange} /></label>
    }
}

macro_rules! field {
    ($state:expr, $label:literal, $title:literal, $field:ident) => {
        number_field($label, $title, $state.config.$field.to_string(), |c, v| v.parse().map(|x| c.$field = x).is_ok(), $state)
    };
}

fn spectrum_line(report: &SpectrumReport, label: String, colour: &'static str, dashed: bool) -> Line {
    let total: f64 = report.singular_values.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let points = report.singular_values.iter().enumerate().map(|(i, s)| ((i + 1) as f64, s / total)).collect();
    Line { label, colour, points, dashed }
}

fn spectra_panel(state: &UseReducerHandle<State>) -> Html {
    let view = state.view.clone();
    let mut shown: Vec<(String, &SpectrumReport)> = Vec::new();
    let mut lines = Vec::new();
    for (i, model) in state.models.iter().enumerate() {
        let loaded = if view == "test" { model.test.as_ref() } else { model.ood.iter().find(|(n, _)| *n == view).map(|(_, l)| l) };
        let Some(loaded) = loaded else { continue };
        lines.push(spectrum_line(&loaded.spectrum, format!("{} frozen", ["A", "B"][i]), COLOURS[i], false));
        shown.push((format!("{} frozen", model.label), &loaded.spectrum));
        // The latest finished run with a transform on this model, if it saw this set.
        let after = state.runs.iter().rev().find_map(|run| match &run.status {
            RunStatus::Done(result) if run.model == i && !result.after.is_empty() => {
                let index = if view == "test" { Some(0) } else { run.ood_names.iter().position(|n| *n == view).map(|p| p + 1) };
                index.and_then(|k| result.after.get(k)).map(|r| (run.id, run.config.method, r))
            }
            _ => None,
        });
        if let Some((id, method, report)) = after {
            lines.push(spectrum_line(report, format!("{} after {} (run {id})", ["A", "B"][i], method.name()), COLOURS[i], true));
            shown.push((format!("{} after {} (run {id})", model.label, method.name()), report));
        }
    }
    let names: Vec<String> = std::iter::once("test".to_string())
        .chain(state.models.iter().flat_map(|m| m.ood.iter().map(|(n, _)| n.clone())))
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
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
            { line_chart("spectrum", "singular values s_i / Σ s (log scale), paper mode", "i", &lines, true) }
            <table id="spectrum-metrics">
                <tr>
                    <th>{ "features" }</th>
                    <th title="Singular Value Entropy: -Σ p_i ln p_i with p_i = s_i / Σ s_j (higher: a richer, less concentrated spectrum; the paper reads it on in-domain data)">{ "SVE" }</th>
                    <th title="Largest Singular Value Ratio: s_1 / Σ s_j (higher: one direction dominates; the paper reads it on out-of-domain data)">{ "LSVR" }</th>
                    <th title="-ln(s_1 / Σ s_j), the form the paper plots">{ "-ln LSVR" }</th>
                </tr>
                { for shown.iter().map(|(name, r)| html! {
                    <tr><td>{ name.clone() }</td><td class="sve">{ format!("{:.4}", r.sve) }</td><td>{ format!("{:.5}", r.lsvr_ratio) }</td><td>{ format!("{:.4}", r.lsvr_neglog) }</td></tr>
                }) }
            </table>
        </section>
    }
}

fn curves_panel(state: &State) -> Html {
    let Some(run) = state.runs.last() else { return html! {} };
    let epochs = |f: fn(&EpochStats) -> Option<f64>| -> Vec<(f64, f64)> { run.epochs.iter().filter_map(|e| f(e).map(|v| (e.epoch as f64, v))).collect() };
    let losses = [
        Line { label: "loss".into(), colour: COLOURS[0], points: epochs(|e| Some(e.loss)), dashed: false },
        Line { label: "cross-entropy".into(), colour: COLOURS[1], points: epochs(|e| Some(e.ce)), dashed: true },
    ];
    let accuracy = [Line { label: "validation accuracy".into(), colour: COLOURS[2], points: epochs(|e| e.val_accuracy), dashed: false }];
    html! {
        <section id="curves">
            <h2>{ format!("Run {} ({} on {}): epoch {} of {}", run.id, run.config.method.name(), run.model_label, run.epochs.len(), run.config.epochs) }</h2>
            { line_chart("loss-curve", "training loss", "epoch", &losses, false) }
            { line_chart("accuracy-curve", "validation accuracy (set val fraction > 0)", "epoch", &accuracy, false) }
        </section>
    }
}

fn results_table(state: &State) -> Html {
    let ood_names: Vec<String> = state.runs.iter().flat_map(|r| r.ood_names.clone()).fold(Vec::new(), |mut v, n| {
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

#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer(State::default);
    let workers = use_mut_ref(Workers::default);
    {
        let dispatch = state.dispatcher();
        let workers = workers.clone();
        use_effect_with((), move |_| {
            workers.borrow_mut().page = spawn_worker(WorkerBuild::Page, &dispatch);
            let probed = dispatch.clone();
            spawn_local(async move { probed.dispatch(Action::WebGpu(probe_webgpu().await)) });
            spawn_local(load_demo(dispatch));
        });
    }
    let dispatch = state.dispatcher();
    let running = state.runs.iter().any(|r| r.status == RunStatus::Running);
    let on_run = {
        let state = state.clone();
        let workers = workers.clone();
        Callback::from(move |_: MouseEvent| {
            let model = &state.models[state.model];
            let (Some(train), Some(test)) = (&model.train, &model.test) else {
                return state.dispatch(Action::Error(format!("{}: load a training and a test set first", model.label)));
            };
            let id = state.runs.len() as u32 + 1;
            let ood_names: Vec<String> = model.ood.iter().map(|(n, _)| n.clone()).collect();
            let request = TuneRequest {
                job: id,
                config: state.config.clone(),
                train_name: train.set.name.clone(),
                test_name: test.set.name.clone(),
                ood_names: ood_names.clone(),
                backend: state.backend,
                webgpu: state.webgpu.clone(),
            };
            let sets: Vec<&FeatureSet> = [&*train.set, &*test.set].into_iter().chain(model.ood.iter().map(|(_, l)| &*l.set)).collect();
            let mut workers = workers.borrow_mut();
            let worker = if wants_webgpu(state.backend, state.webgpu.as_ref()) {
                if workers.webgpu.is_none() {
                    workers.webgpu = spawn_worker(WorkerBuild::WebGpu, &state.dispatcher());
                }
                workers.webgpu.as_ref()
            } else {
                workers.page.as_ref()
            };
            let sent = encode(&request, &sets).map_err(|e| e.to_string()).and_then(|(json, bytes)| match worker {
                Some(w) => w.send(json, bytes),
                None => Err("the Web Worker is not running".to_string()),
            });
            match sent {
                Ok(()) => state.dispatch(Action::Start(Run {
                    id,
                    model: state.model,
                    model_label: model.label.clone(),
                    config: state.config.clone(),
                    ood_names,
                    backend: state.backend,
                    epochs: Vec::new(),
                    status: RunStatus::Running,
                })),
                Err(e) => state.dispatch(Action::Error(e)),
            }
        })
    };
    let on_stop = {
        let dispatch = dispatch.clone();
        let workers = workers.clone();
        Callback::from(move |_: MouseEvent| {
            // A worker busy in a training loop reads no messages: end them and start another.
            *workers.borrow_mut() = Workers { page: spawn_worker(WorkerBuild::Page, &dispatch), webgpu: None };
            dispatch.dispatch(Action::Stop);
        })
    };
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
            let config = TuneConfig { epochs: c.epochs, batch_size: c.batch_size, seed: c.seed, data_fraction: c.data_fraction, val_fraction: c.val_fraction, ..TuneConfig::for_method(method) };
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
                <p class="hint">{ "Pick or drop files exported by `nml extract` (one .safetensors, or a features .npy with its labels .npy)." }</p>
                { for state.models.iter().enumerate().map(|(i, m)| model_panel(i, m, &dispatch)) }
            </section>
            <section id="tune">
                <h2>{ "Tune" }</h2>
                <label>{ "model " }
                    <select id="model" onchange={on_model}>
                        { for state.models.iter().enumerate().map(|(i, m)| html! { <option value={i.to_string()} selected={i == state.model}>{ format!("{}: {}", ["A", "B"][i], m.label) }</option> }) }
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
                    { field!(&state, "epochs", "passes over the training set", epochs) }
                    { field!(&state, "lr", "peak AdamW learning rate (cosine to 0)", lr) }
                    { field!(&state, "batch", "batch size", batch_size) }
                    { field!(&state, "seed", "seeds the head's weights, the batches and the data subsets", seed) }
                    { field!(&state, "data", "share of each class of the training set used, in (0, 1]", data_fraction) }
                    { field!(&state, "val", "share of the training set held out for the live validation accuracy", val_fraction) }
                    if method == Method::Nmtune {
                        { field!(&state, "w_mse", "consistency: MSE between normalised Z and F", w_mse) }
                        { field!(&state, "w_cov", "covariance: off-diagonal batch covariance of Z", w_cov) }
                        { field!(&state, "w_svd", "dominant singular values: the top-k share of Z's spectrum (maximised)", w_svd) }
                        { field!(&state, "k", "how many top singular values the svd term covers", top_k) }
                    }
                </div>
                <button id="run" onclick={on_run} disabled={running || !state.worker_ready || !state.webgpu_probed}>{ "Run" }</button>
                <button id="stop" onclick={on_stop} disabled={!running}>{ "Stop" }</button>
            </section>
            { curves_panel(&state) }
            <section id="runs"><h2>{ "Runs" }</h2>{ results_table(&state) }</section>
            { spectra_panel(&state) }
        </main>
    }
}
