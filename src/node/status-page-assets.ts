/**
 * The status page's one document: HTML with its style and script inline, so the page needs nothing
 * but the node (no external network, no second request). The script renders `/api/stream` (server-
 * sent events of ClusterOverview) with DOM calls and textContent only: names, regions, paths and
 * errors come from members and callers and are never parsed as HTML. The Content-Security-Policy the
 * server sends allows exactly this style and this script (by hash) and connections to the page's
 * own origin.
 */
import { createHash } from 'node:crypto'

export const STATUS_PAGE_CSS = `
:root { --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #667085; --line: #e4e7ec;
  --ok: #12805c; --ok-bg: #e3f5ec; --warn: #a15c00; --warn-bg: #fff1d6; --bad: #b42318; --bad-bg: #fde4e1;
  --bar: #3b6fd8; --bar-bg: #e8edf7; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px; background: #1d2330; color: #fff; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; letter-spacing: .2px; }
header .meta { color: #c3c9d5; font-size: 13px; }
header .live { margin-left: auto; font-size: 13px; display: flex; align-items: center; gap: 6px; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: #98a2b3; display: inline-block; }
.live.ok .dot { background: #32d583; } .live.stale .dot { background: #fdb022; } .live.down .dot { background: #f97066; }
main { padding: 18px 24px 32px; max-width: 1280px; }
.cards { display: grid; grid-template-columns: repeat(6, minmax(0, 1fr)); gap: 12px; margin-bottom: 12px; }
.cards + .cards { margin-bottom: 18px; }
@media (max-width: 760px) { .cards { grid-template-columns: repeat(3, minmax(0, 1fr)); } }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .4px; }
.card .value { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-size: 22px; font-weight: 600; margin-top: 2px; font-variant-numeric: tabular-nums; }
.card .value.bad { color: var(--bad); } .card .value.warn { color: var(--warn); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin-bottom: 18px; }
section h2 { font-size: 14px; margin: 0; padding: 10px 14px; border-bottom: 1px solid var(--line); font-weight: 600; }
section h2 .note { color: var(--muted); font-weight: 400; margin-left: 8px; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 7px 14px; border-bottom: 1px solid var(--line); vertical-align: middle; white-space: nowrap; }
th { color: var(--muted); font-weight: 500; font-size: 12px; text-transform: uppercase; letter-spacing: .4px; }
tr:last-child td { border-bottom: 0; }
tr.suspected td { background: #fffbf0; } tr.failed td { background: #fff6f5; }
td.num, th.num { font-variant-numeric: tabular-nums; text-align: right; }
td.wrap { white-space: normal; word-break: break-all; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; color: var(--muted); }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.badge.healthy, .badge.ok { color: var(--ok); background: var(--ok-bg); }
.badge.suspected { color: var(--warn); background: var(--warn-bg); }
.badge.failed, .badge.err { color: var(--bad); background: var(--bad-bg); }
.tag { display: inline-block; padding: 0 6px; margin-right: 4px; border-radius: 4px; background: #eef1f6; font-size: 12px; }
.tag.lead { background: #1d2330; color: #fff; }
.bar { display: inline-block; width: 160px; height: 8px; border-radius: 4px; background: var(--bar-bg); vertical-align: middle; overflow: hidden; margin-right: 8px; }
.bar > span { display: block; height: 100%; background: var(--bar); }
.bar.hot > span { background: var(--bad); }
.empty { color: var(--muted); padding: 10px 14px; }
.error { color: var(--bad); padding: 8px 14px; }
.error:empty { display: none; }
`

export const STATUS_PAGE_JS = `
'use strict';
(function () {
  var HEALTH = { healthy: 'Healthy', suspected: 'Suspected', failed: 'Failed' };
  var lastAt = 0;
  var names = {};
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function row(cells) { var tr = el('tr'); cells.forEach(function (c) { tr.appendChild(c); }); return tr; }
  function td(text, cls) { return el('td', cls, text); }
  function bytes(n) {
    if (n === null || n === undefined) return '?';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']; var i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + ' ' + u[i];
  }
  function bar(fraction, hot) {
    var b = el('span', 'bar' + (hot ? ' hot' : ''));
    var f = el('span');
    f.style.width = Math.max(0, Math.min(100, fraction * 100)).toFixed(1) + '%';
    b.appendChild(f);
    return b;
  }
  function nameOf(id) { return id === null || id === undefined ? '(none)' : (names[id] || id.slice(-8)); }
  function groupsText(list) { return list.length === 0 ? '' : list.map(function (g) { return 'g' + g; }).join(' '); }
  function card(label, value, cls) {
    var c = el('div', 'card'); c.appendChild(el('div', 'label', label)); c.appendChild(el('div', 'value' + (cls ? ' ' + cls : ''), value)); return c;
  }
  function replace(id, children) { var t = $(id); while (t.firstChild) t.removeChild(t.firstChild); children.forEach(function (c) { t.appendChild(c); }); }

  function render(o) {
    lastAt = Date.now();
    names = {};
    o.nodes.forEach(function (n) { names[n.id] = n.name; });
    var self = o.nodes.filter(function (n) { return n.self; })[0];
    $('cluster').textContent = o.clusterId;
    $('served').textContent = 'served by ' + (self ? self.name : nameOf(o.node)) + ' \\u00b7 ' + new Date(o.timeMs).toLocaleTimeString();
    document.title = 'dfs \\u00b7 ' + o.nodes.filter(function (n) { return n.health === 'healthy'; }).length + '/' + o.nodesTotal + ' healthy';

    var count = function (h) { return o.nodes.filter(function (n) { return n.health === h; }).length; };
    var r = o.replication;
    replace('cards', [
      card('Nodes', o.nodesTotal),
      card('Healthy', count('healthy')),
      card('Suspected', count('suspected'), count('suspected') > 0 ? 'warn' : ''),
      card('Failed', count('failed'), count('failed') > 0 ? 'bad' : ''),
      card('Leader', nameOf(o.leader), o.leader === null ? 'bad' : ''),
      card('Term', o.term)
    ]);
    replace('cards-replication', [
      card('Extents', r.extents === undefined ? '?' : r.extents),
      card('Under-replicated', r.underReplicated === undefined ? '?' : r.underReplicated, r.underReplicated > 0 ? 'warn' : ''),
      card('Missing', r.missing === undefined ? '?' : r.missing, r.missing > 0 ? 'bad' : ''),
      card('Repairing', r.repairing === undefined ? '?' : r.repairing),
      card('Moves', r.movesRecorded),
      card('Moving now', r.movesInFlight === undefined ? '\\u2013' : r.movesInFlight)
    ]);

    replace('nodes', o.nodes.map(function (n) {
      var tr = row([]);
      tr.setAttribute('data-node', n.name);
      tr.className = n.health;
      var name = td(n.name + (n.self ? ' (this node)' : ''));
      var health = el('td', 'health');
      var badge = el('span', 'badge ' + n.health, HEALTH[n.health] || n.health);
      health.appendChild(badge);
      if (n.draining) health.appendChild(el('span', 'tag', 'draining'));
      var role = el('td', 'role');
      if (n.leads.length > 0) role.appendChild(el('span', 'tag lead', 'leader ' + groupsText(n.leads)));
      if (n.voterIn.length > 0) role.appendChild(el('span', 'tag', 'voter ' + groupsText(n.voterIn)));
      if (n.voterIn.length === 0 && n.leads.length === 0) role.appendChild(el('span', 'tag', 'learner'));
      var fill = el('td');
      var f = n.capacityBytes ? n.usedBytes / n.capacityBytes : 0;
      fill.appendChild(bar(f, f > 0.9));
      fill.appendChild(el('span', '', n.capacityBytes ? bytes(n.usedBytes) + ' / ' + bytes(n.capacityBytes) + ' (' + (f * 100).toFixed(f < 0.1 ? 1 : 0) + '%)' : bytes(n.usedBytes) + ' / ?'));
      [name, health, td(n.region), role, fill, td(n.id.slice(-12), 'mono')].forEach(function (c) { tr.appendChild(c); });
      return tr;
    }));
    $('nodes-note').textContent = o.nodes.length < o.nodesTotal ? 'first ' + o.nodes.length + ' of ' + o.nodesTotal : '';

    replace('groups', o.groups.map(function (g) {
      var tr = row([
        td('g' + g.group), td(g.kind), td(g.shards, 'num'), td(nameOf(g.leader), 'leader'), td(g.term, 'num'),
        td(g.voters.map(nameOf).sort().join(', ')), td(g.learners.map(nameOf).sort().join(', ') || '\\u2013')
      ]);
      tr.setAttribute('data-group', String(g.group));
      return tr;
    }));

    var most = Math.max.apply(null, [1].concat(o.nodes.map(function (n) { return n.copies; })));
    replace('replication', o.nodes.map(function (n) {
      var c = el('td'); c.appendChild(bar(n.copies / most, false)); c.appendChild(el('span', '', n.copies + ' copies \\u00b7 ' + bytes(n.copyBytes)));
      var tr = row([td(n.name), c]);
      tr.setAttribute('data-node', n.name);
      return tr;
    }));
    $('replication-note').textContent = r.error ? '' : 'replication factor ' + r.replicationFactor;
    $('replication-error').textContent = r.error ? 'replication figures unavailable: ' + r.error : '';

    var note = function (text) { var c = el('td', 'empty', text); c.colSpan = 7; return [row([c])]; };
    if (o.audit === null) {
      replace('audit', note('Not shown on this page (start the node with --http-audit, or use dfs cluster audit).'));
    } else if (o.audit.length === 0) {
      replace('audit', note('No entries yet.'));
    } else {
      replace('audit', o.audit.slice().reverse().map(function (a) {
        var outcome = el('td'); outcome.appendChild(el('span', 'badge ' + (a.success ? 'ok' : 'err'), a.success ? 'ok' : (a.error || 'failed')));
        return row([
          td(new Date(a.timeMs).toLocaleTimeString()), td(a.operation), td(a.resource, 'wrap'), outcome,
          td(a.count > 1 ? '\\u00d7' + a.count : '', 'num'), td((a.role || 'stranger') + ' ' + a.user.slice(-8), 'mono'), td(nameOf(a.node))
        ]);
      }));
    }
  }

  function setLive(state, text) { var l = $('live'); l.className = 'live ' + state; $('live-text').textContent = text; }

  function poll() {
    fetch('api/overview', { cache: 'no-store' }).then(function (r) { return r.json(); }).then(function (o) { render(o); setLive('ok', 'live (polling)'); })
      .catch(function () { setLive('down', 'node unreachable'); })
      .then(function () { setTimeout(poll, 2000); });
  }

  if (typeof EventSource === 'function') {
    var es = new EventSource('api/stream');
    es.addEventListener('overview', function (e) { render(JSON.parse(e.data)); setLive('ok', 'live'); });
    es.onerror = function () { setLive('down', 'reconnecting\\u2026'); };
  } else {
    poll();
  }
  setInterval(function () { if (lastAt !== 0 && Date.now() - lastAt > 5000) setLive('stale', 'no update for ' + Math.round((Date.now() - lastAt) / 1000) + ' s'); }, 1000);
})();
`

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dfs status</title>
<link rel="icon" type="image/svg+xml" href="favicon.svg">
<style>${STATUS_PAGE_CSS}</style>
</head>
<body>
<header>
  <h1>dfs cluster</h1>
  <span class="meta mono" id="cluster"></span>
  <span class="meta" id="served">connecting…</span>
  <span class="live" id="live"><span class="dot"></span><span id="live-text">connecting…</span></span>
</header>
<main>
  <div class="cards" id="cards"></div>
  <div class="cards" id="cards-replication"></div>
  <section>
    <h2>Nodes<span class="note" id="nodes-note"></span></h2>
    <table><thead><tr><th>Name</th><th>Health</th><th>Region</th><th>Role</th><th>Fill</th><th>ID</th></tr></thead><tbody id="nodes"></tbody></table>
  </section>
  <section>
    <h2>Metadata groups</h2>
    <table><thead><tr><th>Group</th><th>Kind</th><th class="num">Shards</th><th>Leader</th><th class="num">Term</th><th>Voters</th><th>Learners</th></tr></thead><tbody id="groups"></tbody></table>
  </section>
  <section>
    <h2>Replication<span class="note" id="replication-note"></span></h2>
    <div class="error" id="replication-error"></div>
    <table><thead><tr><th>Node</th><th>Copies</th></tr></thead><tbody id="replication"></tbody></table>
  </section>
  <section>
    <h2>Recent audit entries</h2>
    <table><thead><tr><th>Time</th><th>Operation</th><th>Resource</th><th>Outcome</th><th class="num">Count</th><th>Caller</th><th>Node</th></tr></thead><tbody id="audit"></tbody></table>
  </section>
</main>
<script>${STATUS_PAGE_JS}</script>
</body>
</html>
`

/** The page's icon: three stacked disks. */
export const STATUS_PAGE_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">
<rect x="2" y="1.5" width="12" height="3.5" rx="1" fill="#1d2330"/><rect x="2" y="6.25" width="12" height="3.5" rx="1" fill="#3b6fd8"/>
<rect x="2" y="11" width="12" height="3.5" rx="1" fill="#1d2330"/></svg>
`

function sha256 (text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`
}

/** The page's Content-Security-Policy: its own inline style and script, and its own origin to connect to; nothing else. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `style-src ${sha256(STATUS_PAGE_CSS)}`,
  `script-src ${sha256(STATUS_PAGE_JS)}`,
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join('; ')
