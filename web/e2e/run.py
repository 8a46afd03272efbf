#!/usr/bin/env python3
"""End-to-end test of the browser app: serves web/ on 127.0.0.1, drives headless Chromium
through chromedriver's W3C WebDriver API (plain HTTP, no client library), and checks that the
demo loads, an NMTune run finishes with its accuracy and spectrum in the DOM, the same run on
WebGPU (Chromium's software adapter) finishes and the page says it ran there, a run on the
third model's (EfficientNet-Lite0's) features finishes, and a bad file
shows its error without losing the loaded sets. Saves a screenshot and a timings file in the
output folder (default web/e2e/out). Build the app first: scripts/build-web."""

import base64
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

WEB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.environ.get("NML_E2E_OUT", os.path.join(WEB, "e2e", "out"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1800",
                                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                 "--enable-unsafe-webgpu"],
                    },
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {e.read().decode()[:500]}") from None

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def find_all(self, css):
        return [next(iter(e.values())) for e in self.s("POST", "/elements", {"using": "css selector", "value": css})]

    def text(self, css):
        found = self.find_all(css)
        return self.s("GET", f"/element/{found[0]}/text") if found else None

    def wait(self, what, predicate, timeout=240):
        start = time.time()
        while time.time() - start < timeout:
            value = predicate()
            if value:
                return time.time() - start
            time.sleep(0.1)
        error = self.text("#error")
        raise AssertionError(f"timed out after {timeout} s waiting for {what} (page error: {error})")

    def quit(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        except Exception:
            pass


def main():
    if not os.path.exists(os.path.join(WEB, "pkg", "nml_web_bg.wasm")):
        sys.exit("web/pkg is missing: run scripts/build-web first")
    os.makedirs(OUT, exist_ok=True)
    web_port, driver_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(web_port), "--bind", "127.0.0.1"], cwd=WEB,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chromedriver = subprocess.Popen(["chromedriver", f"--port={driver_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = None
    try:
        time.sleep(1.0)
        driver = Driver(driver_port)
        timings = {}
        started = time.time()
        driver.s("POST", "/url", {"url": f"http://127.0.0.1:{web_port}/"})
        # Interactive: the worker is up and the demo's nine sets (three models) are loaded.
        driver.wait("the demo", lambda: len(driver.find_all(".sets li")) == 9 and "Backend:" in (driver.text("#backend") or ""))
        run_button = driver.find_all("#run")[0]
        driver.wait("the Run button", lambda: driver.s("GET", f"/element/{run_button}/enabled"))
        timings["load_to_interactive_s"] = round(time.time() - started, 2)

        def run_and_wait(what, run_id, timeout=300):
            """Clicks Run once it is enabled; the run's seconds and its ID accuracy (%)."""
            driver.wait("the Run button", lambda: driver.s("GET", f"/element/{run_button}/enabled"))
            clicked = time.time()
            driver.s("POST", f"/element/{run_button}/click", {})
            driver.wait(what, lambda: (driver.text(f"#acc-{run_id}") or "").endswith("%"), timeout=timeout)
            return round(time.time() - clicked, 2), float(driver.text(f"#acc-{run_id}").rstrip("%"))
        backend = driver.text("#backend")
        assert "WebGPU (" in backend, f"Chromium with --enable-unsafe-webgpu should offer an adapter: {backend}"

        # The default run: NMTune, 30 epochs, on model A (clean demo features).
        timings["nmtune_30_epochs_in_page_s"], accuracy = run_and_wait("the NMTune run", 1)
        assert 50.0 < accuracy <= 100.0, accuracy
        status = driver.text("#results tr.done")
        assert status and "done" in status, status
        lines = driver.find_all("#spectrum polyline")
        assert len(lines) >= 4, f"expected A frozen, A after NMTune, B and C frozen spectra, found {len(lines)}"
        sve = driver.find_all("#spectrum-metrics .sve")
        assert len(sve) >= 4, sve
        curve = driver.find_all("#loss-curve polyline")
        assert curve, "no loss curve"
        # auto keeps to the CPU backend on a software WebGPU adapter.
        ran_on = driver.text("#results tr:nth-child(2) .backend")
        assert ran_on.startswith("cpu"), ran_on

        # NMTune on WebGPU, asked for by name. Chromium's adapter here is SwiftShader, which
        # emulates the GPU on the CPU at about 19 s per epoch of the demo, so this run is short;
        # web/tests/browser.rs checks WebGPU's numbers against native ones.
        option = driver.find_all('#backend-choice option[value="wgpu"]')[0]
        driver.s("POST", f"/element/{option}/click", {})
        driver.s("POST", "/execute/sync", {"script": "const e = document.getElementById('cfg-epochs'); e.value = '2';"
                                                     "e.dispatchEvent(new Event('change', {bubbles: true}));", "args": []})
        timings["nmtune_2_epochs_webgpu_in_page_s"], webgpu_accuracy = run_and_wait("the NMTune run on WebGPU", 2, 600)
        settings = driver.text("#results tr:nth-child(3)")
        assert "2 epochs" in settings, settings
        ran_on = driver.text("#results tr:nth-child(3) .backend")
        assert ran_on.startswith("wgpu: WebGPU"), ran_on
        assert 50.0 < webgpu_accuracy <= 100.0, webgpu_accuracy
        timings["nmtune_webgpu_accuracy_percent"] = webgpu_accuracy
        timings["webgpu_backend"] = ran_on

        # Model C, the ImageNet EfficientNet-Lite0's 1280 features: NMTune (2 epochs) on the CPU.
        for css in ['#model option[value="2"]', '#backend-choice option[value="cpu"]']:
            driver.s("POST", f"/element/{driver.find_all(css)[0]}/click", {})
        timings["nmtune_2_epochs_lite0_in_page_s"], lite0_accuracy = run_and_wait("the NMTune run on model C", 3, 600)
        row = driver.text("#results tr:nth-child(4)")
        assert "EfficientNet-Lite0" in row and "2 epochs" in row, row
        assert 50.0 < lite0_accuracy <= 100.0, lite0_accuracy
        timings["nmtune_lite0_accuracy_percent"] = lite0_accuracy

        # A bad file: a clear error, and the loaded sets untouched.
        junk = os.path.join(tempfile.mkdtemp(), "junk.safetensors")
        with open(junk, "wb") as f:
            f.write(b"this is not a safetensors file")
        file_input = driver.find_all("#file-0-train")[0]
        driver.s("POST", f"/element/{file_input}/value", {"text": junk})
        driver.wait("the error", lambda: "junk.safetensors" in (driver.text("#error") or ""))
        error = driver.text("#error")
        assert len(driver.find_all(".sets li")) == 9, "a bad file changed the loaded sets"

        shot = driver.s("GET", "/screenshot")
        with open(os.path.join(OUT, "page.png"), "wb") as f:
            f.write(base64.b64decode(shot))
        wasm = open(os.path.join(WEB, "pkg", "nml_web_bg.wasm"), "rb").read()
        timings["wasm_bytes"] = len(wasm)
        timings["wasm_gzip_bytes"] = len(gzip.compress(wasm, 9))
        timings["backend"] = backend
        timings["nmtune_accuracy_percent"] = accuracy
        timings["bad_file_error"] = error
        with open(os.path.join(OUT, "timings.json"), "w") as f:
            json.dump(timings, f, indent=2)
        print(json.dumps(timings, indent=2))
        print(f"browser end-to-end test passed; screenshot in {os.path.join(OUT, 'page.png')}")
    finally:
        if driver:
            driver.quit()
        chromedriver.terminate()
        server.terminate()


if __name__ == "__main__":
    main()
