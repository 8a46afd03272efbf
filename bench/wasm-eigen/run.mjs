// node run.mjs target/wasm32-unknown-unknown/release/wasm_eigen.wasm
// Median of 3 calls of each eigen solver on the same m x m Gram (built once, untimed).
import { readFileSync } from "node:fs";
const { instance } = await WebAssembly.instantiate(readFileSync(process.argv[2]), {});
const e = instance.exports;
const median = (f) => {
  const times = [];
  let value = 0;
  for (let i = 0; i < 3; i++) { const t = performance.now(); value = f(); times.push(performance.now() - t); }
  return [times.sort((a, b) => a - b)[1], value];
};
for (const m of [256, 512, 1024]) {
  const trace = e.prepare(m);
  const [tf, vf] = median(e.faer_eigenvalues);
  const [tn, vn] = median(e.nalgebra_eigenvalues);
  console.log(JSON.stringify({ m, faer_ms: +tf.toFixed(1), nalgebra_ms: +tn.toFixed(1), faer_vs_trace: Math.abs(vf - trace) / trace, nalgebra_vs_trace: Math.abs(vn - trace) / trace }));
}
