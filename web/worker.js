// The page's Web Worker: the same WASM module, answering tuning jobs (see src/worker.rs).
import init, { worker_entry } from "./pkg/nml_web.js";
await init();
worker_entry();
