// The isthmus dashboard page (coordinator/dashboard.ts serves it). Read-only: it renders the
// snapshots the coordinator streams on /ui/events. Every value from the server is written
// with textContent or setAttribute, never parsed as HTML (member hostnames and relay ids are
// chosen by whoever runs them).
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  let known = null; // vips of the last snapshot: new ones flash
  const events = [];

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function ago(ms) {
    if (!ms) return '–';
    const s = Math.round((Date.now() - ms) / 1000);
    if (s < 5) return 'now';
    if (s < 120) return s + ' s ago';
    if (s < 7200) return Math.round(s / 60) + ' min ago';
    if (s < 172800) return Math.round(s / 3600) + ' h ago';
    return new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
  }

  function when(ms) {
    return ms ? new Date(ms).toISOString().slice(0, 16).replace('T', ' ') : 'never';
  }

  function bytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + ' ' + u[i];
  }

  function num(n) {
    return Number(n).toLocaleString('en-US', { maximumFractionDigits: 1 });
  }

  function tags(list) {
    const td = el('td');
    for (const t of list || []) td.appendChild(el('span', t, 'tag'));
    return td;
  }

  function cell(text, cls) {
    return el('td', text, cls);
  }

  function fill(table, rows) {
    const body = $(table).tBodies[0];
    body.replaceChildren(...rows);
  }

  function renderMembers(snap) {
    const seen = new Set();
    const rows = snap.members.map((m) => {
      const tr = el('tr');
      tr.setAttribute('data-vip', m.vip);
      if (known && !known.has(m.vip)) tr.classList.add('new');
      seen.add(m.vip);
      tr.append(
        cell(m.hostname, 'hostname'), cell(m.vip), cell(m.originalIp), tags(m.tags),
        cell(m.online ? 'online' : 'offline', m.online ? 'online' : 'offline'),
        cell(m.relayId || '–'), cell(m.agentAddr || '–'),
        cell(m.online ? 'now' : ago(m.lastSeen)), cell(when(m.created)),
      );
      return tr;
    });
    known = seen;
    fill('members', rows);
    const online = snap.members.filter((m) => m.online).length;
    $('members-count').textContent = snap.membersTotal + ' (' + online + ' online)'
      + (snap.membersTotal > snap.members.length ? ', first ' + snap.members.length + ' shown' : '');
  }

  function renderRelays(relays) {
    fill('relays', relays.map((r) => {
      const tr = el('tr');
      tr.setAttribute('data-relay', r.id);
      tr.append(cell(r.id), cell(num(r.sessions), 'num'), cell(num(r.framesPerSec), 'num'), cell(bytes(r.bytesPerSec) + '/s', 'num'),
        cell(num(r.dropsPerSec), 'num'), cell(num(r.framesForwarded), 'num'), cell(bytes(r.bytesForwarded), 'num'),
        cell(num(r.dropped), 'num'), cell(ago(r.at)));
      return tr;
    }));
    $('relays-count').textContent = String(relays.length);
  }

  function renderTokens(tokens) {
    fill('tokens', tokens.map((t) => {
      const tr = el('tr');
      tr.setAttribute('data-token', t.id);
      tr.append(cell(t.id), cell(t.state, t.state === 'valid' ? 'online' : 'offline'), cell(t.usesLeft < 0 ? 'unlimited' : num(t.usesLeft), 'num'),
        cell(when(t.expiresAt)), tags(t.tags), cell((t.originalCidrs || []).join(', ') || '–'), cell(t.ephemeral ? 'yes' : 'no'), cell(when(t.createdAt)));
      return tr;
    }));
    $('tokens-count').textContent = String(tokens.length);
  }

  function renderPolicy(text) {
    if (text === null) {
      $('policy').textContent = 'no policy: every member reaches every member';
      return;
    }
    try {
      $('policy').textContent = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      $('policy').textContent = text;
    }
  }

  function render(snap) {
    renderMembers(snap);
    renderRelays(snap.relays);
    renderTokens(snap.tokens);
    renderPolicy(snap.policy);
    $('summary').textContent = 'version ' + snap.version + ' · updated ' + new Date(snap.at).toISOString().slice(11, 19) + ' UTC';
  }

  function logEvent(e) {
    const parts = [new Date().toISOString().slice(11, 19), e.type];
    if (e.vip) parts.push(e.vip);
    if (e.relayId) parts.push('relay ' + e.relayId);
    if (e.version) parts.push('v' + e.version);
    events.unshift(parts.join(' '));
    events.length = Math.min(events.length, 50);
    $('events').replaceChildren(...events.map((t) => el('li', t)));
  }

  function status(text, cls) {
    const s = $('status');
    s.textContent = text;
    s.className = 'status ' + cls;
  }

  function connect() {
    const es = new EventSource('/ui/events');
    es.addEventListener('open', () => status('live', 'live'));
    es.addEventListener('snapshot', (m) => render(JSON.parse(m.data)));
    es.addEventListener('relays', (m) => renderRelays(JSON.parse(m.data).relays));
    es.addEventListener('change', (m) => logEvent(JSON.parse(m.data)));
    es.addEventListener('logout', () => {
      es.close();
      window.location.assign('/ui/login');
    });
    es.addEventListener('error', () => {
      if (es.readyState === EventSource.CLOSED) {
        // Refused (login expired, rate limit, coordinator gone): the page says so; a reload retries.
        status('disconnected: reload (or log in again)', 'down');
      } else {
        status('reconnecting…', 'connecting');
      }
    });
  }

  document.addEventListener('DOMContentLoaded', connect);
})();
