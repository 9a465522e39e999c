// dbward's page script: the chat (streamed steps and answer), the console's live verdict,
// CSV export of shown rows, and small SVG charts.
//
// Invariant: everything from the server or the database is inserted with textContent (or
// as an SVG text node's textContent); the one exception is the model's answer as HTML
// rendered by the server from Markdown with raw HTML escaped (showAnswer). A value like
// <script> is shown, never run.
'use strict';

const csrf = () => document.body.dataset.csrf || '';

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function show(v) {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// ---- tables, CSV, charts ----

function resultTable(result, max) {
  const wrap = el('div', undefined, 'scroll');
  const t = el('table', undefined, 'grid result');
  const head = el('tr');
  result.columns.forEach(c => {
    const th = el('th', c.name);
    th.dataset.type = c.type || '';
    th.dataset.name = c.name;
    th.appendChild(el('small', c.type || ''));
    head.appendChild(th);
  });
  const thead = el('thead'); thead.appendChild(head); t.appendChild(thead);
  const body = el('tbody');
  result.rows.slice(0, max).forEach(r => {
    const tr = el('tr');
    r.forEach(v => {
      const td = el('td', show(v));
      if (v === null) { td.className = 'null'; td.dataset.null = '1'; }
      tr.appendChild(td);
    });
    body.appendChild(tr);
  });
  t.appendChild(body);
  wrap.appendChild(t);
  return wrap;
}

// Columns and rows of a rendered result table (header <small> type labels excluded).
function tableData(table) {
  if (table._data) return { columns: table._data.columns, rows: table._data.rows };
  const columns = Array.from(table.querySelectorAll('thead th')).map(th => ({
    name: th.dataset.name || '',
    type: th.dataset.type || '',
  }));
  const rows = Array.from(table.querySelectorAll('tbody tr')).map(tr =>
    Array.from(tr.children).map(td => (td.dataset.null ? null : td.textContent)));
  return { columns, rows };
}

// A text cell a spreadsheet would read as a formula (=, +, -, @, tab, CR first) gets a
// leading apostrophe; numbers are left as they are.
function csvCell(v) {
  if (v === null) return '';
  let s = String(v);
  if (/^[=+\-@\t\r]/.test(s) && !(s.trim() !== '' && isFinite(Number(s)))) s = "'" + s;
  return /[",\r\n]/.test(s) || s === '' ? '"' + s.replace(/"/g, '""') + '"' : s;
}

function exportCsv(table) {
  const { columns, rows } = tableData(table);
  const lines = [columns.map(c => csvCell(c.name)).join(',')]
    .concat(rows.map(r => r.map(csvCell).join(',')));
  const blob = new Blob([lines.join('\r\n') + '\r\n'], { type: 'text/csv' });
  const a = el('a');
  a.href = URL.createObjectURL(blob);
  a.download = 'dbward-result.csv';
  a.hidden = true;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

const NUMERIC_TYPE = /int|numeric|decimal|real|double|float|number|serial|money/i;

// A chart needs one category column (text) and at least one numeric column.
function chartable({ columns, rows }) {
  if (rows.length < 1 || rows.length > 200 || columns.length < 2) return null;
  const isNum = i => NUMERIC_TYPE.test(columns[i].type || '') ||
    rows.every(r => r[i] === null || (r[i] !== '' && isFinite(Number(r[i]))));
  const numeric = columns.map((_, i) => isNum(i));
  const category = numeric.findIndex(n => !n);
  const value = numeric.findIndex((n, i) => n && i !== category);
  if (category < 0 || value < 0) return null;
  return { category, value };
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, String(v)));
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawChart(data, kind) {
  const pick = chartable(data);
  if (!pick) return null;
  const labels = data.rows.map(r => show(r[pick.category]));
  const values = data.rows.map(r => Number(r[pick.value]) || 0);
  const max = Math.max(1e-9, ...values.map(Math.abs));
  const W = 640, H = 260, left = 50, bottom = 70, top = 16;
  const plotW = W - left - 10, plotH = H - bottom - top;
  const step = plotW / values.length;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img' });
  root.appendChild(svg('title', {}, `${data.columns[pick.value].name} by ${data.columns[pick.category].name}`));
  root.appendChild(svg('line', { x1: left, y1: top + plotH, x2: W - 10, y2: top + plotH, class: 'axis' }));
  root.appendChild(svg('text', { x: left - 6, y: top + 4, 'text-anchor': 'end', class: 'tick' }, String(max)));
  root.appendChild(svg('text', { x: left - 6, y: top + plotH, 'text-anchor': 'end', class: 'tick' }, '0'));
  const y = v => top + plotH - (Math.max(0, v) / max) * plotH;
  if (kind === 'line') {
    const pts = values.map((v, i) => `${left + step * (i + 0.5)},${y(v)}`).join(' ');
    root.appendChild(svg('polyline', { points: pts, class: 'line' }));
  }
  values.forEach((v, i) => {
    const x = left + step * i;
    if (kind !== 'line') {
      const r = svg('rect', { x: x + step * 0.1, y: y(v), width: step * 0.8, height: top + plotH - y(v), class: 'bar' });
      r.appendChild(svg('title', {}, `${labels[i]}: ${v}`));
      root.appendChild(r);
    } else {
      root.appendChild(svg('circle', { cx: x + step / 2, cy: y(v), r: 3, class: 'dot' }));
    }
    if (values.length <= 40) {
      const lx = x + step / 2, ly = top + plotH + 12;
      root.appendChild(svg('text', { x: lx, y: ly, transform: `rotate(35 ${lx} ${ly})`, class: 'label' }, labels[i].slice(0, 18)));
    }
  });
  const box = el('div', undefined, 'chart-box');
  box.appendChild(root);
  return box;
}

// A "Chart" button toggles bar / line / off beside a result table.
function attachChart(button, getTable) {
  let mode = 0; let box = null;
  button.addEventListener('click', () => {
    if (box) { box.remove(); box = null; }
    mode = (mode + 1) % 3;
    const kind = mode === 1 ? 'bar' : mode === 2 ? 'line' : null;
    button.textContent = mode === 1 ? 'Line chart' : mode === 2 ? 'Hide chart' : 'Chart';
    if (!kind) return;
    const table = getTable();
    box = table && drawChart(tableData(table), kind);
    if (!box) { box = el('p', 'These rows have no category column with a numeric column to chart.', 'meta'); }
    button.parentElement.after(box);
  });
}

function wireResultActions(scope) {
  scope.querySelectorAll('.result-actions').forEach(actions => {
    const table = () => {
      let n = actions.nextElementSibling;
      while (n && !n.querySelector('table.result')) n = n.nextElementSibling;
      return n && n.querySelector('table.result');
    };
    const exp = actions.querySelector('.export');
    if (exp) exp.addEventListener('click', () => { const t = table(); if (t) exportCsv(t); });
    const ch = actions.querySelector('.chart-toggle');
    if (ch) attachChart(ch, table);
  });
}

// ---- chat ----

function renderStep(step) {
  const d = el('div', undefined, 'step ' + (step.verdict || ''));
  const head = el('div', undefined, 'step-head');
  head.appendChild(el('strong', step.tool));
  head.appendChild(el('span', ' · ' + (step.verdict === 'allowed' ? 'allowed' : 'refused'), 'verdict-' + step.verdict));
  if (step.rule) { head.appendChild(el('span', ' · rule ')); head.appendChild(el('code', step.rule, 'rule')); }
  if (typeof step.row_count === 'number') head.appendChild(el('span', ' · ' + step.row_count + ' rows'));
  d.appendChild(head);
  const args = step.arguments || {};
  if (args.query) d.appendChild(el('pre', args.query, 'sql'));
  else if (args && Object.keys(args).length) d.appendChild(el('pre', JSON.stringify(args), 'sql'));
  if (step.error) d.appendChild(el('div', step.error, 'why'));
  const r = step.result;
  if (r && Array.isArray(r.columns) && Array.isArray(r.rows)) {
    if (r.truncated) d.appendChild(el('p', 'Truncated: more rows exist than were returned.', 'meta truncated'));
    const actions = el('div', undefined, 'result-actions');
    const exp = el('button', 'Export shown rows as CSV', 'export'); exp.type = 'button';
    const ch = el('button', 'Chart', 'chart-toggle'); ch.type = 'button';
    actions.appendChild(exp); actions.appendChild(document.createTextNode(' ')); actions.appendChild(ch);
    d.appendChild(actions);
    d.appendChild(resultTable(r, 200));
    wireResultActions(d);
  }
  return d;
}

// The model's answer: the server renders its Markdown with raw HTML escaped and unsafe
// links dropped (answer_html); nothing else from the model or the database is ever
// parsed as HTML.
function showAnswer(node, body) {
  if (typeof body.answer_html === 'string') {
    node.innerHTML = body.answer_html;
    node.className = 'answer md';
  } else {
    node.textContent = body.answer || '';
    node.className = 'answer';
  }
}

// A stopped question: the steps that finished stay, marked, with a note instead of an answer.
function markStopped(steps, answer) {
  steps.classList.add('stopped');
  const n = steps.querySelectorAll('.step').length;
  answer.className = 'answer stopped-note';
  answer.textContent = 'Stopped before the answer' +
    (n ? ' · the ' + (n === 1 ? 'step' : n + ' steps') + ' that finished ' + (n === 1 ? 'is' : 'are') + ' kept above.' : '.');
}

function renderTurn(log, turn) {
  log.appendChild(el('p', turn.question, 'you'));
  const steps = el('div', undefined, 'steps'); log.appendChild(steps);
  (turn.steps || []).forEach(s => steps.appendChild(renderStep(s)));
  const answer = el('div', '', 'answer'); log.appendChild(answer);
  if (turn.stopped) markStopped(steps, answer);
  else if (turn.error) { answer.textContent = 'Error: ' + turn.error; answer.className = 'answer error'; }
  else showAnswer(answer, turn);
}

// The chat list's delete buttons are forms (they work without the script); the script
// only asks first.
function wireDeletes(scope) {
  scope.querySelectorAll('form.delete-conversation').forEach(f => {
    if (f.dataset.wired) return;
    f.dataset.wired = '1';
    f.addEventListener('submit', ev => {
      const title = (f.previousElementSibling && f.previousElementSibling.textContent) || 'this conversation';
      if (!window.confirm('Delete “' + title + '”? This cannot be undone.')) ev.preventDefault();
    });
  });
}

function deleteForm(id, title) {
  const f = el('form', undefined, 'delete-conversation');
  f.method = 'post'; f.action = '/conversations/' + id + '/delete';
  const t = el('input'); t.type = 'hidden'; t.name = 'csrf'; t.value = csrf();
  const b = el('button', 'Delete'); b.type = 'submit';
  b.setAttribute('aria-label', 'Delete the conversation “' + title + '”');
  b.title = 'Delete this conversation';
  f.appendChild(t); f.appendChild(b);
  return f;
}

function rememberConversation(id, title) {
  if (!id) return;
  if (location.search !== '?c=' + id) history.replaceState(null, '', '/?c=' + id);
  const list = document.getElementById('conversations');
  if (!list || list.querySelector('a[href="/?c=' + id + '"]')) return;
  const li = el('li'); const a = el('a', title);
  a.href = '/?c=' + id; a.setAttribute('aria-current', 'page');
  li.appendChild(a); li.appendChild(deleteForm(id, title)); list.prepend(li);
  wireDeletes(list);
}

async function ask(question, state) {
  const log = document.getElementById('log');
  log.appendChild(el('p', question, 'you'));
  const steps = el('div', undefined, 'steps'); log.appendChild(steps);
  const answer = el('div', '', 'answer pending'); log.appendChild(answer);
  const r = await fetch('/api/chat', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Accept': 'text/event-stream', 'X-CSRF-Token': csrf() },
    body: JSON.stringify({ message: question, conversation: state.conversation }),
  });
  if (!r.ok) {
    let msg = 'HTTP ' + r.status;
    try { const b = await r.json(); msg = b.message || msg; } catch (_) { /* not JSON */ }
    answer.textContent = 'Error: ' + msg; answer.className = 'answer error';
    return;
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let tokens = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
      let event = 'message'; const data = [];
      block.split('\n').forEach(line => {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      });
      let body = {};
      try { body = JSON.parse(data.join('\n')); } catch (_) { continue; }
      if (event === 'conversation') {
        state.conversation = body.conversation;
        rememberConversation(body.conversation, question.slice(0, 80));
      }
      else if (event === 'step') { steps.appendChild(renderStep(body)); tokens = ''; answer.textContent = ''; }
      else if (event === 'token') { tokens += body.text; answer.textContent = tokens; }
      else if (event === 'answer') showAnswer(answer, body);
      else if (event === 'error' && body.error === 'stopped') markStopped(steps, answer);
      else if (event === 'error') { answer.textContent = 'Error: ' + body.message; answer.className = 'answer error'; }
    }
  }
}

async function loadConversation(id, log) {
  const r = await fetch('/api/conversations/' + encodeURIComponent(id));
  if (!r.ok) return;
  const body = await r.json();
  (body.turns || []).forEach(t => renderTurn(log, t));
}

async function refreshStatus() {
  const status = document.getElementById('status');
  if (!status) return;
  try {
    const r = await fetch('/api/status');
    const body = await r.json();
    status.textContent = body.message;
    status.className = body.ready ? 'ok' : 'off';
  } catch (_) { /* keep the server-rendered status */ }
}

function wireChat() {
  const form = document.getElementById('ask');
  if (!form) return;
  const log = document.getElementById('log');
  const state = { conversation: log.dataset.conversation || null };
  wireDeletes(document);
  if (state.conversation) loadConversation(state.conversation, log);
  refreshStatus();
  const box = document.getElementById('question');
  const send = document.getElementById('send');
  const stop = document.getElementById('stop');
  // Enter sends; Shift+Enter (or an IME composing) inserts a line break.
  box.addEventListener('keydown', ev => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      if (!send.disabled) form.requestSubmit();
    }
  });
  stop.addEventListener('click', () => {
    fetch('/api/chat/stop', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf() },
      body: '{}',
    });
  });
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const q = box.value.trim();
    if (!q) return;
    box.value = '';
    send.disabled = true; stop.hidden = false;
    try { await ask(q, state); } catch (e) {
      log.appendChild(el('p', 'Error: ' + e, 'answer error'));
    } finally { send.disabled = false; stop.hidden = true; box.focus(); }
  });
}

// ---- console ----

function renderVerdict(v) {
  const box = el('div', undefined, 'verdict ' + (v.decision === 'allowed' ? 'allowed' : 'refused'));
  box.appendChild(el('strong', v.decision === 'allowed' ? 'Allowed' : 'Refused'));
  if (typeof v.kind === 'string' && v.kind) box.appendChild(el('span', ' · ' + v.kind));
  const ul = el('ul');
  (v.reasons || []).forEach(r => {
    const li = el('li');
    li.appendChild(el('code', r.rule, 'rule'));
    li.appendChild(document.createTextNode(' ' + r.message + (r.position ? ' (at ' + r.position + ')' : '')));
    ul.appendChild(li);
  });
  box.appendChild(ul);
  return box;
}

const PAGE = 50;

// A result as a grid: a page of rows at a time, sorted by a header click (numbers as
// numbers, NULLs last), the header sticky inside its scrolling box. The whole result is
// kept on the table (table._data) for CSV export and charts.
function resultGrid(result) {
  const box = el('div', undefined, 'result-box');
  const n = result.rows.length;
  const meta = el('p', `${result.row_count} row${result.row_count === 1 ? '' : 's'} in ${result.elapsed_ms} ms`, 'meta');
  meta.id = 'result-meta';
  if (result.truncated) {
    meta.appendChild(document.createTextNode(' · '));
    meta.appendChild(el('strong', 'truncated: more rows exist than were returned (the row or byte cap stopped the read)', 'truncated'));
  }
  box.appendChild(meta);
  const actions = el('div', undefined, 'result-actions');
  const exp = el('button', 'Export rows as CSV', 'export'); exp.type = 'button';
  const ch = el('button', 'Chart', 'chart-toggle'); ch.type = 'button';
  actions.appendChild(exp); actions.appendChild(document.createTextNode(' ')); actions.appendChild(ch);
  box.appendChild(actions);
  const wrap = el('div', undefined, 'grid-wrap');
  wrap.tabIndex = 0;
  wrap.setAttribute('role', 'region');
  wrap.setAttribute('aria-label', 'Result rows');
  const table = el('table', undefined, 'grid result');
  const state = { rows: result.rows.slice(), page: 0, sort: -1, dir: 1 };
  table._data = { columns: result.columns, get rows() { return state.rows; } };
  const head = el('tr');
  result.columns.forEach((c, i) => {
    const th = el('th'); th.scope = 'col';
    th.dataset.type = c.type || ''; th.dataset.name = c.name;
    const b = el('button', c.name, 'sort'); b.type = 'button';
    b.title = 'Sort by ' + c.name;
    b.addEventListener('click', () => {
      state.dir = state.sort === i ? -state.dir : 1; state.sort = i;
      state.rows.sort((x, y) => state.dir * compare(x[i], y[i]));
      head.querySelectorAll('th').forEach(h => h.removeAttribute('aria-sort'));
      th.setAttribute('aria-sort', state.dir > 0 ? 'ascending' : 'descending');
      state.page = 0; draw();
    });
    th.appendChild(b);
    th.appendChild(el('small', c.type || ''));
    head.appendChild(th);
  });
  const thead = el('thead'); thead.appendChild(head); table.appendChild(thead);
  const body = el('tbody'); table.appendChild(body);
  wrap.appendChild(table); box.appendChild(wrap);
  const pager = el('p', undefined, 'pager');
  const prev = el('button', '← previous', 'secondary'); prev.type = 'button';
  const next = el('button', 'next →', 'secondary'); next.type = 'button';
  const where = el('span', '', 'meta'); where.id = 'result-page';
  prev.addEventListener('click', () => { state.page--; draw(); wrap.scrollTop = 0; });
  next.addEventListener('click', () => { state.page++; draw(); wrap.scrollTop = 0; });
  pager.appendChild(prev); pager.appendChild(where); pager.appendChild(next);
  if (n > PAGE) box.appendChild(pager);
  function draw() {
    const from = state.page * PAGE;
    body.replaceChildren();
    state.rows.slice(from, from + PAGE).forEach(r => {
      const tr = el('tr');
      r.forEach(v => {
        const td = el('td', show(v));
        if (v === null) { td.className = 'null'; td.dataset.null = '1'; }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    where.textContent = n ? `rows ${from + 1}–${Math.min(n, from + PAGE)} of ${n.toLocaleString('en')}` : '';
    prev.disabled = state.page === 0;
    next.disabled = from + PAGE >= n;
  }
  draw();
  wireResultActions(box);
  return box;
}

function compare(a, b) {
  if (a === null || a === undefined) return b === null || b === undefined ? 0 : 1;
  if (b === null || b === undefined) return -1;
  const x = Number(a), y = Number(b);
  if (typeof a !== 'object' && typeof b !== 'object' && a !== '' && b !== '' && isFinite(x) && isFinite(y)) return x - y;
  return show(a).localeCompare(show(b));
}

function errorBox(body, verdictBox) {
  const d = el('div', undefined, 'error'); d.id = 'error';
  d.setAttribute('role', 'alert');
  d.appendChild(el('strong', body.error || 'error'));
  if (body.rule) { d.appendChild(document.createTextNode(' · rule ')); d.appendChild(el('code', body.rule, 'rule')); }
  let message = body.message || '';
  // The verdict above already gives the policy's reasons: say them once.
  if (body.error === 'policy_refused' && verdictBox && verdictBox.querySelector('.verdict.refused') &&
      Array.from(verdictBox.querySelectorAll('code.rule')).some(c => c.textContent === body.rule)) {
    message = 'not run: the policy refused it for the reasons above';
  }
  d.appendChild(document.createTextNode(': ' + message));
  return d;
}

function wireConsole() {
  const form = document.getElementById('console');
  const query = document.getElementById('query');
  const target = document.getElementById('verdict');
  if (!form || !query || !target) return;
  const outcome = document.getElementById('outcome');
  const progress = document.getElementById('progress');
  const runButton = document.getElementById('run');
  let timer = null; let seq = 0; let running = false;
  async function checkNow() {
    const mine = ++seq;
    const sql = query.value;
    if (!sql.trim()) { target.replaceChildren(); return; }
    const r = await fetch('/api/check', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf() },
      body: JSON.stringify({ query: sql }),
    });
    if (!r.ok || mine !== seq) return;
    const body = await r.json();
    target.replaceChildren(renderVerdict(body.verdict));
  }
  const scheduleCheck = () => { clearTimeout(timer); timer = setTimeout(checkNow, 250); };
  async function run() {
    if (running || !query.value.trim()) return;
    running = true; runButton.disabled = true;
    clearTimeout(timer);
    const verdict = checkNow();
    outcome.replaceChildren();
    const label = el('span', 'Running…', 'running');
    label.setAttribute('role', 'status');
    const clock = el('span', '', 'meta'); clock.setAttribute('aria-hidden', 'true');
    const cancel = el('button', 'Cancel', 'secondary'); cancel.type = 'button'; cancel.id = 'cancel';
    progress.replaceChildren(el('span', undefined, 'spinner'), label, clock, cancel);
    const t0 = performance.now();
    const tick = setInterval(() => { clock.textContent = ((performance.now() - t0) / 1000).toFixed(1) + ' s'; }, 100);
    cancel.addEventListener('click', () => {
      cancel.disabled = true; label.textContent = 'Cancelling…';
      fetch('/api/query/cancel', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf() },
        body: '{}',
      });
    });
    try {
      const r = await fetch('/api/query', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf() },
        body: JSON.stringify({ query: query.value }),
      });
      const body = await r.json();
      await verdict;
      outcome.replaceChildren(r.ok ? resultGrid(body.result) : errorBox(body, target));
    } catch (e) {
      outcome.replaceChildren(errorBox({ error: 'error', message: String(e) }));
    } finally {
      clearInterval(tick); progress.replaceChildren();
      running = false; runButton.disabled = false;
    }
  }
  if (window.DbwardEditor) {
    const editor = window.DbwardEditor.create(query, {
      dialect: form.dataset.dialect, label: 'SQL query', onRun: run, onChange: scheduleCheck,
      nonce: document.body.dataset.styleNonce || '',
    });
    window.dbwardEditor = editor;
    fetch('/api/catalog').then(r => (r.ok ? r.json() : null)).then(c => { if (c) editor.setSchema(c.tables); });
  } else {
    query.addEventListener('input', scheduleCheck);
    query.addEventListener('keydown', ev => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); run(); }
    });
  }
  form.addEventListener('submit', ev => {
    if (ev.submitter && ev.submitter.value === 'run') { ev.preventDefault(); run(); }
  });
}

// A box that scrolls (a wide table, the result grid) can be reached and scrolled with the
// keyboard: it takes focus while it overflows.
function focusableScrollers() {
  document.querySelectorAll('.scroll, table.grid, .grid-wrap').forEach(e => {
    const scrolls = e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1;
    if (scrolls && !e.hasAttribute('tabindex')) e.tabIndex = 0;
    else if (!scrolls && e.tabIndex === 0 && !e.classList.contains('grid-wrap')) e.removeAttribute('tabindex');
  });
}

document.addEventListener('DOMContentLoaded', () => {
  focusableScrollers();
  window.addEventListener('resize', focusableScrollers);
  new MutationObserver(focusableScrollers).observe(document.querySelector('main') || document.body, { childList: true, subtree: true });
  wireChat();
  wireConsole();
  wireResultActions(document);
});
