// Renders report.html from the run's records (the JSON above). No dependency, nothing fetched.
'use strict';
(function () {
  const data = JSON.parse(document.getElementById('data').textContent);
  const tests = data.tests;
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const row = (cells, cls) => {
    const tr = el('tr', null, cls);
    for (const c of cells) tr.appendChild(c instanceof Node ? c : el('td', c));
    return tr;
  };
  const num = (v) => el('td', v, 'num');
  const seconds = (t) => (t.attempts || []).reduce((s, a) => s + a.phases.setup + a.phases.call + a.phases.teardown, 0);
  const kind = (t) => t.outcome.kind;
  const why = (o) => o.message || o.reason || o.cause || (o.after !== undefined ? 'after ' + o.after + ' s' : '') ||
    (o.attempts !== undefined ? 'passed on attempt ' + o.attempts : '');

  const run = data.run;
  $('run').textContent = [run.binary, run.commit && 'commit ' + run.commit.slice(0, 12), run.branch && 'branch ' + run.branch,
    run.started_at, run.duration_seconds.toFixed(2) + ' s', run.partition && 'shard ' + run.partition,
    run.interrupted && 'INTERRUPTED'].filter(Boolean).join(' · ');

  const counts = {};
  for (const t of tests) counts[kind(t)] = (counts[kind(t)] || 0) + 1;
  $('counts').appendChild(row([el('th', 'outcome'), el('th', 'tests')]));
  for (const k of Object.keys(counts).sort()) $('counts').appendChild(row([el('td', k, 'o-' + k), num(counts[k])]));
  $('counts').appendChild(row([el('td', 'total'), num(tests.length)]));

  const slow = tests.map((t, i) => [seconds(t), i]).sort((a, b) => b[0] - a[0]).slice(0, 10);
  $('slow').appendChild(row([el('th', 'test'), el('th', 'seconds'), el('th', 'outcome')]));
  for (const [s, i] of slow) $('slow').appendChild(row([tests[i].name, num(s.toFixed(3)), el('td', kind(tests[i]), 'o-' + kind(tests[i]))]));

  const options = (id, values) => {
    for (const v of [...values].sort()) { const o = el('option', v); o.value = v; $(id).appendChild(o); }
  };
  options('f-outcome', new Set(tests.map(kind)));
  options('f-suite', new Set(tests.map((t) => t.suite)));
  options('f-marker', new Set(tests.flatMap((t) => t.markers)));

  const body = document.querySelector('#list tbody');
  const rows = [];
  const fragment = document.createDocumentFragment();
  tests.forEach((t, i) => {
    const tr = row([t.name, t.suite, t.markers.join(', '), el('td', kind(t), 'o-' + kind(t)),
      num(seconds(t).toFixed(3)), num((t.attempts || []).length)]);
    tr.dataset.index = i;
    rows.push(tr);
    fragment.appendChild(tr);
  });
  body.appendChild(fragment);

  const apply = () => {
    const [o, s, m, n] = ['f-outcome', 'f-suite', 'f-marker', 'f-name'].map((id) => $(id).value);
    const needle = n.toLowerCase();
    let shown = 0;
    tests.forEach((t, i) => {
      const keep = (!o || kind(t) === o) && (!s || t.suite === s) && (!m || t.markers.includes(m)) &&
        (!needle || t.name.toLowerCase().includes(needle));
      rows[i].hidden = !keep;
      shown += keep ? 1 : 0;
    });
    $('shown').textContent = shown + ' of ' + tests.length + ' shown';
    $('shown').dataset.shown = shown;
  };
  for (const id of ['f-outcome', 'f-suite', 'f-marker']) $(id).addEventListener('change', apply);
  $('f-name').addEventListener('input', apply);
  apply();

  const svg = (tag, attrs) => {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  };
  // RSS (MB, blue) and CPU (%, orange) over the test's seconds, each scaled to its own maximum.
  const plot = (series) => {
    const [w, h, pad] = [640, 220, 40];
    const figure = el('figure', null, 'plot');
    const s = svg('svg', { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: 'img' });
    const tMax = Math.max(...series.map((p) => p.t), 1e-9);
    const lines = [['rss_bytes', '#1f77b4', 1e6, 'RSS MB'], ['cpu_percent', '#ff7f0e', 1, 'CPU %']];
    s.appendChild(svg('line', { x1: pad, y1: h - pad, x2: w - 10, y2: h - pad, stroke: '#333' }));
    s.appendChild(svg('line', { x1: pad, y1: 10, x2: pad, y2: h - pad, stroke: '#333' }));
    lines.forEach(([key, color, unit, label], li) => {
      const max = Math.max(...series.map((p) => p[key] / unit), 1e-9);
      const pts = series.map((p) => [pad + (p.t / tMax) * (w - pad - 10), h - pad - (p[key] / unit / max) * (h - pad - 10)]);
      s.appendChild(svg('polyline', { points: pts.map((p) => p.join(',')).join(' '), fill: 'none', stroke: color, 'stroke-width': 2 }));
      const text = svg('text', { x: pad + 8 + li * 170, y: 22, fill: color, 'font-size': 13 });
      text.textContent = `${label} (max ${max.toFixed(1)})`;
      s.appendChild(text);
    });
    const axis = svg('text', { x: w / 2, y: h - 10, 'font-size': 12, 'text-anchor': 'middle' });
    axis.textContent = `seconds (0 – ${tMax.toFixed(2)})`;
    s.appendChild(axis);
    figure.appendChild(s);
    return figure;
  };

  const detail = (t) => {
    $('detail').hidden = false;
    $('d-name').textContent = t.name;
    const d = $('d-body');
    d.replaceChildren();
    const o = t.outcome;
    const head = el('p');
    head.append(el('span', o.kind, 'o-' + o.kind), document.createTextNode(' ' + why(o)));
    d.appendChild(head);
    const attempts = el('table', null);
    attempts.id = 'd-attempts';
    attempts.appendChild(row(['#', 'outcome', 'setup s', 'call s', 'teardown s', 'CPU s (call)', 'peak heap', 'heap growth', 'peak RSS'].map((x) => el('th', x))));
    (t.attempts || []).forEach((a, i) => {
      const m = a.measurements || {};
      attempts.appendChild(row([num(i + 1), el('td', a.outcome.kind, 'o-' + a.outcome.kind), num(a.phases.setup.toFixed(4)),
        num(a.phases.call.toFixed(4)), num(a.phases.teardown.toFixed(4)), num(m.cpu_seconds ? m.cpu_seconds.call.toFixed(4) : ''),
        num(m.peak_heap_bytes ?? ''), num(m.heap_growth_bytes ?? ''), num(m.peak_rss_bytes ?? '')]));
    });
    d.appendChild(attempts);
    const last = (t.attempts || [])[t.attempts.length - 1];
    const figures = last && last.measurements && last.measurements.figures;
    if (figures && (Object.keys(figures.latency || {}).length || Object.keys(figures.values || {}).length)) {
      d.appendChild(el('h3', 'Figures'));
      d.appendChild(el('pre', JSON.stringify(figures, null, 1)));
    }
    const series = last && last.measurements && last.measurements.series;
    d.appendChild(el('h3', 'Resources'));
    if (series && series.length > 1) d.appendChild(plot(series));
    else d.appendChild(el('p', 'No series: kept for tests that ran a second or more in their own process.'));
    d.appendChild(el('h3', 'Output'));
    d.appendChild(el('pre', t.output || '(none captured)'));
    $('detail').scrollIntoView();
  };
  body.addEventListener('click', (e) => {
    const tr = e.target.closest('tr');
    if (tr && tr.dataset.index !== undefined) detail(tests[Number(tr.dataset.index)]);
  });
})();
