// Build the demo page into the Python package (edgekit/demo/static, git-ignored):
// bundle src/main.js with esbuild, copy the page, and copy LiteRT.js's WASM runtime from
// node_modules (about 9 MB per file, kept out of git; nothing is fetched at run time).
import {build} from 'esbuild';
import {copyFileSync, mkdirSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'edgekit', 'demo', 'static');
const wasmSrc = join(here, 'node_modules', '@litertjs', 'core', 'wasm');
// the plain, compat (no relaxed SIMD) and JSPI (WebGPU) builds; the threaded one needs cross-origin isolation
const WASM = ['litert_wasm_internal', 'litert_wasm_compat_internal', 'litert_wasm_jspi_internal'];

mkdirSync(join(out, 'wasm'), {recursive: true});
await build({entryPoints: [join(here, 'src', 'main.js')], bundle: true, format: 'esm', target: 'es2022',
             minify: true, sourcemap: false, outfile: join(out, 'app.js'), logLevel: 'warning'});
for (const f of ['index.html', 'style.css']) copyFileSync(join(here, f), join(out, f));
for (const name of WASM) {
  for (const ext of ['.js', '.wasm']) copyFileSync(join(wasmSrc, name + ext), join(out, 'wasm', name + ext));
}
console.log(`built ${out}`);
