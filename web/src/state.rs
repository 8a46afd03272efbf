//! The page's state and the one reducer that changes it. Everything the page shows is read
//! from [`State`]; every change is an [`Action`], so the page's behaviour is tested natively
//! below without a browser.

use std::rc::Rc;

use nml_core::FeatureSet;
use nml_core::device::BackendChoice;
use nml_core::spectrum::SpectrumReport;
use nml_core::tune::{EpochStats, Method, TuneConfig};

use crate::analysis::{ModelFolder, TuneResult};
use crate::io::FromWorker;
use crate::io::WebGpuAdapter;

/// A loaded feature set and its spectrum (measured once, on load).
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug, PartialEq, Default)]
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
    /// The part of an input's id that names the role.
    pub fn key(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
            Self::Ood => "ood",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test (ID)",
            Self::Ood => "OOD",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    Running,
    Done(Rc<TuneResult>),
    Stopped,
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
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

/// A text file being embedded in the worker, for `role` of model `model`.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    pub job: u32,
    pub model: usize,
    pub role: Role,
    /// The file's name without its extension: the set's name in the page.
    pub name: String,
    pub done: usize,
    pub total: usize,
}

/// A finished embedding, as the page reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedded {
    pub name: String,
    pub texts: usize,
    pub seconds: f64,
}

/// The model folder picked for embedding texts (compared by identity: it is large).
#[derive(Clone, Debug)]
pub struct PickedModel(pub Rc<ModelFolder>);

impl PartialEq for PickedModel {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// Job ids of embeddings count from here, apart from the runs' (1, 2, ...).
pub const EMBED_JOBS: u32 = 1 << 20;

#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub models: Vec<Model>,
    /// The sentence encoder's folder that text files are embedded with.
    pub text_model: Option<PickedModel>,
    /// Text files being embedded, in the order they were picked.
    pub embedding: Vec<Embedding>,
    /// The last finished embedding.
    pub embedded: Option<Embedded>,
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
        let config =
            TuneConfig { epochs: 30, val_fraction: 0.1, ..TuneConfig::for_method(Method::Nmtune) };
        Self {
            models: vec![
                Model { label: "model A".into(), ..Model::default() },
                Model { label: "model B".into(), ..Model::default() },
                Model { label: "model C".into(), ..Model::default() },
                Model { label: "model D".into(), ..Model::default() },
            ],
            text_model: None,
            embedding: Vec::new(),
            embedded: None,
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
    Load {
        model: usize,
        role: Role,
        name: String,
        loaded: Loaded,
    },
    Label {
        model: usize,
        label: String,
    },
    Error(String),
    Start(Run),
    Worker(FromWorker),
    Stop,
    Config(TuneConfig),
    Backend(BackendChoice),
    WebGpu(Option<WebGpuAdapter>),
    Model(usize),
    View(String),
    TextModel(PickedModel),
    /// A text file was sent to the worker to be embedded.
    Embed(Embedding),
}

#[cfg(target_arch = "wasm32")]
impl yew::Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        Rc::new(self.apply(action))
    }
}

/// The letter a model slot is shown by: A, B, C.
pub fn model_letter(index: usize) -> char {
    char::from(b'A' + (index % 26) as u8)
}

impl State {
    /// The state after `action`: the page's one reducer.
    pub fn apply(&self, action: Action) -> State {
        let mut s = self.clone();
        match action {
            Action::Load { model, role, name, loaded } => s.load(model, role, name, loaded),
            Action::Label { model, label } => s.models[model].label = label,
            Action::Error(message) => s.error = Some(message),
            Action::Start(run) => {
                s.runs.push(run);
                s.error = None;
            }
            Action::Worker(message) => match message {
                FromWorker::Ready => s.worker_ready = true,
                FromWorker::Epoch { job, stats } => {
                    if let Some(run) =
                        s.runs.iter_mut().find(|r| r.id == job && r.status == RunStatus::Running)
                    {
                        run.epochs.push(stats);
                    }
                }
                FromWorker::Done { job, result } => {
                    if let Some(run) =
                        s.runs.iter_mut().find(|r| r.id == job && r.status == RunStatus::Running)
                    {
                        run.status = RunStatus::Done(Rc::new(*result));
                    }
                }
                FromWorker::EmbedProgress { job, done, total } => {
                    if let Some(e) = s.embedding.iter_mut().find(|e| e.job == job) {
                        (e.done, e.total) = (done, total);
                    }
                }
                FromWorker::Embedded { job, set, spectrum, seconds } => {
                    if let Some(i) = s.embedding.iter().position(|e| e.job == job) {
                        let e = s.embedding.remove(i);
                        match set.into_set() {
                            Ok(set) => {
                                s.embedded = Some(Embedded {
                                    name: e.name.clone(),
                                    texts: set.n(),
                                    seconds,
                                });
                                let loaded =
                                    Loaded { set: Rc::new(set), spectrum: Rc::new(*spectrum) };
                                s.load(e.model, e.role, e.name, loaded);
                            }
                            Err(err) => s.error = Some(err.to_string()),
                        }
                    }
                }
                FromWorker::Failed { job, message } if job >= EMBED_JOBS => {
                    s.embedding.retain(|e| e.job != job);
                    s.error = Some(message);
                }
                FromWorker::Failed { job, message } => {
                    match s.runs.iter_mut().find(|r| r.id == job && r.status == RunStatus::Running)
                    {
                        Some(run) => run.status = RunStatus::Failed(message),
                        // Not about one job (a worker that could not load or read a job): whatever
                        // was running there will not finish.
                        None => {
                            for run in s.runs.iter_mut().filter(|r| r.status == RunStatus::Running)
                            {
                                run.status = RunStatus::Failed(message.clone());
                            }
                            s.embedding.clear();
                            s.error = Some(message);
                        }
                    }
                }
            },
            Action::Stop => {
                s.worker_ready = false;
                s.embedding.clear();
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
            Action::TextModel(folder) => {
                s.text_model = Some(folder);
                s.error = None;
            }
            Action::Embed(embedding) => {
                s.embedding.push(embedding);
                s.error = None;
            }
        }
        s
    }

    /// Puts a loaded set in `role` of model `model` (an OOD set of the same name is replaced).
    fn load(&mut self, model: usize, role: Role, name: String, loaded: Loaded) {
        let m = &mut self.models[model];
        match role {
            Role::Train => m.train = Some(loaded),
            Role::Test => m.test = Some(loaded),
            Role::Ood => match m.ood.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = loaded,
                None => m.ood.push((name, loaded)),
            },
        }
        self.error = None;
    }
}

impl State {
    /// The OOD set names of model A, then the new ones of each later model, each once.
    pub fn ood_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for name in self.models.iter().flat_map(|m| m.ood.iter().map(|(n, _)| n.clone())) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Whether a run is training now.
    pub fn running(&self) -> bool {
        self.runs.iter().any(|r| r.status == RunStatus::Running)
    }
}

#[cfg(test)]
mod tests {
    use nml_core::tune::TuneReport;

    use super::*;

    fn loaded(name: &str) -> Loaded {
        let set = FeatureSet::new(name, vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 2, vec![0, 1, 1], None)
            .unwrap();
        let spectrum = nml_core::spectrum::measure(
            &set,
            nml_core::Preprocess::Paper,
            nml_core::GramPrecision::Auto,
            &nml_core::Device::flex(),
        )
        .unwrap();
        Loaded { set: Rc::new(set), spectrum: Rc::new(spectrum) }
    }

    fn run(id: u32) -> Run {
        Run {
            id,
            model: 0,
            model_label: "model A".into(),
            config: TuneConfig::for_method(Method::Lp),
            ood_names: Vec::new(),
            backend: BackendChoice::Auto,
            epochs: Vec::new(),
            status: RunStatus::Running,
        }
    }

    fn stats(epoch: usize) -> EpochStats {
        EpochStats {
            epoch,
            loss: 1.0,
            ce: 1.0,
            mse: 0.0,
            cov: 0.0,
            svd: 0.0,
            lr: 0.01,
            val_accuracy: None,
            val_loss: None,
        }
    }

    fn reduce(state: State, actions: Vec<Action>) -> State {
        actions.into_iter().fold(state, |state, action| state.apply(action))
    }

    #[test]
    fn loading_fills_a_role_and_an_ood_name_is_replaced_not_repeated() {
        let s = reduce(
            State { error: Some("old".into()), ..State::default() },
            vec![
                Action::Load {
                    model: 1,
                    role: Role::Train,
                    name: "train".into(),
                    loaded: loaded("t"),
                },
                Action::Load {
                    model: 1,
                    role: Role::Ood,
                    name: "rot".into(),
                    loaded: loaded("r1"),
                },
                Action::Load {
                    model: 1,
                    role: Role::Ood,
                    name: "rot".into(),
                    loaded: loaded("r2"),
                },
                Action::Load { model: 0, role: Role::Ood, name: "ocv".into(), loaded: loaded("o") },
            ],
        );
        assert!(s.models[1].train.is_some() && s.models[0].train.is_none());
        assert_eq!(s.models[1].ood.len(), 1);
        assert_eq!(s.models[1].ood[0].1.set.name(), "r2");
        assert_eq!(s.ood_names(), vec!["ocv".to_string(), "rot".to_string()]);
        assert_eq!(s.error, None, "a good load clears the last error");
    }

    #[test]
    fn worker_messages_reach_only_their_running_job() {
        let s = reduce(State::default(), vec![Action::Start(run(1)), Action::Start(run(2))]);
        assert!(s.running());
        let report = TuneReport {
            method: Method::Lp,
            accuracy: 0.5,
            ood: Default::default(),
            seconds: 1.0,
            backend: "cpu".into(),
            seed: 0,
            config: TuneConfig::for_method(Method::Lp),
            train_samples: 2,
            val_samples: 0,
            best_epoch: None,
            epochs_run: 1,
            selection: Vec::new(),
            spectra: Vec::new(),
            history: Vec::new(),
        };
        let s = reduce(
            s,
            vec![
                Action::Worker(FromWorker::Epoch { job: 2, stats: stats(1) }),
                Action::Worker(FromWorker::Done {
                    job: 1,
                    result: Box::new(TuneResult { report, after: Vec::new() }),
                }),
                // A finished job takes no more epochs.
                Action::Worker(FromWorker::Epoch { job: 1, stats: stats(2) }),
            ],
        );
        assert!(matches!(s.runs[0].status, RunStatus::Done(_)) && s.runs[0].epochs.is_empty());
        assert_eq!((s.runs[1].status.clone(), s.runs[1].epochs.len()), (RunStatus::Running, 1));
    }

    #[test]
    fn a_failure_of_no_job_fails_every_running_run_and_says_why() {
        let s = reduce(
            State::default(),
            vec![
                Action::Start(run(1)),
                Action::Worker(FromWorker::Failed { job: 0, message: "no build".into() }),
            ],
        );
        assert_eq!(s.runs[0].status, RunStatus::Failed("no build".into()));
        assert_eq!(s.error.as_deref(), Some("no build"));
        let s = reduce(
            State::default(),
            vec![
                Action::Start(run(1)),
                Action::Worker(FromWorker::Failed { job: 1, message: "diverged".into() }),
            ],
        );
        assert_eq!(
            (s.runs[0].status.clone(), s.error),
            (RunStatus::Failed("diverged".into()), None)
        );
    }

    #[test]
    fn stop_ends_running_runs_and_waits_for_a_fresh_worker() {
        let s = reduce(
            State { worker_ready: true, ..State::default() },
            vec![Action::Start(run(1)), Action::Stop],
        );
        assert_eq!(s.runs[0].status, RunStatus::Stopped);
        assert!(!s.worker_ready && !s.running());
        let s = reduce(s, vec![Action::Worker(FromWorker::Ready)]);
        assert!(s.worker_ready);
    }

    #[test]
    fn an_embedded_text_file_lands_in_its_role_and_a_failed_one_says_why() {
        let set = loaded("texts");
        let embedding =
            |job, role| Embedding { job, model: 1, role, name: "news".into(), done: 0, total: 0 };
        let first = EMBED_JOBS;
        let s = reduce(
            State::default(),
            vec![
                Action::Embed(embedding(first, Role::Test)),
                Action::Embed(embedding(first + 1, Role::Ood)),
                Action::Worker(FromWorker::EmbedProgress { job: first, done: 16, total: 40 }),
            ],
        );
        assert_eq!((s.embedding[0].done, s.embedding[0].total, s.embedding[1].done), (16, 40, 0));
        let s = reduce(
            s,
            vec![
                Action::Worker(FromWorker::Embedded {
                    job: first,
                    set: Box::new(crate::io::SetMessage::of(&set.set)),
                    spectrum: Box::new((*set.spectrum).clone()),
                    seconds: 2.0,
                }),
                Action::Worker(FromWorker::Failed {
                    job: first + 1,
                    message: "t.csv:3: bad".into(),
                }),
            ],
        );
        assert_eq!(s.models[1].test.as_ref().unwrap().set.features(), set.set.features());
        assert!(s.models[1].ood.is_empty() && s.embedding.is_empty());
        assert_eq!(s.embedded, Some(Embedded { name: "news".into(), texts: 3, seconds: 2.0 }));
        assert_eq!(s.error.as_deref(), Some("t.csv:3: bad"));
    }

    #[test]
    fn settings_and_views_are_kept() {
        let config = TuneConfig { epochs: 3, ..TuneConfig::for_method(Method::Mlp) };
        let adapter = WebGpuAdapter { description: "google swiftshader".into(), software: true };
        let s = reduce(
            State::default(),
            vec![
                Action::Config(config.clone()),
                Action::Backend(BackendChoice::Cpu),
                Action::WebGpu(Some(adapter.clone())),
                Action::Model(1),
                Action::View("rot".into()),
                Action::Label { model: 0, label: "clean".into() },
                Action::Error("bad file".into()),
            ],
        );
        assert_eq!(
            (s.config, s.backend, s.webgpu, s.webgpu_probed, s.model, s.view),
            (config, BackendChoice::Cpu, Some(adapter), true, 1, "rot".to_string())
        );
        assert_eq!((s.models[0].label.as_str(), s.error.as_deref()), ("clean", Some("bad file")));
    }
}
