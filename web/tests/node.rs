//! WASM tests in Node (`wasm-pack test --node --release web`).
#![cfg(target_arch = "wasm32")]

mod parity;

use nml_core::FeatureSet;
use nml_core::device::BackendChoice;
use nml_web::analysis::{Picked, check_size, device, feature_set, spectrum};
use nml_web::backend::{WebGpuAdapter, select, wants_webgpu};
use nml_web::io::{EmbedRequest, TuneRequest, WorkerJob, decode, encode, encode_embed};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
async fn tuning_in_wasm_matches_native() {
    parity::run_parity(&device()).await;
}

/// `auto` keeps to the CPU without a hardware adapter; asking for WebGPU where there is none
/// says so.
#[wasm_bindgen_test]
async fn backend_choice_follows_the_adapter() {
    let software = WebGpuAdapter { description: "google swiftshader".into(), software: true };
    let auto = select(BackendChoice::Auto, Some(&software)).await.unwrap();
    assert_eq!(auto.kind, "cpu");
    assert!(
        auto.description.contains("swiftshader") && auto.description.contains("software"),
        "{}",
        auto.description
    );
    assert_eq!(select(BackendChoice::Auto, None).await.unwrap().kind, "cpu");
    assert_eq!(select(BackendChoice::Cpu, Some(&software)).await.unwrap().kind, "cpu");
    let err = select(BackendChoice::Wgpu, None).await.err().unwrap().to_string();
    assert!(err.contains("no WebGPU"), "{err}");
    // The page sends a run to the WebGPU build exactly when select would start WebGPU.
    let hardware = WebGpuAdapter { description: "nvidia ampere".into(), software: false };
    assert!(wants_webgpu(BackendChoice::Auto, Some(&hardware)));
    assert!(wants_webgpu(BackendChoice::Wgpu, Some(&software)));
    assert!(!wants_webgpu(BackendChoice::Auto, Some(&software)));
    assert!(!wants_webgpu(BackendChoice::Wgpu, None));
    assert!(!wants_webgpu(BackendChoice::Cpu, Some(&hardware)));
}

/// What a job looks like after the trip to the worker and back.
#[wasm_bindgen_test]
fn jobs_survive_the_trip_to_the_worker() {
    let job = parity::parity_job();
    let request = TuneRequest {
        job: 7,
        config: job.config.clone(),
        train_name: "tr".into(),
        test_name: "te".into(),
        ood_names: vec!["rotated-30".into()],
        backend: BackendChoice::Cpu,
        webgpu: None,
    };
    let sets: Vec<&FeatureSet> = vec![&job.train, &job.test, &job.ood[0].1];
    let (json, bytes) = encode(&request, &sets).unwrap();
    let Ok(WorkerJob::Tune(back, decoded)) = decode(&json, &bytes) else { panic!("a tuning job") };
    assert_eq!((back.job, back.backend), (7, BackendChoice::Cpu));
    assert_eq!(decoded.train.features(), job.train.features());
    assert_eq!(decoded.ood[0].1.labels(), job.ood[0].1.labels());
    let err = decode(&json, &bytes[..2]).err().unwrap().to_string();
    assert!(err.contains("2 files for 3 names"), "{err}");
}

/// A text file and the model folder reach the worker whole, and are embedded there in WASM as
/// natively: a set of unit-length rows with its spectrum.
#[wasm_bindgen_test]
async fn texts_are_embedded_in_wasm() {
    let folder = nml_web::fixtures::tiny_model_folder();
    let text = Picked { name: "topics.jsonl".into(), bytes: nml_web::fixtures::topic_jsonl() };
    let (json, bytes) = encode_embed(9, &folder, &text);
    let Ok(WorkerJob::Embed(request, back, picked)) = decode(&json, &bytes) else {
        panic!("an embedding job")
    };
    assert_eq!(
        request,
        EmbedRequest {
            job: 9,
            model_name: folder.name.clone(),
            model_files: folder.files.iter().map(|(n, _)| n.clone()).collect(),
            text_name: "topics.jsonl".into(),
        }
    );
    assert_eq!((back, picked.bytes.clone()), (folder.clone(), text.bytes.clone()));
    let encoder = folder.encoder(&device()).unwrap();
    let (set, report) =
        nml_web::analysis::embed_texts(&encoder, &picked, &device(), &mut |_, _| {}).await.unwrap();
    assert_eq!((set.n(), set.d()), (6, 16));
    for row in 0..set.n() {
        let norm: f32 = set.row(row).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }
    assert!(report.metrics.sve > 0.0);
}

/// Bad files give a message naming the file; the spectrum of a real set is what the core says.
#[wasm_bindgen_test]
fn bad_files_are_refused_by_name() {
    let junk = Picked { name: "junk.safetensors".into(), bytes: b"not a tensor file".to_vec() };
    let err = feature_set(&[junk]).err().unwrap().to_string();
    assert!(err.contains("junk.safetensors"), "{err}");
    let err = check_size("huge.npy", 4e9).err().unwrap().to_string();
    assert!(err.contains("huge.npy") && err.contains("MiB"), "{err}");
    // A NaN in the features (of a .npy pair: a FeatureSet itself can never hold one).
    let set = parity::parity_job().test;
    let mut values = set.features().to_vec();
    values[5] = f32::NAN;
    let labels: Vec<i64> = set.labels().iter().map(|&l| i64::from(l)).collect();
    let features = Picked {
        name: "nan.npy".into(),
        bytes: nml_core::data::npy_file::write_f32(&[set.n(), set.d()], &values),
    };
    let labels = Picked {
        name: "labels.npy".into(),
        bytes: nml_core::data::npy_file::write_i64(&[set.n()], &labels),
    };
    let err = feature_set(&[features, labels]).err().unwrap().to_string();
    assert!(err.contains("nan.npy") && err.contains("non-finite"), "{err}");
    let good = spectrum(&parity::parity_job().test).unwrap();
    assert!(good.metrics.sve > 1.0 && good.metrics.sve < (64f64).ln(), "{}", good.metrics.sve);
}

/// A finished run's reply parses back on the page's side (spectra carry integer-keyed maps).
#[wasm_bindgen_test]
async fn worker_replies_parse_back() {
    let mut job = parity::parity_job();
    job.config.epochs = 1;
    let result = nml_web::analysis::tune(&job, &device(), &mut ()).await.unwrap();
    let json = serde_json::to_string(&nml_web::io::FromWorker::Done {
        job: 3,
        result: Box::new(result.clone()),
    })
    .unwrap();
    match serde_json::from_str(&json).unwrap() {
        nml_web::io::FromWorker::Done { job, result: back } => {
            // JSON keeps floats to within an ulp or so.
            assert_eq!(
                (job, back.report.accuracy, &back.report.ood),
                (3, result.report.accuracy, &result.report.ood)
            );
            assert_eq!(back.after.len(), 2);
            for (a, b) in back.after.iter().zip(&result.after) {
                assert_eq!(
                    a.top_k_share.keys().collect::<Vec<_>>(),
                    b.top_k_share.keys().collect::<Vec<_>>()
                );
                assert!(
                    a.singular_values
                        .iter()
                        .zip(&b.singular_values)
                        .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0))
                );
            }
        }
        _ => panic!("wrong variant"),
    }
}
