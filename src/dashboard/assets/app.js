// The dashboard page: plain browser JavaScript (no build step, no network beyond this server).
// It follows runs and studies through server-sent events and draws them with uPlot; every text
// that comes from a run (names, samples, trial descriptions) is set as text, never as HTML.
'use strict';
(function () {
  const RUN_COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
  const { baselineLinesOf, rangeWithBaselines, baselineDrawHook } = window.PocketlmCharts; // charts.js

  const state = {
    selected: [], // run ids shown (overlaid), in order
    study: null, // study id shown
    x: 'step',
    runs: new Map(), // id -> { records, samples, baselines, running, source }
    charts: new Map(), // chart element id -> { plot, key }
    studySource: null,
    listing: [],
    renderQueued: false,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  function fmtDuration(s) {
    const t = Math.max(0, Math.round(s));
    const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60);
    if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
    if (m > 0) return `${m}m${String(t % 60).padStart(2, '0')}s`;
    return `${t}s`;
  }
  const fmtCount = (n) => (Math.abs(n) >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : Math.round(n).toLocaleString('en-US'));
  const fmtMb = (mb) => (mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${Math.round(mb)} MB`);

  // ---- location: #runs=a,b or #study=s ----
  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    const runs = h.get('runs');
    state.selected = runs ? runs.split(',').filter(Boolean).map(decodeURIComponent) : [];
    state.study = h.get('study') ? decodeURIComponent(h.get('study')) : null;
    if (state.study) state.selected = [];
  }
  function writeHash() {
    const h = state.study ? `study=${encodeURIComponent(state.study)}` : state.selected.length ? `runs=${state.selected.map(encodeURIComponent).join(',')}` : '';
    if (location.hash.slice(1) !== h) history.replaceState(null, '', h ? `#${h}` : location.pathname);
  }

  // ---- the machine ----
  async function refreshSystem() {
    try {
      const s = await (await fetch('/api/system')).json();
      const parts = [];
      const mem = s.availableMemoryMb ?? s.freeMemoryMb;
      if (mem !== null) parts.push(['memory', `${fmtMb(mem)} free of ${fmtMb(s.totalMemoryMb)}`]);
      const cpu = [`${s.cores} cores`];
      if (s.cpuBusyPercent !== null) cpu.push(`${Math.round(s.cpuBusyPercent)}% busy`);
      if (s.loadAverage) cpu.push(`load ${s.loadAverage.map((x) => x.toFixed(2)).join(' ')}`);
      parts.push(['cpu', cpu.join(', ')]);
      if (s.temperatureC !== null) parts.push(['temperature', `${s.temperatureC.toFixed(1)} °C`, s.temperatureC > 45]);
      if (s.batteryPercent !== null) parts.push(['battery', `${Math.round(s.batteryPercent)}%${s.charging === true ? ', charging' : s.charging === false ? ', not charging' : ''}`, s.batteryPercent < 20 && s.charging !== true]);
      if (s.diskFreeMb !== null) parts.push(['disk', `${fmtMb(s.diskFreeMb)} free`]);
      $('system').replaceChildren(...parts.map(([k, v, hot]) => el('span', { class: hot ? 'hot' : '', 'data-what': k }, `${k}: ${v}`)));
    } catch {
      // the server went away: keep the last readings
    }
  }

  // ---- the listing ----
  async function refreshList() {
    let data;
    try {
      data = await (await fetch('/api/list')).json();
    } catch {
      return;
    }
    state.listing = data.items;
    const runs = data.items.filter((x) => x.kind === 'run');
    const studies = data.items.filter((x) => x.kind === 'study');
    $('runs').replaceChildren(...runs.map((r) => {
      const box = el('input', { type: 'checkbox', title: 'overlay', onchange: (e) => toggleRun(r.id, e.target.checked) });
      box.checked = state.selected.includes(r.id);
      const last = r.last ? ` step ${r.last.step}` : '';
      return el('li', { 'data-id': r.id }, el('span', { class: `dot ${r.running ? 'live' : 'idle'}`, title: r.running ? 'training now' : 'not running' }), box,
        el('span', { class: `name${state.selected.includes(r.id) ? ' open' : ''}`, onclick: () => openRunsOnly([r.id]) }, r.id, el('span', { class: 'hint' }, last)));
    }));
    $('studies').replaceChildren(...studies.map((s) => el('li', { 'data-id': s.id },
      el('span', { class: `dot ${s.running ? 'live' : 'idle'}` }),
      el('span', { class: `name${state.study === s.id ? ' open' : ''}`, onclick: () => openStudy(s.id) }, s.id))));
  }

  // ---- runs ----
  function follow(id) {
    if (state.runs.has(id)) return;
    const run = { records: [], samples: [], baselines: null, running: false, source: null };
    const src = new EventSource(`/api/run/stream?id=${encodeURIComponent(id)}`);
    run.source = src;
    src.addEventListener('reset', (e) => {
      const what = JSON.parse(e.data).what;
      if (what === 'log') run.records = [];
      else run.samples = [];
      queueRender();
    });
    src.addEventListener('log', (e) => {
      for (const entry of JSON.parse(e.data)) {
        if (entry.event === 'rollback') {
          // the steps after the state it went back to were discarded: they are redone next
          while (run.records.length && run.records[run.records.length - 1].step > entry.to_step) run.records.pop();
        } else if (!entry.event && typeof entry.step === 'number') {
          run.records.push(entry);
        }
      }
      queueRender();
    });
    src.addEventListener('samples', (e) => { run.samples.push(...JSON.parse(e.data)); queueRender(); });
    src.addEventListener('baselines', (e) => { run.baselines = JSON.parse(e.data); queueRender(); });
    src.addEventListener('status', (e) => { run.running = JSON.parse(e.data).running; queueRender(); });
    src.addEventListener('error', () => {
      // refused (not listed yet: `train --dashboard` opens the page before the run folder has files): ask again
      if (src.readyState !== EventSource.CLOSED) return;
      state.runs.delete(id);
      setTimeout(() => { if (state.selected.includes(id) && !state.runs.has(id)) { follow(id); queueRender(); } }, 2000);
    });
    state.runs.set(id, run);
  }

  function unfollowAllBut(keep) {
    for (const [id, run] of state.runs) {
      if (keep.includes(id)) continue;
      run.source.close();
      state.runs.delete(id);
    }
  }

  function openRunsOnly(ids) {
    closeStudy();
    state.selected = ids.slice();
    unfollowAllBut(ids);
    ids.forEach(follow);
    writeHash();
    refreshList();
    queueRender();
  }

  function toggleRun(id, on) {
    const ids = state.selected.filter((x) => x !== id);
    if (on) ids.push(id);
    openRunsOnly(ids);
  }

  function queueRender() {
    if (state.renderQueued) return;
    state.renderQueued = true;
    requestAnimationFrame(() => { state.renderQueued = false; render(); });
  }

  const xOf = (r) => (state.x === 'step' ? r.step : state.x === 'time' ? r.elapsed : r.tokens);

  /** The distinct baselines of the shown runs (one set per dataset), in nats or bits per byte. */
  function baselineLines(unit) {
    const sets = new Map(); // key -> { b, ids }
    for (const id of state.selected) {
      const b = state.runs.get(id)?.baselines;
      if (!b) continue;
      const key = JSON.stringify(b.uniform);
      if (sets.has(key)) sets.get(key).ids.push(id);
      else sets.set(key, { b, ids: [id] });
    }
    const out = [];
    for (const { b, ids } of sets.values()) out.push(...baselineLinesOf(b, unit, sets.size > 1 ? ` (${ids.join(', ')})` : ''));
    return out;
  }

  /** One uPlot chart: per shown run the fields, aligned on the x axis (uPlot.join), with the baselines drawn as dashed lines. */
  function drawChart(elId, title, fields, unit, height) {
    const box = $(elId);
    const tables = [];
    const series = [{ label: state.x }];
    state.selected.forEach((id, i) => {
      const run = state.runs.get(id);
      if (!run) return;
      const recs = run.records;
      const xs = recs.map(xOf);
      const cols = fields.map((f) => recs.map((r) => (typeof r[f.key] === 'number' ? r[f.key] : null)));
      tables.push([xs, ...cols]);
      fields.forEach((f, j) => {
        const color = j === 0 ? RUN_COLORS[i % RUN_COLORS.length] : (f.color && state.selected.length === 1 ? f.color : RUN_COLORS[i % RUN_COLORS.length]);
        series.push({
          label: state.selected.length > 1 ? `${id}: ${f.label}` : f.label,
          stroke: color, width: f.sparse ? 2 : 1.25, spanGaps: true,
          points: { show: f.sparse ? true : false, size: 5 },
          dash: j > 0 && state.selected.length > 1 ? [6, 3] : undefined,
        });
      });
    });
    const base = unit ? baselineLines(unit) : [];
    const data = tables.length ? uPlot.join(tables) : [[]];
    const width = Math.max(260, Math.floor(box.clientWidth - 10));
    const key = JSON.stringify([series.map((s) => s.label), state.x, width, base.map((b) => b.name)]);
    let entry = state.charts.get(elId);
    if (entry && entry.key !== key) {
      entry.plot.destroy();
      entry = null;
    }
    // count what is drawn (the browser test reads these)
    let points = 0;
    for (let k = 1; k < data.length; k++) for (const v of data[k]) if (v !== null && v !== undefined) points++;
    box.dataset.points = String(points);
    box.dataset.series = String(series.length - 1);
    if (!entry) {
      const opts = {
        title, width, height,
        scales: {
          x: { time: false },
          y: { range: rangeWithBaselines(base) },
        },
        axes: [
          { values: state.x === 'time' ? (u, vals) => vals.map(fmtDuration) : state.x === 'tokens' ? (u, vals) => vals.map(fmtCount) : undefined },
          { size: 60 },
        ],
        series,
        hooks: {
          draw: [baselineDrawHook(base)],
        },
      };
      box.replaceChildren();
      entry = { plot: new uPlot(opts, data, box), key };
      state.charts.set(elId, entry);
    } else {
      entry.plot.setData(data);
    }
  }

  function renderRun() {
    $('run-view').hidden = false;
    const first = state.runs.get(state.selected[0]);
    $('run-title').textContent = state.selected.join(' + ');
    const svg = new URLSearchParams();
    for (const id of state.selected) svg.append('run', id);
    svg.set('metric', 'val_bpb');
    svg.set('x', state.x);
    $('svg-link').href = `/api/plot.svg?${svg}`;
    if (first) {
      const last = first.records[first.records.length - 1];
      const vals = first.records.filter((r) => typeof r.val_bpb === 'number');
      const best = vals.reduce((a, r) => (a === null || r.val_bpb < a.val_bpb ? r : a), null);
      $('run-stats').textContent = last
        ? `${first.running ? 'training' : 'not running'} · step ${last.step} · loss ${last.loss.toFixed(4)} · ${fmtCount(last.tokens_per_second)} tok/s · ${fmtDuration(last.elapsed)}` +
          (best ? ` · best val ${best.val_bpb.toFixed(4)} bits/byte at step ${best.step}` : '')
        : `${first.running ? 'training' : 'not running'} · no step logged yet`;
    }
    drawChart('chart-loss', 'loss (nats/token)', [{ key: 'loss', label: 'train loss' }, { key: 'val_loss', label: 'val loss', sparse: true, color: '#ff7f0e' }], 'nats', 300);
    drawChart('chart-bpb', 'validation bits per byte', [{ key: 'val_bpb', label: 'val bpb', sparse: true }], 'bpb', 300);
    drawChart('chart-lr', 'learning rate', [{ key: 'lr', label: 'lr' }], null, 180);
    drawChart('chart-gnorm', 'gradient norm', [{ key: 'grad_norm', label: 'grad norm' }], null, 180);
    drawChart('chart-tps', 'tokens per second', [{ key: 'tokens_per_second', label: 'tok/s' }], null, 180);
    const recs = first ? first.samples.slice(-20).reverse() : [];
    // a sample that ended at once (an end-of-text token first) has nothing to show
    $('samples').replaceChildren(...recs.flatMap((r) => r.samples.filter((text) => text.trim() !== '').map((text) =>
      el('div', { class: 'sample', 'data-step': r.step }, el('span', { class: 'step' }, `step ${r.step} · ${fmtDuration(r.elapsed)}`), text))));
  }

  // ---- studies ----
  function closeStudy() {
    if (state.studySource) state.studySource.close();
    state.studySource = null;
    state.study = null;
    $('study-view').hidden = true;
  }

  function openStudy(id) {
    closeStudy();
    unfollowAllBut([]);
    state.selected = [];
    state.study = id;
    writeHash();
    refreshList();
    render();
    const src = new EventSource(`/api/study/stream?id=${encodeURIComponent(id)}`);
    state.studySource = src;
    src.addEventListener('summary', (e) => renderStudy(id, JSON.parse(e.data)));
  }

  function renderStudy(id, { running, summary }) {
    $('study-title').textContent = `${id} · ${summary.rows.length} trials, ${summary.kept.length} kept${summary.best_bpb != null ? ` · best ${summary.best_bpb.toFixed(4)} bits/byte` : ''}${running ? ' · running' : summary.ended ? ` · ended: ${summary.ended}` : ''}`;
    $('study-progress').src = `/api/study/progress.svg?id=${encodeURIComponent(id)}&n=${summary.rows.length}-${Date.now()}`;
    const num = (v, d = 4) => (v === null || v === undefined ? '' : Number(v).toFixed(d));
    $('trials').tBodies[0].replaceChildren(...summary.rows.slice().reverse().map((r) => el('tr', { class: r.kept ? 'kept' : '' },
      el('td', {}, r.id), el('td', {}, r.kind), el('td', {}, r.description), el('td', {}, r.status + (r.reason ? `: ${r.reason}` : '')),
      el('td', {}, num(r.val_bpb)), el('td', {}, r.kept === true ? 'kept' : r.kept === false ? 'no' : ''), el('td', {}, num(r.best_bpb)),
      el('td', {}, r.tokens_per_second ? fmtCount(r.tokens_per_second) : ''))));
  }

  function render() {
    const showRun = !state.study && state.selected.length > 0;
    $('run-view').hidden = !showRun;
    $('study-view').hidden = !state.study;
    $('empty-view').hidden = showRun || !!state.study;
    if (showRun) renderRun();
  }

  $('x-axis').addEventListener('change', (e) => { state.x = e.target.value; queueRender(); });
  window.addEventListener('resize', queueRender);
  window.addEventListener('hashchange', () => {
    readHash();
    if (state.study) openStudy(state.study);
    else openRunsOnly(state.selected);
  });

  readHash();
  if (state.study) openStudy(state.study);
  else openRunsOnly(state.selected);
  refreshList();
  refreshSystem();
  setInterval(refreshList, 3000);
  setInterval(refreshSystem, 5000);
})();
