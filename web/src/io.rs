//! The page's input and output: files a person picks or drops, the demo fetched beside the
//! page, and the messages between the page and its Web Workers. The page posts a JS array: the
//! request as JSON, then its files' bytes: for a tuning run each feature set as safetensors
//! (train, test, then the OOD sets in the order the request names them), for an embedding the
//! model folder's files (in the order the request names them) and then the text file. The
//! worker answers with JSON strings.

use nml_core::device::BackendChoice;
use nml_core::spectrum::SpectrumReport;
use nml_core::tune::{EpochStats, TuneConfig};
use nml_core::{FeatureSet, NmlError, Result};
use serde::{Deserialize, Serialize};

use crate::analysis::{ModelFolder, Picked, TuneJob, TuneResult};

#[cfg(target_arch = "wasm32")]
pub use browser::*;

/// The WebGPU adapter the browser offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebGpuAdapter {
    /// Vendor and architecture as the browser reports them, e.g. `google swiftshader`.
    pub description: String,
    /// A fallback or CPU-emulated adapter (SwiftShader, llvmpipe).
    pub software: bool,
}

impl WebGpuAdapter {
    pub fn summary(&self) -> String {
        format!("{}{}", self.description, if self.software { ", a software adapter" } else { "" })
    }
}

/// A tuning job as the page asks the worker for it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TuneRequest {
    pub job: u32,
    pub config: TuneConfig,
    pub train_name: String,
    pub test_name: String,
    pub ood_names: Vec<String>,
    /// Where the worker runs it: `auto` (WebGPU on a hardware adapter, else the CPU), `wgpu`, `cpu`.
    #[serde(default)]
    pub backend: BackendChoice,
    /// The WebGPU adapter the page was offered (workers do not look again).
    #[serde(default)]
    pub webgpu: Option<WebGpuAdapter>,
}

/// Texts to embed, as the page asks the worker for them (always on the CPU backend).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedRequest {
    pub job: u32,
    pub model_name: String,
    /// The model folder's files, by their paths in it, in the order their bytes follow.
    pub model_files: Vec<String>,
    pub text_name: String,
}

/// What the page asks a worker to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ToWorker {
    Tune(TuneRequest),
    Embed(EmbedRequest),
}

/// A decoded request with what it needs.
pub enum WorkerJob {
    Tune(Box<TuneRequest>, Box<TuneJob>),
    Embed(EmbedRequest, ModelFolder, Picked),
}

/// A feature set on its way from the worker to the page, in plain JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetMessage {
    pub name: String,
    pub d: usize,
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    pub num_classes: usize,
    pub class_names: Vec<String>,
    pub domain: Option<String>,
}

impl SetMessage {
    pub fn of(set: &FeatureSet) -> Self {
        Self {
            name: set.name().to_string(),
            d: set.d(),
            features: set.features().to_vec(),
            labels: set.labels().to_vec(),
            num_classes: set.num_classes(),
            class_names: set.class_names().to_vec(),
            domain: set.domain().map(str::to_string),
        }
    }

    /// The set, checked as every feature set is.
    pub fn into_set(self) -> Result<FeatureSet> {
        let labels = self.labels.iter().map(|&l| i64::from(l)).collect();
        let set =
            FeatureSet::new(self.name, self.features, self.d, labels, Some(self.num_classes))?
                .with_domain(self.domain);
        if self.class_names.is_empty() { Ok(set) } else { set.with_class_names(self.class_names) }
    }
}

/// Externally tagged: an internally tagged enum cannot read back the spectra's integer-keyed
/// maps (serde buffers them with string keys).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker is up and takes jobs.
    Ready,
    Epoch {
        job: u32,
        stats: EpochStats,
    },
    Done {
        job: u32,
        result: Box<TuneResult>,
    },
    Failed {
        job: u32,
        message: String,
    },
    /// Texts of an embedding job done so far.
    EmbedProgress {
        job: u32,
        done: usize,
        total: usize,
    },
    /// An embedding job's features and their spectrum.
    Embedded {
        job: u32,
        set: Box<SetMessage>,
        spectrum: Box<SpectrumReport>,
        seconds: f64,
    },
}

/// The request and the sets' bytes (train, test, then the OOD sets), as the page posts them.
pub fn encode(request: &TuneRequest, sets: &[&FeatureSet]) -> Result<(String, Vec<Vec<u8>>)> {
    let json = serde_json::to_string(&ToWorker::Tune(request.clone()))
        .map_err(|e| NmlError::Invalid(e.to_string()))?;
    let bytes = sets.iter().map(|s| s.to_safetensors()).collect::<Result<Vec<_>>>()?;
    Ok((json, bytes))
}

/// An embedding request and its files' bytes (the model folder's, then the text file's).
pub fn encode_embed(job: u32, folder: &ModelFolder, text: &Picked) -> (String, Vec<Vec<u8>>) {
    let request = EmbedRequest {
        job,
        model_name: folder.name.clone(),
        model_files: folder.files.iter().map(|(n, _)| n.clone()).collect(),
        text_name: text.name.clone(),
    };
    let json = serde_json::to_string(&ToWorker::Embed(request)).expect("plain data");
    let mut bytes: Vec<Vec<u8>> = folder.files.iter().map(|(_, b)| b.clone()).collect();
    bytes.push(text.bytes.clone());
    (json, bytes)
}

/// The job back from what [`encode`] or [`encode_embed`] wrote.
pub fn decode(json: &str, bytes: &[Vec<u8>]) -> Result<WorkerJob> {
    let request: ToWorker = serde_json::from_str(json)
        .map_err(|e| NmlError::Invalid(format!("bad request to the worker: {e}")))?;
    let count = |wanted: usize| {
        if bytes.len() == wanted {
            Ok(())
        } else {
            Err(NmlError::Invalid(format!(
                "the worker got {} files for {wanted} names",
                bytes.len()
            )))
        }
    };
    let request = match request {
        ToWorker::Embed(request) => {
            count(request.model_files.len() + 1)?;
            let folder = ModelFolder {
                name: request.model_name.clone(),
                files: request.model_files.iter().cloned().zip(bytes.iter().cloned()).collect(),
            };
            let text = Picked {
                name: request.text_name.clone(),
                bytes: bytes.last().cloned().unwrap_or_default(),
            };
            return Ok(WorkerJob::Embed(request, folder, text));
        }
        ToWorker::Tune(request) => request,
    };
    count(2 + request.ood_names.len())?;
    let read = |i: usize, name: &str| -> Result<FeatureSet> {
        FeatureSet::from_safetensors(&bytes[i], name)
    };
    let train = read(0, &request.train_name)?;
    let test = read(1, &request.test_name)?;
    let ood = request
        .ood_names
        .iter()
        .enumerate()
        .map(|(i, n)| Ok((n.clone(), read(2 + i, n)?)))
        .collect::<Result<_>>()?;
    let job = TuneJob { config: request.config.clone(), train, test, ood };
    Ok(WorkerJob::Tune(Box::new(request), Box::new(job)))
}

/// The browser's side: files, the demo, the workers.
#[cfg(target_arch = "wasm32")]
mod browser {
    use std::cell::RefCell;
    use std::rc::Rc;

    use nml_core::FeatureSet;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::{JsFuture, spawn_local};
    use yew::{Callback, UseReducerDispatcher, UseReducerHandle};

    use super::{TuneRequest, encode, encode_embed};
    use crate::analysis::{ModelFolder, Picked, check_size, feature_set, is_text_file, spectrum};
    use crate::backend::wants_webgpu;
    use crate::state::{
        Action, EMBED_JOBS, Embedding, Loaded, PickedModel, Role, Run, RunStatus, State,
    };
    use crate::worker::TunerWorker;

    /// The page's way to change its state.
    pub type Dispatch = UseReducerDispatcher<State>;

    /// The page's workers, both on its own build: one for CPU runs, and one for WebGPU runs,
    /// started when a run first wants WebGPU.
    #[derive(Default)]
    pub struct Workers {
        pub page: Option<TunerWorker>,
        pub webgpu: Option<TunerWorker>,
    }

    pub fn spawn_worker(dispatch: &Dispatch) -> Option<TunerWorker> {
        let replies = dispatch.clone();
        match TunerWorker::spawn(Callback::from(move |m| replies.dispatch(Action::Worker(m)))) {
            Ok(worker) => Some(worker),
            Err(e) => {
                dispatch.dispatch(Action::Error(e));
                None
            }
        }
    }

    async fn read_file(file: web_sys::File) -> Result<Picked, String> {
        check_size(&file.name(), file.size()).map_err(|e| e.to_string())?;
        let buffer = JsFuture::from(file.array_buffer())
            .await
            .map_err(|e| format!("{}: cannot read: {e:?}", file.name()))?;
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

    thread_local! {
        /// Embedding jobs sent so far.
        static NEXT_EMBED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    /// Reads picked or dropped files into one set for `role` of `model`: feature files as they
    /// are, a text file by embedding it in the worker with the picked model folder. A bad file
    /// leaves every loaded set as it was and shows why.
    pub fn load_files(
        files: Vec<web_sys::File>,
        model: usize,
        role: Role,
        state: &UseReducerHandle<State>,
        workers: &Rc<RefCell<Workers>>,
    ) {
        let dispatch = state.dispatcher();
        let text_file = match files.as_slice() {
            [one] if is_text_file(&one.name()) => true,
            _ => false,
        };
        if text_file {
            let Some(folder) = state.text_model.clone() else {
                return dispatch.dispatch(Action::Error(format!(
                    "{}: to embed texts, first pick a sentence-transformers model folder (e.g. all-MiniLM-L6-v2)",
                    files[0].name()
                )));
            };
            let job = EMBED_JOBS + NEXT_EMBED.replace(NEXT_EMBED.get() + 1);
            let workers = workers.clone();
            spawn_local(async move {
                let text = match read_file(files.into_iter().next().expect("one file")).await {
                    Ok(p) => p,
                    Err(e) => return dispatch.dispatch(Action::Error(e)),
                };
                let name = stem(&text.name);
                let (json, bytes) = encode_embed(job, &folder.0, &text);
                let sent = match workers.borrow().page.as_ref() {
                    Some(worker) => worker.send(json, bytes),
                    None => Err("the Web Worker is not running".to_string()),
                };
                match sent {
                    Ok(()) => dispatch.dispatch(Action::Embed(Embedding {
                        job,
                        model,
                        role,
                        name,
                        done: 0,
                        total: 0,
                    })),
                    Err(e) => dispatch.dispatch(Action::Error(e)),
                }
            });
            return;
        }
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

    /// Reads a picked model folder (or its files) for embedding texts; a folder that lacks a
    /// file nml reads is refused by name.
    pub fn load_model_folder(files: Vec<web_sys::File>, dispatch: Dispatch) {
        spawn_local(async move {
            let mut picked = Vec::new();
            for file in files {
                let path = js_sys::Reflect::get(&file, &"webkitRelativePath".into())
                    .ok()
                    .and_then(|p| p.as_string())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| file.name());
                // Only the files nml reads are kept (a folder may hold other formats too).
                let inner = path.split_once('/').map_or(path.as_str(), |(_, rest)| rest);
                if !ModelFolder::FILES.contains(&inner)
                    && !ModelFolder::FILES.contains(&file.name().as_str())
                {
                    continue;
                }
                match read_file(file).await {
                    Ok(p) => picked.push((path, p.bytes)),
                    Err(e) => return dispatch.dispatch(Action::Error(e)),
                }
            }
            match ModelFolder::from_picked(picked).checked() {
                Ok(folder) => dispatch.dispatch(Action::TextModel(PickedModel(Rc::new(folder)))),
                Err(e) => dispatch.dispatch(Action::Error(e.to_string())),
            }
        });
    }

    async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
        let window = web_sys::window().ok_or("no window")?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
            .await
            .map_err(|e| format!("{url}: {e:?}"))?
            .unchecked_into();
        if !response.ok() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let buffer = JsFuture::from(response.array_buffer().map_err(|e| format!("{url}: {e:?}"))?)
            .await
            .map_err(|e| format!("{url}: {e:?}"))?;
        Ok(js_sys::Uint8Array::new(&buffer).to_vec())
    }

    /// The demo: features of the project's own quick-preset ResNets, pre-trained on clean and on
    /// 30%-noisy labels, and of the ImageNet EfficientNet-Lite0, for MNIST (train, test) and
    /// MNIST rotated by 30 degrees (OOD).
    pub const DEMO_MODELS: [(&str, &str); 3] = [
        ("noise00", "clean pre-training (demo)"),
        ("noise30", "30% label noise (demo)"),
        ("lite0", "ImageNet EfficientNet-Lite0 (demo)"),
    ];
    pub const DEMO_OOD: &str = "rotated-30";

    pub async fn load_demo(dispatch: Dispatch) {
        for (i, (file, label)) in DEMO_MODELS.iter().enumerate() {
            for (role, part) in
                [(Role::Train, "train"), (Role::Test, "test"), (Role::Ood, DEMO_OOD)]
            {
                let name = format!("demo/{file}-{part}.safetensors");
                let loaded = fetch_bytes(&name)
                    .await
                    .and_then(|bytes| load(&[Picked { name: name.clone(), bytes }]));
                match loaded {
                    Ok(loaded) => dispatch.dispatch(Action::Load {
                        model: i,
                        role,
                        name: part.to_string(),
                        loaded,
                    }),
                    Err(e) => {
                        return dispatch.dispatch(Action::Error(format!("demo not loaded: {e}")));
                    }
                }
            }
            dispatch.dispatch(Action::Label { model: i, label: label.to_string() });
        }
    }

    /// Sends the run the page is set up for to the worker that should run it (the WebGPU build's,
    /// started on first use, or the page's own), and records it as running.
    pub fn start_run(state: &UseReducerHandle<State>, workers: &mut Workers) {
        let model = &state.models[state.model];
        let (Some(train), Some(test)) = (&model.train, &model.test) else {
            return state.dispatch(Action::Error(format!(
                "{}: load a training and a test set first",
                model.label
            )));
        };
        let id = state.runs.len() as u32 + 1;
        let ood_names: Vec<String> = model.ood.iter().map(|(n, _)| n.clone()).collect();
        let request = TuneRequest {
            job: id,
            config: state.config.clone(),
            train_name: train.set.name().to_string(),
            test_name: test.set.name().to_string(),
            ood_names: ood_names.clone(),
            backend: state.backend,
            webgpu: state.webgpu.clone(),
        };
        let sets: Vec<&FeatureSet> = [&*train.set, &*test.set]
            .into_iter()
            .chain(model.ood.iter().map(|(_, l)| &*l.set))
            .collect();
        let worker = if wants_webgpu(state.backend, state.webgpu.as_ref()) {
            if workers.webgpu.is_none() {
                workers.webgpu = spawn_worker(&state.dispatcher());
            }
            workers.webgpu.as_ref()
        } else {
            workers.page.as_ref()
        };
        let sent =
            encode(&request, &sets).map_err(|e| e.to_string()).and_then(
                |(json, bytes)| match worker {
                    Some(w) => w.send(json, bytes),
                    None => Err("the Web Worker is not running".to_string()),
                },
            );
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
    }
}
