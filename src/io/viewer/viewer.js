/* The ASG graph viewer: reads the graph from <script id="asg-data"> (format:
 * src/io/graph_html.c), draws it as SVG with name scopes as collapsible
 * boxes, each expanded scope laid out in layers (longest path over the
 * creation order, which is topological), and shows a node's or a scope's
 * details in the side panel. No libraries, no network. Selftest:
 * "#selftest=NAME" (docs/tools.md). */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('asg-data').textContent);
  var N = D.nodes;
  var FILL = ['#cfe2ff', '#ffd8a8', '#c3f0c8', '#e9ecef', '#fff3bf', '#ffffff'];
  var SVGNS = (function () { /* the SVG namespace, as the HTML parser sets it */
    var d = document.createElement('div');
    d.innerHTML = '<svg></svg>';
    return d.firstChild.namespaceURI;
  })();
  var MAXROW = 24; /* items per row before a layer wraps */

  function el(tag, attrs, parent) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]; });
  }
  function human(b) {
    if (b < 0) return 'symbolic';
    var u = ['B', 'KiB', 'MiB', 'GiB'], i = 0;
    while (b >= 1024 && i < 3) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : b) + ' ' + u[i];
  }
  function label(n) { return n.nm || n.op; }
  function fullLabel(n) { return (n.rs ? n.rs + '/' : '') + n.op + '#' + n.id; }

  /* ---- scope tree ---- */
  function Scope(path, name, parent) {
    this.path = path; this.name = name; this.parent = parent;
    this.kids = []; this.kidByName = {}; this.nodes = [];
    this.count = 0; this.ms = 0; this.bytes = 0; this.parts = [0, 0, 0, 0, 0, 0];
    this.depth = parent ? parent.depth + 1 : 0; this.minId = Infinity;
  }
  var root = new Scope('', '(top)', null);
  var scopes = { '': root };
  var users = N.map(function () { return []; });
  N.forEach(function (n) {
    var s = root, chain = [];
    /* "a/b" and the layers' "h0.attn" both nest */
    var re = /[^\/.]+/g, mt;
    while ((mt = re.exec(n.sc))) {
      var c = mt[0], k = s.kidByName[c];
      if (!k) {
        k = new Scope(n.sc.slice(0, mt.index + c.length), c, s);
        s.kidByName[c] = k; s.kids.push(k); scopes[k.path] = k;
      }
      s = k; chain.push(k);
    }
    n.scope = s; n.chain = chain;
    s.nodes.push(n);
    for (var a = s; a; a = a.parent) {
      a.count++; a.parts[n.pt]++; a.minId = Math.min(a.minId, n.id);
      if (n.ms) a.ms += n.ms;
      if (n.by > 0) a.bytes += n.by;
    }
    n.in.forEach(function (i) { users[i].push(n.id); });
  });
  var expanded = {}; expanded[''] = true;
  for (var s0 = root; s0.nodes.length === 0 && s0.kids.length === 1; s0 = s0.kids[0]) expanded[s0.kids[0].path] = true;

  /* the visible item holding node n: its first collapsed scope, or n */
  function rep(n) {
    for (var i = 0; i < n.chain.length; i++) if (!expanded[n.chain[i].path]) return n.chain[i];
    return n;
  }
  function visible(s) {
    for (var a = s; a; a = a.parent) if (!expanded[a.path]) return false;
    return true;
  }
  /* the item of scope s (expanded, holding n) that n lies in */
  function itemIn(s, n) { return n.chain.length > s.depth ? n.chain[s.depth] : n; }

  /* ---- layout ---- */
  function textW(t) { return Math.max(60, 6.4 * t.length + 16); }
  var itemEdges; /* scope path -> list of [from item, to item] */
  function collectEdges() {
    itemEdges = {};
    var seen = {};
    N.forEach(function (v) {
      v.in.forEach(function (ui) {
        var u = N[ui], d = 0;
        while (d < u.chain.length && d < v.chain.length && u.chain[d] === v.chain[d]) d++;
        var L = d ? u.chain[d - 1] : root;
        if (!visible(L)) return;
        var a = itemIn(L, u), b = itemIn(L, v);
        if (a === b) return;
        var key = (a.path !== undefined ? 's' + a.path : 'n' + a.id) + '>' + (b.path !== undefined ? 's' + b.path : 'n' + b.id);
        if (seen[key]) return;
        seen[key] = 1;
        (itemEdges[L.path] = itemEdges[L.path] || []).push([a, b]);
      });
    });
  }
  function key(it) { return it.path !== undefined ? it.minId : it.id; }
  /* lays out expanded scope s; returns {w, h, items: [{it, x, y, w, h, sub}]} */
  function layoutScope(s) {
    var items = s.nodes.slice().concat(s.kids);
    items.sort(function (a, b) { return key(a) - key(b); });
    var L = items.map(function (it, i) {
      it._i = i;
      var e = { it: it, layer: 0, preds: [], sub: null };
      if (it.path !== undefined && expanded[it.path]) {
        e.sub = layoutScope(it);
        e.w = e.sub.w + 16; e.h = e.sub.h + 32;
      } else if (it.path !== undefined) {
        e.w = textW(it.name + ' (' + it.count + ')') + 10; e.h = 40;
      } else {
        e.w = textW(label(it)); e.h = 30;
      }
      return e;
    });
    (itemEdges[s.path] || []).forEach(function (ab) {
      var a = L[ab[0]._i], b = L[ab[1]._i];
      if (key(ab[0]) < key(ab[1])) b.preds.push(a); /* back edges do not rank */
    });
    var layers = [];
    L.forEach(function (e) {
      e.preds.forEach(function (p) { if (p.layer + 1 > e.layer) e.layer = p.layer + 1; });
      (layers[e.layer] = layers[e.layer] || []).push(e);
    });
    var rows = [], y = 0, w = 0;
    layers.forEach(function (ly) {
      if (!ly) return;
      ly.forEach(function (e) {
        var sx = 0;
        e.preds.forEach(function (p) { sx += p.x === undefined ? 0 : p.x + p.w / 2; });
        e.bc = e.preds.length ? sx / e.preds.length : key(e.it) * 1e-3;
      });
      ly.sort(function (a, b) { return a.bc - b.bc; });
      for (var r = 0; r < ly.length; r += MAXROW) {
        var row = ly.slice(r, r + MAXROW), x = 0, h = 0;
        row.forEach(function (e) { e.x = x; x += e.w + 18; h = Math.max(h, e.h); });
        rows.push({ items: row, w: x - 18, y: y });
        w = Math.max(w, x - 18); y += h + 36;
      }
    });
    rows.forEach(function (r) {
      var off = (w - r.w) / 2;
      r.items.forEach(function (e) { e.x += off; e.y = r.y; });
    });
    return { w: Math.max(w, 120), h: Math.max(y - 36, 20), items: L };
  }

  /* ---- drawing ---- */
  var view, svg, gEdges, side, stat, sel = null, hits = {}, pos = {};
  function posKey(it) { return it.path !== undefined ? 's' + it.path : 'n' + it.id; }
  function draw(lay, ox, oy, parent) {
    lay.items.forEach(function (e) {
      var x = ox + e.x, y = oy + e.y, it = e.it;
      pos[posKey(it)] = { x: x, y: y, w: e.w, h: e.h };
      if (e.sub) {
        var g = el('g', { 'class': 'grp', 'data-scope': it.path }, parent);
        el('rect', { 'class': 'frame', x: x, y: y, width: e.w, height: e.h, rx: 6 }, g);
        var hd = el('rect', { 'class': 'head', x: x, y: y, width: e.w, height: 22, rx: 6 }, g);
        hd.addEventListener('click', function () { toggle(it); });
        var t = el('text', { x: x + 8, y: y + 15 }, g);
        t.textContent = '\u25be ' + it.name + '  (' + it.count + ' nodes' + (it.ms ? ', ' + it.ms.toFixed(3) + ' ms' : '') + ')';
        draw(e.sub, x + 8, y + 28, g);
      } else if (it.path !== undefined) {
        var b = el('g', { 'class': 'box', 'data-scope': it.path }, parent);
        var dom = 0;
        it.parts.forEach(function (c, i) { if (c > it.parts[dom]) dom = i; });
        el('rect', { x: x, y: y, width: e.w, height: e.h, rx: 6, fill: FILL[dom] }, b);
        var t1 = el('text', { x: x + 8, y: y + 16 }, b);
        t1.textContent = '\u25b8 ' + it.name + ' (' + it.count + ')';
        var t2 = el('text', { x: x + 8, y: y + 31, fill: '#495057' }, b);
        t2.textContent = it.ms ? it.ms.toFixed(3) + ' ms' : human(it.bytes);
        b.addEventListener('click', function (ev) { if (ev.detail > 1) return; showScope(it); });
        b.addEventListener('dblclick', function () { toggle(it); });
      } else {
        var c = el('g', { 'class': 'nd' + (hits[it.id] ? ' hit' : '') + (D.plan && it.pl && it.pl[3] < 0 && it.pt < 3 ? ' faded' : ''), 'data-id': it.id }, parent);
        el('rect', { x: x, y: y, width: e.w, height: e.h, rx: it.pt >= 3 ? 2 : 8, fill: FILL[it.pt] }, c);
        var t3 = el('text', { x: x + 8, y: y + 19 }, c);
        t3.textContent = label(it);
        var tip = el('title', {}, c);
        tip.textContent = fullLabel(it) + ' ' + it.dt + ' ' + it.sh;
        c.addEventListener('click', function () { select(it); });
      }
    });
  }
  function render() {
    var t0 = performance.now();
    collectEdges();
    var lay = layoutScope(root);
    pos = {};
    svg.innerHTML = '';
    svg.setAttribute('width', (lay.w + 40) * zoom);
    svg.setAttribute('height', (lay.h + 40) * zoom);
    var top = el('g', { transform: 'scale(' + zoom + ')' }, svg);
    gEdges = el('g', {}, top);
    draw(lay, 20, 20, el('g', {}, top));
    var seen = {}, ne = 0;
    N.forEach(function (v) {
      var b = rep(v);
      v.in.forEach(function (ui) {
        var a = rep(N[ui]);
        if (a === b) return;
        var k = posKey(a) + '>' + posKey(b);
        if (seen[k]) return;
        seen[k] = 1;
        var p = pos[posKey(a)], q = pos[posKey(b)];
        if (!p || !q) return;
        var x1 = p.x + p.w / 2, y1 = p.y + p.h, x2 = q.x + q.w / 2, y2 = q.y;
        var dy = Math.max(30, Math.abs(y2 - y1) / 2);
        el('path', { 'class': 'edge', 'data-e': k, d: 'M' + x1 + ',' + y1 + ' C' + x1 + ',' + (y1 + dy) + ' ' + x2 + ',' + (y2 - dy) + ' ' + x2 + ',' + y2 }, gEdges);
        ne++;
      });
    });
    var nv = Object.keys(pos).length;
    stat.textContent = N.length + ' nodes; ' + nv + ' shown, ' + ne + ' edges; laid out in ' + Math.round(performance.now() - t0) + ' ms';
    if (sel) mark(sel);
    return { items: nv, edges: ne, ms: performance.now() - t0 };
  }
  function toggle(s) { expanded[s.path] = !expanded[s.path]; render(); showScope(s); }
  function openTo(n) {
    n.chain.forEach(function (s) { expanded[s.path] = true; });
    render();
  }
  function mark(n) {
    var old = svg.querySelector('.nd.sel');
    if (old) old.classList.remove('sel');
    var g = svg.querySelector('.nd[data-id="' + n.id + '"]');
    if (g) g.classList.add('sel');
    return g;
  }
  function scrollTo(n) {
    var p = pos['n' + n.id];
    if (p) { view.scrollLeft = p.x * zoom - view.clientWidth / 2; view.scrollTop = p.y * zoom - view.clientHeight / 2; }
  }

  /* ---- side panel ---- */
  function row(k, v) { return '<tr><td>' + k + '</td><td>' + v + '</td></tr>'; }
  function link(n) { return '<a data-goto="' + n.id + '">' + esc(label(n)) + '</a> <span style="color:#868e96">' + esc(n.op) + '#' + n.id + '</span>'; }
  function select(n) {
    sel = n;
    mark(n);
    var h = '<h2>' + esc(label(n)) + '</h2><table>';
    h += row('op', esc(n.op)) + row('id', '#' + n.id) + row('part', D.parts[n.pt]);
    h += row('scope', esc(n.rs || '(top)') + (n.sc !== n.rs ? '<br><span style="color:#868e96">drawn in ' + esc(n.sc) + '</span>' : ''));
    h += row('shape', esc(n.sh)) + row('dtype', n.dt) + row('bytes', human(n.by));
    if (D.plan) {
      var p = n.pl;
      if (!p || p[0] < 0) h += row('buffer', 'not in the program');
      else {
        var kind = D.plan.kinds[p[0]];
        h += row('buffer', kind + (p[0] === 0 ? ' + ' + p[2] + ' B' : ' #' + p[1] + (p[2] ? ' + ' + p[2] + ' B' : '')));
        h += row('lifetime', p[3] < 0 ? 'persistent' : 'step ' + p[3] + ' to ' + (p[5] ? 'the end (output)' : Math.max(p[3], p[4])) + ' of ' + D.plan.steps);
      }
    }
    if (n.ms !== undefined) h += row('time', n.ms.toFixed(4) + ' ms per run');
    h += row('inputs', n.in.map(function (i) { return link(N[i]); }).join('<br>') || '-');
    h += row('users', users[n.id].slice(0, 50).map(function (i) { return link(N[i]); }).join('<br>') + (users[n.id].length > 50 ? '<br>...' : '') || '-');
    side.innerHTML = h + '</table>';
  }
  function showScope(s) {
    var h = '<h2>' + esc(s.path || '(top)') + '</h2><table>';
    h += row('nodes', s.count) + row('bytes', human(s.bytes));
    h += row('parts', s.parts.map(function (c, i) { return c ? D.parts[i] + ' ' + c : ''; }).filter(Boolean).join(', '));
    if (D.profile) h += row('time', s.ms.toFixed(4) + ' ms per run');
    h += row('', '<a data-toggle="' + esc(s.path) + '">' + (expanded[s.path] ? 'collapse' : 'expand') + '</a>');
    h += '</table>';
    if (D.profile) {
      var inside = N.filter(function (n) { return n.ms && (s === root || n.chain.indexOf(s) >= 0); });
      inside.sort(function (a, b) { return b.ms - a.ms; });
      h += '<h2>slowest</h2>' + inside.slice(0, 15).map(function (n) { return '<span class="res">' + n.ms.toFixed(4) + ' ms ' + link(n) + '</span>'; }).join('');
    }
    side.innerHTML = h;
  }
  function search(q) {
    q = q.trim().toLowerCase();
    hits = {};
    if (!q) { render(); side.innerHTML = ''; return []; }
    var res = N.filter(function (n) { return (label(n) + ' ' + fullLabel(n) + ' ' + n.sc).toLowerCase().indexOf(q) >= 0; });
    res.slice(0, 500).forEach(function (n) { hits[n.id] = 1; });
    side.innerHTML = '<h2>' + res.length + ' match' + (res.length === 1 ? '' : 'es') + ' for "' + esc(q) + '"</h2>' +
      res.slice(0, 200).map(function (n) { return '<span class="res">' + link(n) + ' <span style="color:#868e96">' + esc(n.sc) + '</span></span>'; }).join('');
    render();
    return res;
  }
  function go(n) { openTo(n); select(n); scrollTo(n); }

  /* ---- page ---- */
  var zoom = 1;
  document.body.insertAdjacentHTML('afterbegin',
    '<div id="bar"><h1></h1><input id="q" placeholder="search by name, op or scope (Enter)">' +
    '<button id="zin">+</button><button id="zout">\u2212</button><button id="ex">expand all</button><button id="co">collapse all</button>' +
    '<span id="legend"></span><span class="stat" id="stat"></span></div><div id="view"></div><div id="side"></div><div id="selftest"></div>');
  document.querySelector('#bar h1').textContent = D.title;
  document.getElementById('legend').innerHTML = D.parts.map(function (p, i) { return '<span style="background:' + FILL[i] + '">' + p + '</span>'; }).join('');
  view = document.getElementById('view'); side = document.getElementById('side'); stat = document.getElementById('stat');
  svg = el('svg', {}, view);
  side.innerHTML = '<h2>' + esc(D.title) + '</h2><table>' + row('nodes', N.length) +
    (D.plan ? row('backend', D.plan.backend) + row('steps', D.plan.steps) + row('arena', human(D.plan.arena)) : '') +
    (D.profile ? row('profile', root.ms.toFixed(3) + ' ms per run (' + D.profile.runs + ' runs)') : '') +
    '</table><p>Click a box to see its scope, double-click (or its header when open) to open or close it. Click a node for its details.</p>';
  side.addEventListener('click', function (ev) {
    var t = ev.target.closest('a');
    if (!t) return;
    if (t.dataset.goto !== undefined) go(N[+t.dataset.goto]);
    else if (t.dataset.toggle !== undefined) toggle(scopes[t.dataset.toggle]);
  });
  document.getElementById('q').addEventListener('keydown', function (ev) { if (ev.key === 'Enter') search(this.value); });
  document.getElementById('zin').onclick = function () { zoom *= 1.25; render(); };
  document.getElementById('zout').onclick = function () { zoom /= 1.25; render(); };
  document.getElementById('ex').onclick = function () {
    if (N.length > 3000 && !confirm('Open all ' + N.length + ' nodes?')) return;
    for (var p in scopes) expanded[p] = true;
    render();
  };
  document.getElementById('co').onclick = function () { expanded = { '': true }; render(); };
  render();

  /* ---- selftest: #selftest=NAME ---- */
  var m = /#selftest=(.*)$/.exec(location.hash);
  if (m) {
    var out = document.getElementById('selftest'), want = decodeURIComponent(m[1]), why = [];
    try {
      var n = N.filter(function (x) { return x.nm === want || fullLabel(x) === want || '#' + x.id === want; })[0];
      if (!n) throw new Error('no node named ' + want);
      var before = Object.keys(pos).length;
      openTo(n);
      var box = n.chain.length ? n.chain[n.chain.length - 1].path : '(top)';
      if (!visible(n.scope)) why.push('scope ' + box + ' did not open');
      var res = search(want);
      if (res.indexOf(n) < 0) why.push('search missed it');
      go(n);
      var g = svg.querySelector('.nd[data-id="' + n.id + '"]');
      if (!g) why.push('node not drawn');
      else if (!g.classList.contains('sel') || !g.classList.contains('hit')) why.push('node not highlighted');
      if (side.querySelector('h2').textContent !== label(n)) why.push('side panel shows ' + side.querySelector('h2').textContent);
      var r = render();
      out.textContent = 'VIEWER-SELFTEST ' + (why.length ? 'FAIL ' + why.join('; ') : 'PASS') +
        ' node=#' + n.id + ' scope=' + box + ' nodes=' + N.length + ' shown=' + before + '->' + r.items +
        ' edges=' + r.edges + ' layout_ms=' + Math.round(r.ms);
    } catch (err) {
      out.textContent = 'VIEWER-SELFTEST FAIL ' + err.message;
    }
  }
})();
