// edgekit demo page: camera -> preprocessing (from the manifest) -> streaming model on
// LiteRT.js (states fed back, reset by button and by the manifest's rule) -> smoother ->
// the gesture, its confidence, per-frame latency p50 / p90, FPS and the accelerator.
//
// Tests drive it through window.edgekitDemo: every processed frame's logits, input (the
// first ones), timings and resets, and pushFrames() to run given RGB frames exactly.
import {preprocess} from './preprocess.js';
import {NO_LABEL, Smoother, softmax} from './smoother.js';
import {RateMeter, percentile} from './stats.js';
import {runBench} from './bench.js';
import {StreamingModel, openModel} from './stream.js';

const params = new URLSearchParams(location.search);
const KEEP_INPUTS = Number(params.get('keep_inputs') || 64); // inputs kept for checks (camera frames)
const RECENT = 300; // latencies in the live p50 / p90

const $ = (id) => document.getElementById(id);

const demo = {
  ready: false, error: null, accelerator: null, note: '', manifest: null,
  frames: [], // every processed frame: {source, index, camera_frame, reset, logits, shown, candidate, ms, prep_ms}
  resets: [], // {at (processed frame index), why}
  timings: [], // per-frame model latency (ms), every processed frame
  inputs: [], // preprocessed inputs of the first KEEP_INPUTS processed camera frames
  stats: () => summary(),
  reset: () => requestReset('button'),
  pushFrames: (frames) => pushFrames(frames),
};
window.edgekitDemo = demo;

let model, smoother, manifest, spec;
let busy = false, paused = false, pendingReset = 'start of stream', lastCameraFrame = null;
const rate = new RateMeter();
const canvas = document.createElement('canvas');
const ctx = canvas.getContext('2d', {willReadFrequently: true});

function summary() {
  const recent = demo.timings.slice(-RECENT);
  return {frames: demo.frames.length, p50_ms: percentile(recent, 50), p90_ms: percentile(recent, 90),
          fps: rate.fps, accelerator: demo.accelerator, resets: demo.resets.length,
          shown: smoother && smoother.shown >= 0 ? manifest.labels[smoother.shown] : null};
}

function requestReset(why) {
  pendingReset = why;
}

function buildBars(labels) {
  const box = $('bars');
  box.innerHTML = '';
  for (const [i, name] of labels.entries()) {
    const row = document.createElement('div');
    row.className = 'bar';
    row.innerHTML = `<span class="name">${name}</span><span class="track"><span class="fill" id="bar${i}"></span></span>`;
    box.appendChild(row);
  }
}

function show(result) {
  const labels = manifest.labels;
  const n = Math.max(1, Math.min(smoother.recent.length, smoother.window));
  const probs = softmax(Array.from(result.sum, (v) => v / n));
  for (let i = 0; i < labels.length; i++) $(`bar${i}`).style.width = `${(probs[i] * 100).toFixed(1)}%`;
  const shown = result.shown;
  $('gesture').textContent = shown === NO_LABEL ? '…' : labels[shown];
  const conf = shown === NO_LABEL ? 0 : probs[shown];
  $('confidence').style.width = `${(conf * 100).toFixed(1)}%`;
  $('confidence-text').textContent = shown === NO_LABEL ? '' : `${(conf * 100).toFixed(0)}%`;
  const s = summary();
  $('latency').textContent = `${s.p50_ms.toFixed(2)} ms p50 · ${s.p90_ms.toFixed(2)} ms p90`;
  $('fps').textContent = `${s.fps.toFixed(1)} FPS`;
  $('frames').textContent = `${s.frames} frames · ${s.resets} resets`;
}

/** Preprocess one RGB(A) frame and run it; records everything the tests read. */
async function processFrame(pixels, h, w, channels, source, cameraFrame) {
  const t0 = performance.now();
  const input = preprocess(pixels, h, w, channels, spec);
  const t1 = performance.now();
  let reset = null;
  if (pendingReset) {
    model.reset();
    smoother.reset();
    reset = pendingReset;
    demo.resets.push({at: demo.frames.length, why: reset});
    pendingReset = null;
  }
  const logits = await model.step(input);
  const t2 = performance.now();
  const result = smoother.push(logits);
  rate.tick(t2);
  demo.timings.push(t2 - t1);
  if (source === 'camera' && demo.inputs.length < KEEP_INPUTS) {
    demo.inputs.push({index: demo.frames.length, data: Array.from(input)});
  }
  const rec = {source, index: demo.frames.length, camera_frame: cameraFrame, reset, logits: Array.from(logits),
               candidate: result.candidate, shown: result.shown, ms: t2 - t1, prep_ms: t1 - t0};
  demo.frames.push(rec);
  show(result);
  return {rec, input};
}

function decodeBase64(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Run the given frames ([{width, height, rgb: base64 of H*W*3 bytes}]) as one fresh stream,
 * with the camera paused; returns their records (logits, input, shown label). */
async function pushFrames(frames) {
  paused = true;
  while (busy) await new Promise((r) => setTimeout(r, 5));
  busy = true;
  const out = [];
  try {
    requestReset('pushed frames');
    for (const f of frames) {
      const {rec, input} = await processFrame(decodeBase64(f.rgb), f.height, f.width, 3, 'pushed', null);
      out.push({...rec, input: Array.from(input)});
    }
  } finally {
    requestReset('camera resumed');
    lastCameraFrame = null;
    busy = false;
    paused = false;
  }
  return out;
}

/** The manifest's reset rule on camera frames: process one in `process_every`; a gap of
 * `idle_frames` or more since the last processed one resets the states first. */
function onCameraFrame(video, frameNo) {
  const every = manifest.reset.process_every || 1;
  const idle = manifest.reset.idle_frames || Infinity;
  if (paused || busy) return;
  if (lastCameraFrame !== null) {
    const gap = frameNo - lastCameraFrame;
    if (gap < every) return;
    if (gap >= idle) requestReset(`gap of ${gap} camera frames`);
  }
  lastCameraFrame = frameNo;
  const w = video.videoWidth, h = video.videoHeight;
  if (!w || !h) return;
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  ctx.drawImage(video, 0, 0, w, h);
  const pixels = ctx.getImageData(0, 0, w, h).data;
  busy = true;
  processFrame(pixels, h, w, 4, 'camera', frameNo)
    .catch((e) => fail(e))
    .finally(() => { busy = false; });
}

async function startCamera() {
  const video = $('video');
  // the rear camera on phones, at about VGA: the exact (antialiased) resize to the model's input
  // runs in JavaScript on every processed frame, and a 1080p frame would cost it tens of ms
  const stream = await navigator.mediaDevices.getUserMedia({audio: false,
    video: {facingMode: {ideal: 'environment'}, width: {ideal: 640}, height: {ideal: 480}}});
  video.srcObject = stream;
  await video.play();
  $('camera-button').hidden = true;
  requestReset('camera started');
  lastCameraFrame = null;
  if ('requestVideoFrameCallback' in video) {
    const loop = (now, meta) => {
      onCameraFrame(video, meta.presentedFrames);
      video.requestVideoFrameCallback(loop);
    };
    video.requestVideoFrameCallback(loop);
  } else { // no per-frame callback: count animation frames at the camera's rate instead
    let n = 0;
    const loop = () => { onCameraFrame(video, n++); requestAnimationFrame(loop); };
    requestAnimationFrame(loop);
  }
}

function fail(e) {
  demo.error = String(e && e.message ? e.message : e);
  $('status').textContent = `error: ${demo.error}`;
  console.error(e);
}

async function main() {
  manifest = await (await fetch('model/manifest.json')).json();
  demo.manifest = manifest;
  if (manifest.bench) {
    $('model').textContent = `${manifest.model || manifest.file} (${manifest.precision}), bench mode`;
    demo.bench = await runBench(manifest, params.get('accelerator') || 'auto', (t) => { $('status').textContent = t; });
    $('accelerator').textContent = demo.bench.accelerator;
    return;
  }
  spec = manifest.input_spec;
  $('model').textContent = `${manifest.model || manifest.file} (${manifest.precision})`;
  buildBars(manifest.labels);
  smoother = new Smoother(manifest.smoothing.window, manifest.smoothing.agree);
  $('status').textContent = 'loading LiteRT.js…';
  const opened = await openModel(new URL('wasm/', location.href).href, 'model/model.tflite',
                                 params.get('accelerator') || 'auto');
  model = new StreamingModel(opened.model, opened.accelerator, manifest);
  demo.accelerator = opened.accelerator;
  demo.note = opened.note;
  $('accelerator').textContent = opened.accelerator + (opened.note ? ` (${opened.note})` : '');
  $('status').textContent = '';
  $('reset-button').onclick = () => requestReset('button');
  demo.ready = true;
  if (params.get('camera') !== '0') {
    const button = $('camera-button');
    button.onclick = () => startCamera().catch(fail);
    startCamera().catch((e) => { button.hidden = false; $('status').textContent = `camera: ${e.message || e}`; });
  }
}

main().catch(fail);
