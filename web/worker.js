// The page's Web Workers (see src/worker.rs). The first message names the page's build and hands
// over its compiled module, so it is not compiled twice; jobs that arrive while it loads wait for
// the handler that worker_entry installs.
const waiting = [];
self.onmessage = async (first) => {
  self.onmessage = (event) => waiting.push(event.data);
  const { script, module } = first.data;
  try {
    const build = await import(script);
    await build.default(module ? { module_or_path: module } : undefined);
    build.worker_entry();
  } catch (e) {
    // FromWorker::Failed, as src/protocol.rs writes it.
    self.postMessage(JSON.stringify({ Failed: { job: 0, message: `the worker could not load ${script}: ${e}` } }));
    return;
  }
  for (const data of waiting) self.dispatchEvent(new MessageEvent("message", { data }));
};
