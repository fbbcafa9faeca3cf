// Bench mode (`?bench=1`, used by `edgekit bench --runtime browser`): load any .tflite with
// LiteRT.js, time the first call, warm-up and timed calls on random inputs (a streaming
// model's states fed back by name, one frame per call), and post every timing to the server.
import {Tensor} from '@litertjs/core';
import {StreamingModel, arrayType, count, openModel} from './stream.js';

function randomInput(dtype, n) {
  const T = arrayType(dtype);
  const out = new T(n);
  for (let i = 0; i < n; i++) out[i] = dtype === 'float32' ? Math.random() * 2 - 1 : Math.floor(Math.random() * 256) - 128;
  return out;
}

/** One call of a non-streaming model on fixed random inputs (outputs read back to the host). */
function plainStep(model) {
  const inputs = model.getInputDetails().map((d) => new Tensor(randomInput(d.dtype, count(d.shape)), Array.from(d.shape)));
  return async () => {
    const outs = await model.run(inputs);
    for (const t of outs) {
      const host = t.accelerator === 'wasm' ? t : await t.moveTo('wasm');
      host.toTypedArray();
      host.delete();
    }
  };
}

export async function runBench(manifest, want, status) {
  const cfg = manifest.bench;
  const opened = await openModel(new URL('wasm/', location.href).href, 'model/model.tflite', want);
  const streaming = manifest.states && manifest.states.length > 0;
  let step;
  if (streaming) {
    const sm = new StreamingModel(opened.model, opened.accelerator, manifest);
    const frame = randomInput('float32', count(manifest.frame_input.shape));
    step = () => sm.step(frame);
  } else {
    step = plainStep(opened.model);
  }
  status(`benchmarking on ${opened.accelerator}…`);
  let t = performance.now();
  await step();
  const first = performance.now() - t;
  for (let i = 0; i < cfg.warmup; i++) await step();
  const latencies = [];
  for (let i = 0; i < cfg.runs; i++) {
    t = performance.now();
    await step();
    latencies.push(performance.now() - t);
  }
  const result = {accelerator: opened.accelerator, note: opened.note, runtime_load_ms: opened.runtime_load_ms,
                  init_ms: opened.compile_ms, first_run_ms: first, latencies_ms: latencies, warmup_runs: cfg.warmup,
                  user_agent: navigator.userAgent, streaming, cross_origin_isolated: self.crossOriginIsolated === true};
  const r = await fetch('api/bench', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                      body: JSON.stringify(result)});
  if (!r.ok) throw new Error(`posting the results failed: HTTP ${r.status}`);
  status(`done: ${latencies.length} runs on ${opened.accelerator}, results sent to edgekit`);
  return result;
}
