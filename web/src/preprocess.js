// One camera frame -> the model's input tensor, exactly as edgekit's eval transform
// (edgekit/data/transforms.py) does it for one frame of a clip:
//   uint8 RGB -> Resize(resize, antialias=True) -> CenterCrop(crop) -> /255 -> (x - mean) / std, NCHW.
// The resize is torchvision's antialiased bilinear resize of uint8 images (the PIL
// algorithm: a triangle filter stretched by the scale factor when shrinking, fixed-point
// weights, a horizontal pass rounded to uint8, then a vertical pass rounded to uint8).

/** The [H, W] the Resize step produces for an image of h x w (torchvision's rule). */
export function resizedSize(resize, h, w) {
  if (Array.isArray(resize)) return [resize[0], resize[1]];
  // an int: the shorter side becomes `resize`, the longer keeps the aspect (truncated)
  if (h <= w) return [resize, Math.trunc((resize * w) / h)];
  return [Math.trunc((resize * h) / w), resize];
}

/** Filter taps of one output axis: for each output index, [first input index, integer weights],
 * and the weights' fixed-point precision (torch's int16 weights of its uint8 AVX kernel, the
 * PIL scheme: as many fraction bits as keep the largest weight below 2^15). */
function taps(inSize, outSize) {
  const scale = inSize / outSize;
  const support = scale >= 1 ? scale : 1;
  const inv = scale >= 1 ? 1 / scale : 1;
  const out = [];
  let wMax = 0;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const w = new Float64Array(xmax - xmin);
    let total = 0;
    for (let j = 0; j < w.length; j++) {
      const x = (j + xmin - center + 0.5) * inv;
      w[j] = Math.max(0, 1 - Math.abs(x));
      total += w[j];
    }
    for (let j = 0; j < w.length; j++) {
      w[j] = total > 0 ? w[j] / total : 0;
      wMax = Math.max(wMax, w[j]);
    }
    out.push([xmin, w]);
  }
  let precision = 0;
  for (; precision < 22; precision++) {
    if (Math.trunc(0.5 + wMax * 2 ** (precision + 1)) >= 2 ** 15) break;
  }
  const unit = 2 ** precision;
  const fixed = out.map(([x0, w]) => [x0, Int32Array.from(w, (v) => Math.trunc(v < 0 ? v * unit - 0.5 : v * unit + 0.5))]);
  return {taps: fixed, precision};
}

/** Python's round(): halves to the even neighbour (torchvision's centre crop offsets use it). */
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const clamp8 = (v) => (v <= 0 ? 0 : v >= 255 ? 255 : v);

/** Antialiased bilinear resize of interleaved RGB(A) uint8 pixels to outH x outW RGB uint8. */
export function resizeRGB(src, h, w, channels, outH, outW) {
  if (outH === h && outW === w) {
    const out = new Uint8Array(h * w * 3);
    for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = src[p * channels + c];
    return out;
  }
  // horizontal pass: h x outW (identity when the width is unchanged)
  let mid;
  if (outW === w) {
    mid = new Uint8Array(h * w * 3);
    for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) mid[p * 3 + c] = src[p * channels + c];
  } else {
    mid = new Uint8Array(h * outW * 3);
    const {taps: tx, precision} = taps(w, outW);
    const half = 2 ** (precision - 1), unit = 2 ** precision;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < outW; x++) {
        const [x0, wt] = tx[x];
        for (let c = 0; c < 3; c++) {
          let s = half;
          for (let k = 0; k < wt.length; k++) s += wt[k] * src[(y * w + x0 + k) * channels + c];
          mid[(y * outW + x) * 3 + c] = clamp8(Math.floor(s / unit));
        }
      }
    }
  }
  if (outH === h) return mid;
  const out = new Uint8Array(outH * outW * 3);
  const {taps: ty, precision} = taps(h, outH);
  const half = 2 ** (precision - 1), unit = 2 ** precision;
  for (let y = 0; y < outH; y++) {
    const [y0, wt] = ty[y];
    for (let x = 0; x < outW; x++) {
      for (let c = 0; c < 3; c++) {
        let s = half;
        for (let k = 0; k < wt.length; k++) s += wt[k] * mid[((y0 + k) * outW + x) * 3 + c];
        out[(y * outW + x) * 3 + c] = clamp8(Math.floor(s / unit));
      }
    }
  }
  return out;
}

/**
 * Interleaved uint8 pixels (`channels` 3 or 4 per pixel, h x w) -> Float32Array NCHW [1, 3, H, W]
 * through the manifest's input spec {resize, crop, mean, std}.
 */
export function preprocess(pixels, h, w, channels, spec) {
  const [rh, rw] = resizedSize(spec.resize, h, w);
  let img = resizeRGB(pixels, h, w, channels, rh, rw);
  let ih = rh, iw = rw;
  if (spec.crop) {
    const [ch, cw] = Array.isArray(spec.crop) ? spec.crop : [spec.crop, spec.crop];
    if (ch > ih || cw > iw) throw new Error(`crop ${ch}x${cw} is larger than the resized ${ih}x${iw} frame`);
    const top = roundHalfEven((ih - ch) / 2), left = roundHalfEven((iw - cw) / 2);
    const cropped = new Uint8Array(ch * cw * 3);
    for (let y = 0; y < ch; y++) {
      cropped.set(img.subarray(((y + top) * iw + left) * 3, ((y + top) * iw + left + cw) * 3), y * cw * 3);
    }
    img = cropped; ih = ch; iw = cw;
  }
  const out = new Float32Array(3 * ih * iw);
  const plane = ih * iw;
  for (let c = 0; c < 3; c++) {
    const m = spec.mean[c], s = spec.std[c];
    for (let p = 0; p < plane; p++) out[c * plane + p] = (img[p * 3 + c] / 255 - m) / s;
  }
  return out;
}
