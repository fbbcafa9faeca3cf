// The streaming model on LiteRT.js: one frame per call, every state tensor fed back by name.
//
// The page manifest names each tensor by its signature key (what LiteRT.js's run() takes
// in a record), so states are wired by name, never by position. A quantized (int8) model's
// frame is quantized, its logits dequantized, and a state whose input and output scales
// differ is requantized on the way back (what the export manifest says to do).
import {Tensor, isWebGPUSupported, loadAndCompile, loadLiteRt, supportsFeature} from '@litertjs/core';

const ARRAYS = {float32: Float32Array, int8: Int8Array, uint8: Uint8Array, int32: Int32Array};

export function arrayType(dtype) {
  const T = ARRAYS[dtype];
  if (!T) throw new Error(`unsupported tensor dtype ${dtype}`);
  return T;
}

function quantize(values, dtype, q) {
  const T = arrayType(dtype);
  if (!q) return values instanceof T ? values : T.from(values);
  const out = new T(values.length);
  const lo = dtype === 'int8' ? -128 : 0, hi = dtype === 'int8' ? 127 : 255;
  for (let i = 0; i < values.length; i++) {
    out[i] = Math.min(hi, Math.max(lo, Math.round(values[i] / q.scale + q.zero_point)));
  }
  return out;
}

function dequantize(values, q) {
  if (!q) return Float32Array.from(values);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = (values[i] - q.zero_point) * q.scale;
  return out;
}

export const count = (shape) => shape.reduce((a, b) => a * b, 1);

/** Load the LiteRT.js runtime from `wasmDir` and compile `modelUrl` on WebGPU when the browser
 * has it (and `want` allows), else on WASM (XNNPACK). Returns {model, accelerator, note}. */
export async function openModel(wasmDir, modelUrl, want = 'auto') {
  const t0 = performance.now();
  let gpu = false;
  if (want !== 'wasm' && isWebGPUSupported()) {
    try {
      gpu = !!(await navigator.gpu.requestAdapter());
    } catch (e) {
      gpu = false;
    }
  }
  // WebGPU runs need the JSPI build on LiteRT.js 2.5 (LiteRT issue #7314); WASM uses the plain one
  const jspi = gpu && (await supportsFeature('jspi').catch(() => false));
  await loadLiteRt(wasmDir, {jspi});
  const t1 = performance.now();
  const times = () => ({runtime_load_ms: t1 - t0, compile_ms: performance.now() - t1});
  let note = gpu ? '' : 'no WebGPU adapter';
  if (gpu) {
    try {
      const model = await loadAndCompile(modelUrl, {accelerator: 'webgpu'});
      return {model, accelerator: model.isFullyAccelerated === false ? 'webgpu+wasm' : 'webgpu', note, ...times()};
    } catch (e) {
      note = `WebGPU failed (${e.message || e}); using WASM`;
    }
  }
  const model = await loadAndCompile(modelUrl, {accelerator: 'wasm'});
  return {model, accelerator: 'wasm', note, ...times()};
}

/** Frame -> logits with the states carried between calls; reset() sets them to their init. */
export class StreamingModel {
  constructor(model, accelerator, manifest) {
    this.model = model;
    this.accelerator = accelerator;
    this.frame = manifest.frame_input;
    this.logitsOut = manifest.logits_output;
    this.states = manifest.states;
    const names = new Set(model.getInputDetails().map((d) => d.name));
    for (const want of [this.frame.signature, ...this.states.map((s) => s.signature_input)]) {
      if (!names.has(want)) throw new Error(`the model has no input ${want} (it has ${[...names].join(', ')})`);
    }
    this.current = null;
    this.reset();
  }

  _stateInit(s) {
    const T = arrayType(s.dtype);
    const data = new T(count(s.shape));
    if (s.init_native) data.fill(s.init_native); // int8: the float zero is the zero point
    return new Tensor(data, s.shape);
  }

  /** Zero the states (their manifest init): the start of a new stream. */
  reset() {
    if (this.current) for (const t of Object.values(this.current)) t.delete();
    this.current = {};
    for (const s of this.states) this.current[s.signature_input] = this._stateInit(s);
  }

  async _toHost(t) {
    return t.accelerator === 'wasm' ? t : await t.moveTo('wasm');
  }

  /** Run one preprocessed frame (Float32Array NCHW); returns Float32Array logits. */
  async step(input) {
    const f = this.frame;
    const frame = new Tensor(quantize(input, f.dtype, f.quantization), f.shape);
    const feeds = {[f.signature]: frame, ...this.current};
    let outputs;
    try {
      outputs = await this.model.run(feeds);
    } finally {
      frame.delete();
    }
    const next = {};
    for (const s of this.states) {
      const out = outputs[s.signature_output];
      delete outputs[s.signature_output];
      const q = s.quantization;
      if (q && q.feed_back !== 'as is') {
        const host = await this._toHost(out);
        const back = quantize(dequantize(host.toTypedArray(), q.output), s.dtype, q.input);
        host.delete();
        next[s.signature_input] = new Tensor(back, s.shape);
      } else {
        next[s.signature_input] = out; // stays where the accelerator put it
      }
    }
    for (const t of Object.values(this.current)) t.delete();
    this.current = next;
    const logitsT = await this._toHost(outputs[this.logitsOut.signature]);
    delete outputs[this.logitsOut.signature];
    const logits = dequantize(logitsT.toTypedArray(), this.logitsOut.quantization);
    logitsT.delete();
    for (const t of Object.values(outputs)) t.delete();
    return logits;
  }
}
