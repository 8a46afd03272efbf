//! The device a tuning run uses in the browser: WebGPU through Burn's WGPU backend when the
//! browser offers an adapter, else Burn's CPU backend. `auto` takes WebGPU only on a hardware
//! adapter, as `nml --backend auto` does natively: a software one (SwiftShader) is slower than
//! the CPU backend.

use js_sys::{Function, Promise, Reflect};
use nml_core::device::{BackendChoice, ComputeDevice};
use nml_core::{NmlError, Result};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

pub use crate::io::WebGpuAdapter;

fn property(object: &JsValue, name: &str) -> Option<JsValue> {
    Reflect::get(object, &JsValue::from_str(name))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// Asks the browser for a WebGPU adapter (`navigator.gpu.requestAdapter()`), in a page or a
/// worker; `None` where it offers none.
pub async fn probe_webgpu() -> Option<WebGpuAdapter> {
    let navigator = property(&js_sys::global(), "navigator")?;
    let gpu = property(&navigator, "gpu")?;
    let request: Function = property(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let promise: Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter =
        JsFuture::from(promise).await.ok().filter(|a| !a.is_null() && !a.is_undefined())?;
    let info = property(&adapter, "info");
    let text = |name: &str| {
        info.as_ref()
            .and_then(|i| property(i, name))
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let parts: Vec<String> = ["vendor", "architecture", "device", "description"]
        .iter()
        .map(|n| text(n))
        .filter(|t| !t.is_empty())
        .collect();
    let description =
        if parts.is_empty() { "unnamed adapter".to_string() } else { parts.join(" ") };
    // Newer browsers say it in `info`, older ones on the adapter; neither flags SwiftShader
    // everywhere, so its name counts too.
    let fallback = info
        .as_ref()
        .and_then(|i| property(i, "isFallbackAdapter"))
        .or_else(|| property(&adapter, "isFallbackAdapter"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let lower = description.to_lowercase();
    let software = fallback
        || ["swiftshader", "llvmpipe", "lavapipe", "software"].iter().any(|s| lower.contains(s));
    Some(WebGpuAdapter { description, software })
}

/// Burn registers its WGPU runtime once per thread (here, per worker), so the started device
/// is kept.
#[cfg(feature = "webgpu")]
async fn webgpu_device(adapter: &WebGpuAdapter) -> Result<ComputeDevice> {
    use std::cell::RefCell;

    use nml_core::Device;

    thread_local! {
        static STARTED: RefCell<Option<Device>> = const { RefCell::new(None) };
    }
    let device = match STARTED.with(|d| d.borrow().clone()) {
        Some(device) => device,
        None => {
            let device = Device::wgpu_options()
                .init_async()
                .await
                .map_err(|e| NmlError::Backend(format!("WebGPU failed to start: {e}")))?;
            STARTED.with(|d| *d.borrow_mut() = Some(device.clone()));
            device
        }
    };
    Ok(ComputeDevice {
        device,
        kind: "wgpu",
        description: format!("wgpu: WebGPU ({})", adapter.summary()),
    })
}

#[cfg(not(feature = "webgpu"))]
async fn webgpu_device(_adapter: &WebGpuAdapter) -> Result<ComputeDevice> {
    Err(NmlError::Backend(
        "this build has no WebGPU: build the page with `--features webgpu`, as scripts/build-web does"
            .into(),
    ))
}

/// Whether [`select`] would start WebGPU: the page sends such runs to its WebGPU worker.
pub fn wants_webgpu(choice: BackendChoice, offered: Option<&WebGpuAdapter>) -> bool {
    match (choice, offered) {
        (BackendChoice::Wgpu, Some(_)) => true,
        (BackendChoice::Auto, Some(adapter)) => !adapter.software,
        _ => false,
    }
}

/// The device for `choice`, given what [`probe_webgpu`] found. `auto` never fails: it falls back
/// to the CPU and says why in the description.
pub async fn select(
    choice: BackendChoice,
    offered: Option<&WebGpuAdapter>,
) -> Result<ComputeDevice> {
    match (choice, offered) {
        (_, Some(adapter)) if wants_webgpu(choice, offered) => match webgpu_device(adapter).await {
            Err(why) if choice == BackendChoice::Auto => Ok(ComputeDevice::cpu(&why.to_string())),
            started => started,
        },
        (BackendChoice::Wgpu, _) => Err(NmlError::Backend(
            "this browser offers no WebGPU adapter; choose auto or cpu".into(),
        )),
        (BackendChoice::Auto, Some(adapter)) => Ok(ComputeDevice::cpu(&format!(
            "WebGPU here is {}; choose webgpu to run on it",
            adapter.summary()
        ))),
        (BackendChoice::Auto, None) => Ok(ComputeDevice::cpu("this browser offers no WebGPU")),
        (BackendChoice::Cpu, _) => Ok(ComputeDevice::cpu("chosen")),
    }
}
