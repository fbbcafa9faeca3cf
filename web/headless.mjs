// Drive the demo page in headless Chromium (Debian's /usr/bin/chromium) for edgekit's tests
// and measurements: a fake camera fed by a .y4m clip, then optionally frames pushed through
// window.edgekitDemo.pushFrames for an exact comparison. Usage: node headless.mjs CONFIG.json
// CONFIG: {url, chromium, y4m, user_data_dir, out_dir, camera_frames, until_gesture, push (path to a JSON
// list of frames {width, height, rgb}), timeout_ms}; writes out_dir/result.json and PNG screenshots.
import {readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const timeout = cfg.timeout_ms || 60000;
const args = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream', '--ignore-certificate-errors'];
if (cfg.y4m) args.push(`--use-file-for-fake-video-capture=${cfg.y4m}`);

const context = await chromium.launchPersistentContext(cfg.user_data_dir, {
  executablePath: cfg.chromium || '/usr/bin/chromium', headless: true, args,
  viewport: {width: 480, height: 720}, ignoreHTTPSErrors: true});
const result = {console: [], errors: []};
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => { if (m.type() === 'error') result.console.push(m.text()); });
  page.on('pageerror', (e) => result.errors.push(e.message));
  await page.goto(cfg.url);
  await page.waitForFunction(() => window.edgekitDemo && (window.edgekitDemo.ready || window.edgekitDemo.error),
                             null, {timeout});
  const want = cfg.camera_frames || 0;
  if (want > 0) {
    await page.waitForFunction((n) => window.edgekitDemo.error ||
        window.edgekitDemo.frames.filter((f) => f.source === 'camera').length >= n, want, {timeout});
    if (cfg.until_gesture) { // then until the page shows this gesture (recorded, not thrown, when it never does)
      await page.waitForFunction((g) => document.getElementById('gesture').textContent === g, cfg.until_gesture,
                                 {timeout}).catch((e) => { result.wait_error = String(e.message || e); });
    }
    await page.screenshot({path: join(cfg.out_dir, 'camera.png')});
  }
  result.camera = await page.evaluate(() => {
    const d = window.edgekitDemo;
    return {error: d.error, accelerator: d.accelerator, note: d.note, stats: d.stats(), frames: d.frames,
            inputs: d.inputs, resets: d.resets, timings: d.timings,
            text: {gesture: document.getElementById('gesture').textContent,
                   latency: document.getElementById('latency').textContent,
                   fps: document.getElementById('fps').textContent,
                   accelerator: document.getElementById('accelerator').textContent}};
  });
  if (cfg.push) {
    const frames = JSON.parse(readFileSync(cfg.push, 'utf8'));
    result.pushed = await page.evaluate((f) => window.edgekitDemo.pushFrames(f), frames);
    result.pushed_text = await page.evaluate(() => document.getElementById('gesture').textContent);
    await page.screenshot({path: join(cfg.out_dir, 'pushed.png')});
  }
} catch (e) {
  result.errors.push(String(e && e.message ? e.message : e));
} finally {
  await context.close();
}
writeFileSync(join(cfg.out_dir, 'result.json'), JSON.stringify(result));
process.exit(result.errors.length ? 1 : 0);
