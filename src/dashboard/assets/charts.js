// Chart helpers shared by the dashboard (app.js) and the in-browser trainer (src/web/app): the
// baselines as dashed horizontal lines on a uPlot chart, and a y range that keeps them in view.
// A plain script (no modules): it defines window.PocketlmCharts for the pages that load it.
(function () {
  'use strict';
  const BASE_COLORS = { uniform: '#bbbbbb', unigram: '#999999', bigram: '#777777', trigram: '#444444' };
  const BASE_ORDER = ['trigram', 'bigram', 'unigram', 'uniform'];

  /** A baselines.json object as lines { name, y, color } in nats or bits per byte; `suffix` tells sets apart. */
  function baselineLinesOf(b, unit, suffix) {
    return BASE_ORDER.map((k) => ({ name: k + (suffix || ''), y: unit === 'bpb' ? b[k].bpb : b[k].nats, color: BASE_COLORS[k] }));
  }

  /** uPlot y-scale range covering the data and every baseline, padded by 5%. */
  function rangeWithBaselines(base) {
    return (u, min, max) => {
      const ys = base.map((b) => b.y);
      let lo = Math.min(min ?? Infinity, ...ys), hi = Math.max(max ?? -Infinity, ...ys);
      if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
      if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
      const pad = (hi - lo) * 0.05;
      return [lo - pad, hi + pad];
    };
  }

  /** uPlot draw hook: each baseline as a labelled dashed line; the count drawn goes to the chart box's data-baselines-drawn (tests read it). */
  function baselineDrawHook(base) {
    return (u) => {
      const ctx = u.ctx;
      let drawn = 0;
      ctx.save();
      ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.lineWidth = devicePixelRatio;
      ctx.font = `${11 * devicePixelRatio}px sans-serif`;
      for (const b of base) {
        const y = u.valToPos(b.y, 'y', true);
        if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
        ctx.strokeStyle = b.color;
        ctx.beginPath();
        ctx.moveTo(u.bbox.left, y);
        ctx.lineTo(u.bbox.left + u.bbox.width, y);
        ctx.stroke();
        ctx.fillStyle = b.color;
        ctx.textAlign = 'right';
        ctx.fillText(`${b.name} ${b.y.toFixed(3)}`, u.bbox.left + u.bbox.width - 4, y - 3 * devicePixelRatio);
        drawn++;
      }
      ctx.restore();
      u.root.parentElement.dataset.baselinesDrawn = String(drawn);
    };
  }

  window.PocketlmCharts = { BASE_COLORS, BASE_ORDER, baselineLinesOf, rangeWithBaselines, baselineDrawHook };
})();
