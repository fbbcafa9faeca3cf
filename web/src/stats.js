// Live latency statistics: percentiles with linear interpolation between order statistics
// (numpy's default, as edgekit bench reports them) and frames per second over a recent window.

export function percentile(values, q) {
  if (!values.length) return NaN;
  const s = Float64Array.from(values).sort();
  const pos = (q / 100) * (s.length - 1);
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export class RateMeter {
  constructor(span = 2000) {
    this.span = span;
    this.times = [];
  }

  tick(now) {
    this.times.push(now);
    while (this.times.length > 2 && now - this.times[0] > this.span) this.times.shift();
  }

  get fps() {
    const n = this.times.length;
    if (n < 2) return 0;
    return ((n - 1) * 1000) / (this.times[n - 1] - this.times[0]);
  }
}
