//! Both ends of the Web Workers that train heads and embed texts off the UI thread. A worker runs the page's own
//! build of this crate (started by `worker.js`, handed the page's compiled module), which has both
//! backends: the page keeps one worker for CPU runs and starts a second for WebGPU runs
//! (`backend.rs`), so a long run on one does not hold up the other; stopping a run terminates the
//! workers and starts a fresh one.

use nml_core::Observer;
use nml_core::tune::EpochStats;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, Worker, WorkerOptions, WorkerType};
use yew::Callback;

use std::cell::RefCell;
use std::rc::Rc;

use nml_core::models::SentenceEncoder;

use crate::analysis::{ModelFolder, Picked, TuneJob, device, embed_texts, tune};
use crate::backend::select;
use crate::io::{EmbedRequest, FromWorker, SetMessage, TuneRequest, WorkerJob, decode};

fn post(scope: &DedicatedWorkerGlobalScope, message: &FromWorker) {
    let json = serde_json::to_string(message).expect("plain data");
    let _ = scope.post_message(&JsValue::from_str(&json));
}

/// Sends every finished epoch to the page while the run goes on.
struct PostEpochs {
    scope: DedicatedWorkerGlobalScope,
    job: u32,
}

impl Observer<EpochStats> for PostEpochs {
    fn on_epoch(&mut self, stats: &EpochStats) {
        post(&self.scope, &FromWorker::Epoch { job: self.job, stats: stats.clone() });
    }
}

/// Runs one posted job to its reply: a tuning run's epochs, or an embedding's progress, go out
/// as they happen.
async fn answer(
    scope: DedicatedWorkerGlobalScope,
    json: String,
    bytes: Vec<Vec<u8>>,
) -> FromWorker {
    match decode(&json, &bytes) {
        Ok(WorkerJob::Tune(request, job)) => tune_job(scope, *request, *job).await,
        Ok(WorkerJob::Embed(request, folder, text)) => {
            embed_job(scope, request, folder, text).await
        }
        Err(e) => FromWorker::Failed { job: 0, message: e.to_string() },
    }
}

async fn tune_job(
    scope: DedicatedWorkerGlobalScope,
    request: TuneRequest,
    job: TuneJob,
) -> FromWorker {
    let device = match select(request.backend, request.webgpu.as_ref()).await {
        Ok(device) => device,
        Err(e) => {
            return FromWorker::Failed { job: request.job, message: e.to_string() };
        }
    };
    let started = js_sys::Date::now();
    let mut observer = PostEpochs { scope, job: request.job };
    match tune(&job, &device, &mut observer).await {
        Ok(mut result) => {
            result.report.seconds = (js_sys::Date::now() - started) / 1000.0;
            FromWorker::Done { job: request.job, result: Box::new(result) }
        }
        Err(e) => FromWorker::Failed { job: request.job, message: e.to_string() },
    }
}

thread_local! {
    /// The last encoder read, by its folder's name and size: the sets of one task are embedded
    /// one after another with the same model.
    static ENCODER: RefCell<Option<((String, usize), Rc<SentenceEncoder>)>> = const { RefCell::new(None) };
}

async fn embed_job(
    scope: DedicatedWorkerGlobalScope,
    request: EmbedRequest,
    folder: ModelFolder,
    text: Picked,
) -> FromWorker {
    let job = request.job;
    let started = js_sys::Date::now();
    let device = device();
    let key = (folder.name.clone(), folder.bytes());
    let cached =
        ENCODER.with_borrow(|c| c.as_ref().filter(|(k, _)| *k == key).map(|(_, e)| e.clone()));
    let encoder = match cached {
        Some(encoder) => encoder,
        None => match folder.encoder(&device) {
            Ok(encoder) => {
                let encoder = Rc::new(encoder);
                ENCODER.set(Some((key, encoder.clone())));
                encoder
            }
            Err(e) => return FromWorker::Failed { job, message: e.to_string() },
        },
    };
    let mut progress = |done: usize, total: usize| {
        post(&scope, &FromWorker::EmbedProgress { job, done, total });
    };
    match embed_texts(&encoder, &text, &device, &mut progress).await {
        Ok((set, spectrum)) => FromWorker::Embedded {
            job,
            set: Box::new(SetMessage::of(&set)),
            spectrum: Box::new(spectrum),
            seconds: (js_sys::Date::now() - started) / 1000.0,
        },
        Err(e) => FromWorker::Failed { job, message: e.to_string() },
    }
}

/// The worker's side: answers each posted job (called by worker.js once the build is loaded).
#[wasm_bindgen]
pub fn worker_entry() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let replies = scope.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let data: js_sys::Array = event.data().unchecked_into();
        let json = data.get(0).as_string().unwrap_or_default();
        let bytes: Vec<Vec<u8>> =
            (1..data.length()).map(|i| js_sys::Uint8Array::new(&data.get(i)).to_vec()).collect();
        let scope = replies.clone();
        spawn_local(async move {
            let reply = answer(scope.clone(), json, bytes).await;
            post(&scope, &reply);
        });
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&scope, &FromWorker::Ready);
}

/// The page's side: a running worker and the handler of its replies.
pub struct TunerWorker {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl TunerWorker {
    pub fn spawn(on_reply: Callback<FromWorker>) -> Result<Self, String> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options("worker.js", &options)
            .map_err(|e| format!("cannot start the Web Worker: {e:?}"))?;
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let reply = event.data().as_string().map(|s| serde_json::from_str::<FromWorker>(&s));
            match reply {
                Some(Ok(message)) => on_reply.emit(message),
                other => on_reply.emit(FromWorker::Failed {
                    job: 0,
                    message: format!("unreadable message from the worker: {other:?}"),
                }),
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        let start = js_sys::Object::new();
        let set = |key: &str, value: &JsValue| {
            js_sys::Reflect::set(&start, &JsValue::from_str(key), value).map(|_| ())
        };
        set("script", &"./pkg/nml_web.js".into())
            .and_then(|()| set("module", &wasm_bindgen::module()))
            .and_then(|()| worker.post_message(&start))
            .map_err(|e| format!("cannot start the worker's build: {e:?}"))?;
        Ok(Self { worker, _on_message: on_message })
    }

    /// Posts a job encoded by `io::encode`.
    pub fn send(&self, json: String, sets: Vec<Vec<u8>>) -> Result<(), String> {
        let message = js_sys::Array::new();
        message.push(&JsValue::from_str(&json));
        for bytes in sets {
            message.push(&js_sys::Uint8Array::from(&bytes[..]));
        }
        self.worker.post_message(&message).map_err(|e| format!("cannot post to the worker: {e:?}"))
    }
}

impl Drop for TunerWorker {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
