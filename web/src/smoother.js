// What the demo shows over time, the rule of edgekit/evaluation/smoothing.py: the logits of the last
// `window` processed frames are summed and their argmax is the frame's candidate; the label
// shown switches to a candidate once `agree` consecutive candidates name it (none before).

export const NO_LABEL = -1;

export class Smoother {
  constructor(window, agree) {
    this.window = window;
    this.agree = agree;
    this.reset();
  }

  reset() {
    this.recent = [];
    this.previous = null;
    this.run = 0;
    this.shown = NO_LABEL;
  }

  /** Feed one frame's logits; returns {candidate, shown, sum} (sum: the windowed logit sum). */
  push(logits) {
    this.recent.push(Float64Array.from(logits));
    if (this.recent.length > this.window) this.recent.shift();
    const sum = new Float64Array(logits.length);
    for (const l of this.recent) for (let i = 0; i < sum.length; i++) sum[i] += l[i];
    let candidate = 0;
    for (let i = 1; i < sum.length; i++) if (sum[i] > sum[candidate]) candidate = i;
    this.run = candidate === this.previous ? this.run + 1 : 1;
    this.previous = candidate;
    if (this.run >= this.agree) this.shown = candidate;
    return {candidate, shown: this.shown, sum};
  }
}

/** Softmax of `x` (numerically stable). */
export function softmax(x) {
  let m = -Infinity;
  for (const v of x) m = Math.max(m, v);
  const e = Array.from(x, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}
