// The team inbox page: the conversation list on the left, the open
// conversation on the right, kept live by the bridge's event stream.

import { call, convPath, convKey, listen, APIError } from './api.js';
import { el, listItem, message, note, pending, avatar } from './render.js';

const me = document.querySelector('meta[name="member"]').content;
const multiAccount = Number(document.querySelector('meta[name="accounts"]').content) > 1;
const $ = (id) => document.getElementById(id);

const state = {
  filter: { assignee: '', status: 'open', q: '' },
  convs: new Map(), // key → conversation, the ones listed
  order: [], // keys, as listed
  cursor: '',
  open: null, // the open conversation
  oldest: '', // msg_key before which older history is loaded next
  loadingOlder: false,
  shownKeys: new Set(), // msg_keys shown in the open conversation
  pending: new Map(), // command_id → {li, msgKeys}
  presence: new Map(), // key → viewers
  members: [],
};

// ---- the list ----

function passes(c) {
  const f = state.filter;
  if (f.status !== 'all' && c.status !== f.status) return false;
  if (f.assignee === 'me' && c.assignee !== me) return false;
  if (f.assignee === 'none' && c.assignee) return false;
  if (f.q) {
    const q = f.q.toLowerCase();
    const hay = [c.name, c.last_message && c.last_message.text, c.talker_id].join(' ').toLowerCase();
    if (!hay.includes(q)) return false;
  }
  return true;
}

function query(cursor) {
  const p = new URLSearchParams({ status: state.filter.status, limit: '50' });
  if (state.filter.assignee) p.set('assignee', state.filter.assignee);
  if (state.filter.q) p.set('q', state.filter.q);
  if (cursor) p.set('cursor', cursor);
  return '/api/v1/conversations?' + p;
}

async function loadList(more = false) {
  const res = await call('GET', query(more ? state.cursor : ''));
  if (!more) {
    state.convs.clear();
    state.order = [];
  }
  for (const c of res.conversations) {
    const k = convKey(c);
    if (!state.convs.has(k)) state.order.push(k);
    state.convs.set(k, c);
  }
  state.cursor = res.next_cursor;
  drawList();
}

function sortOrder() {
  state.order.sort((a, b) => {
    const x = state.convs.get(a), y = state.convs.get(b);
    return (y.last_activity || '').localeCompare(x.last_activity || '') || a.localeCompare(b);
  });
}

function drawList() {
  sortOrder();
  const list = $('list');
  const items = state.order.map((k) => {
    const li = listItem(state.convs.get(k), { multiAccount, viewers: (state.presence.get(k) || []).filter((v) => v.member !== me) });
    if (state.open && convKey(state.open) === k) li.classList.add('selected');
    li.addEventListener('click', () => openConversation(state.convs.get(k)));
    li.addEventListener('keydown', (e) => { if (e.key === 'Enter') openConversation(state.convs.get(k)); });
    return li;
  });
  list.replaceChildren(...items);
  $('list-empty').hidden = items.length > 0;
  $('more').hidden = !state.cursor;
  const unread = [...state.convs.values()].reduce((n, c) => n + (c.unread > 0 ? 1 : 0), 0);
  document.title = (unread ? `(${unread}) ` : '') + 'bilibridge';
}

// refresh reads one conversation again after an event about it, and
// puts it in the list where it belongs (or out of it).
const refreshing = new Map();
function refresh(key, path) {
  if (refreshing.has(key)) return refreshing.get(key);
  const p = (async () => {
    await new Promise((r) => setTimeout(r, 30)); // one read for a burst of events
    refreshing.delete(key);
    let c;
    try {
      c = await call('GET', path);
    } catch (e) {
      if (e instanceof APIError && e.status === 404) return;
      throw e;
    }
    if (passes(c)) {
      if (!state.convs.has(key)) state.order.push(key);
      state.convs.set(key, c);
    } else if (state.convs.has(key)) {
      state.convs.delete(key);
      state.order = state.order.filter((k) => k !== key);
    }
    drawList();
    if (state.open && convKey(state.open) === key) {
      state.open = c;
      drawHead();
    }
  })();
  refreshing.set(key, p);
  return p;
}

// ---- one conversation ----

async function openConversation(c) {
  if (state.open && convKey(state.open) === convKey(c)) return;
  leave();
  state.open = c;
  state.oldest = '';
  state.shownKeys = new Set();
  state.pending.clear();
  $('conv-empty').hidden = true;
  $('conv').hidden = false;
  document.body.classList.add('reading');
  $('messages').replaceChildren();
  $('older').textContent = '';
  $('presence').textContent = '';
  drawList();
  drawPresence();
  try {
    // The list has no notes: the conversation itself does.
    state.open = await call('GET', convPath(c));
  } catch (e) {
    showError(e.message);
  }
  if (!state.open || convKey(state.open) !== convKey(c)) return;
  drawHead();
  await loadOlder();
  scrollToEnd();
  say(false);
  if (c.unread > 0) markRead();
}

function leave() {
  if (state.open) {
    call('POST', convPath(state.open) + '/presence', { left: true }).catch(() => {});
  }
}

function drawHead() {
  const c = state.open;
  $('conv-avatar').replaceWith(Object.assign(avatar(c.avatar), { id: 'conv-avatar' }));
  $('conv-name').textContent = c.name || c.talker_id;
  const meta = [c.kind === 'group' ? 'fan group' : `uid ${c.talker_id}`];
  if (multiAccount) meta.push(`account ${c.account_uid}`);
  meta.push(c.status === 'snoozed' && c.snoozed_until ? `snoozed until ${new Date(c.snoozed_until).toLocaleString()}` : c.status);
  meta.push(c.assignee ? `assigned to ${c.assignee}` : 'unassigned');
  $('conv-meta').textContent = meta.join(' · ');
  $('claim').hidden = c.assignee === me;
  $('done').hidden = c.status === 'done';
  $('reopen').hidden = c.status === 'open';
  const sel = $('assign');
  sel.replaceChildren(
    el('option', { value: '', text: 'Unassigned', selected: !c.assignee }),
    ...state.members.map((m) => el('option', { value: m, text: m, selected: c.assignee === m })));
  if (c.assignee && !state.members.includes(c.assignee)) {
    sel.append(el('option', { value: c.assignee, text: c.assignee, selected: true }));
  }
  const notes = $('messages').querySelectorAll('li.note');
  const shown = new Set([...notes].map((n) => n.dataset.note));
  for (const n of c.notes || []) {
    if (!shown.has(n.id)) insertByTime(note(n), n.time);
  }
}

// insertByTime puts a message or note where its time falls in the
// history (a reply still on its way, without a time, stays last).
function insertByTime(li, iso) {
  li.dataset.time = iso;
  const list = $('messages');
  const t = Date.parse(iso);
  for (const other of list.children) {
    if (other.dataset.time && Date.parse(other.dataset.time) > t) {
      list.insertBefore(li, other);
      return;
    }
  }
  list.append(li);
}

async function loadOlder() {
  const c = state.open;
  if (state.loadingOlder || state.oldest === null) return;
  state.loadingOlder = true;
  $('older').textContent = 'Loading…';
  try {
    const p = new URLSearchParams({ limit: '50' });
    if (state.oldest) p.set('before', state.oldest);
    const res = await call('GET', convPath(c) + '/messages?' + p);
    if (state.open !== c) return;
    const list = $('messages');
    const history = $('history');
    const from = history.scrollHeight - history.scrollTop;
    for (const d of res.messages) {
      if (state.shownKeys.has(d.message.msg_key)) continue;
      state.shownKeys.add(d.message.msg_key);
      insertByTime(message(d), d.message.timestamp);
    }
    for (const n of state.open.notes || []) {
      if (!list.querySelector(`li.note[data-note="${CSS.escape(n.id)}"]`)) insertByTime(note(n), n.time);
    }
    history.scrollTop = history.scrollHeight - from;
    state.oldest = res.next_cursor || null;
    $('older').textContent = state.oldest ? '' : 'The beginning of the conversation.';
  } catch (e) {
    $('older').textContent = 'Older messages could not be loaded: ' + e.message;
  } finally {
    state.loadingOlder = false;
  }
}

function scrollToEnd() {
  const h = $('history');
  h.scrollTop = h.scrollHeight;
}

function nearEnd() {
  const h = $('history');
  return h.scrollHeight - h.scrollTop - h.clientHeight < 80;
}

function appendMessage(d) {
  const key = d.message.msg_key;
  if (state.shownKeys.has(key)) return;
  state.shownKeys.add(key);
  // A reply this page sent: its pending bubble becomes the message.
  for (const [id, p] of state.pending) {
    if (p.msgKeys && p.msgKeys.includes(key)) {
      p.li.remove();
      if (p.msgKeys.every((k) => state.shownKeys.has(k))) state.pending.delete(id);
    }
  }
  const stick = nearEnd();
  insertByTime(message(d), d.message.timestamp);
  if (stick) scrollToEnd();
}

function markRead() {
  if (!state.open || document.hidden) return;
  call('POST', convPath(state.open) + '/read', {}).catch(() => {});
}

// ---- actions ----

async function act(path, body) {
  if (!state.open) return;
  try {
    const c = await call('POST', convPath(state.open) + path, body);
    // 202: recorded, but not yet visible to this bridge; the event stream
    // brings the change in a moment.
    if (c.status === 'accepted') return;
    state.open = c;
    drawHead();
    refresh(convKey(c), convPath(c));
  } catch (e) {
    showError(e.message);
  }
}

function showError(msg) {
  const p = $('composer-error');
  p.textContent = msg;
  p.hidden = !msg;
}

async function sendReply(text) {
  const c = state.open;
  const id = crypto.randomUUID();
  const li = pending(text, id);
  $('messages').append(li);
  scrollToEnd();
  state.pending.set(id, { li });
  try {
    await call('POST', '/api/v1/messages', {
      account_uid: c.account_uid, session_type: c.session_type, talker_id: c.talker_id, text, idempotency_key: id,
    });
  } catch (e) {
    setPending(id, 'failed: ' + e.message, true);
  }
}

function setPending(id, text, failed) {
  const p = state.pending.get(id);
  if (!p) return;
  p.li.querySelector('.state').textContent = text;
  p.li.classList.toggle('failed', !!failed);
  p.li.classList.toggle('sent', !failed);
}

async function submit() {
  const text = $('text').value;
  if (!text.trim() || !state.open) return;
  const mode = document.querySelector('input[name="mode"]:checked').value;
  showError('');
  $('text').value = '';
  $('parts').textContent = '';
  if (mode === 'note') {
    await act('/notes', { text });
  } else {
    await sendReply(text);
  }
}

async function sendImage(file) {
  const c = state.open;
  if (!c || !file) return;
  const id = crypto.randomUUID();
  const li = pending('🖼 ' + file.name, id);
  $('messages').append(li);
  scrollToEnd();
  state.pending.set(id, { li });
  try {
    const res = await fetch('/api/v1/images', {
      method: 'POST', credentials: 'same-origin', body: file,
      headers: { 'Content-Type': file.type, 'X-CSRF-Token': document.querySelector('meta[name="csrf-token"]').content },
    });
    const up = await res.json();
    if (!res.ok) throw new Error(up.error);
    await call('POST', '/api/v1/messages', {
      account_uid: c.account_uid, session_type: c.session_type, talker_id: c.talker_id, image_url: up.image_url, idempotency_key: id,
    });
  } catch (e) {
    setPending(id, 'failed: ' + e.message, true);
  }
}

// ---- presence: who else has it open, who is typing ----

let presenceTimer = null;
let lastTyping = 0;

function say(typing) {
  if (!state.open) return;
  call('POST', convPath(state.open) + '/presence', { typing }).catch(() => {});
}

function drawPresence() {
  const p = $('presence');
  if (!state.open) return;
  const others = (state.presence.get(convKey(state.open)) || []).filter((v) => v.member !== me);
  const typing = others.filter((v) => v.typing).map((v) => v.member);
  const viewing = others.filter((v) => !v.typing).map((v) => v.member);
  const parts = [];
  if (typing.length) parts.push(`✍ ${typing.join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing a reply`);
  if (viewing.length) parts.push(`👁 ${viewing.join(', ')} ${viewing.length > 1 ? 'have' : 'has'} it open`);
  p.textContent = parts.join(' · ');
  p.classList.toggle('warn', typing.length > 0);
}

// ---- live events ----

function onEvent(type, ev) {
  const d = ev.data || {};
  const conv = d.conversation;
  if (!conv) return;
  const c = { account_uid: d.account_uid, session_type: conv.session_type, talker_id: conv.talker_id };
  const key = convKey(c);
  refresh(key, convPath(c));
  if (!state.open || convKey(state.open) !== key) return;
  switch (type) {
    case 'com.bilibili.dm.message':
      appendMessage(d);
      if (d.message.direction === 'in') markRead();
      break;
    case 'com.bilibili.dm.recall': {
      const li = $('messages').querySelector(`li[data-msg-key="${CSS.escape(d.recalled_msg_key)}"]`);
      if (li) li.classList.add('recalled');
      break;
    }
    case 'com.bilibili.dm.send.succeeded':
      if (state.pending.has(d.command_id)) {
        setPending(d.command_id, 'sent', false);
        const p = state.pending.get(d.command_id);
        p.msgKeys = d.msg_keys && d.msg_keys.length ? d.msg_keys : [d.msg_key];
      }
      break;
    case 'com.bilibili.dm.send.failed':
      setPending(d.command_id, 'failed: ' + (d.error || 'Bilibili refused it'), true);
      break;
  }
}

function onPresence(p) {
  const key = convKey(p.conversation);
  state.presence.set(key, p.viewers);
  if (state.open && convKey(state.open) === key) drawPresence();
  drawList();
}

// ---- wiring ----

function setFilter(kind, value) {
  state.filter[kind] = value;
  for (const b of document.querySelectorAll(`[data-${kind}]`)) {
    b.setAttribute('aria-pressed', String(b.dataset[kind] === value));
  }
  loadList().catch((e) => showError(e.message));
}

function move(step) {
  const keys = state.order;
  if (!keys.length) return;
  let i = state.open ? keys.indexOf(convKey(state.open)) : -1;
  i = Math.max(0, Math.min(keys.length - 1, i + step));
  openConversation(state.convs.get(keys[i]));
  document.querySelector(`#list li[data-key="${CSS.escape(keys[i])}"]`)?.scrollIntoView({ block: 'nearest' });
}

function applyTheme(t) {
  if (t) document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}

async function previewParts() {
  const text = $('text').value;
  const mode = document.querySelector('input[name="mode"]:checked').value;
  if (mode !== 'reply' || [...text].length <= 450) {
    $('parts').textContent = '';
    return;
  }
  try {
    const res = await call('POST', '/api/v1/messages/preview', { text });
    $('parts').textContent = res.parts.length > 1 ? `will be sent as ${res.parts.length} messages` : '';
  } catch {
    // a preview is a nicety
  }
}

function init() {
  applyTheme(localStorage.getItem('theme'));
  $('theme').addEventListener('click', () => {
    const dark = matchMedia('(prefers-color-scheme: dark)').matches;
    const cur = document.documentElement.dataset.theme || (dark ? 'dark' : 'light');
    const next = cur === 'dark' ? 'light' : 'dark';
    localStorage.setItem('theme', next);
    applyTheme(next);
  });
  for (const b of document.querySelectorAll('[data-assignee]')) b.addEventListener('click', () => setFilter('assignee', b.dataset.assignee));
  for (const b of document.querySelectorAll('[data-status]')) b.addEventListener('click', () => setFilter('status', b.dataset.status));
  let searchTimer;
  $('search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { state.filter.q = $('search').value.trim(); loadList(); }, 200);
  });
  $('more').addEventListener('click', () => loadList(true));
  $('claim').addEventListener('click', () => act('/assign', { assignee: 'me' }));
  $('assign').addEventListener('change', (e) => act('/assign', { assignee: e.target.value || null }));
  $('snooze').addEventListener('change', (e) => {
    if (e.target.value) act('/status', { status: 'snoozed', snoozed_until: e.target.value });
    e.target.value = '';
  });
  $('done').addEventListener('click', () => act('/status', { status: 'done' }));
  $('reopen').addEventListener('click', () => act('/status', { status: 'open' }));
  $('back').addEventListener('click', () => { leave(); state.open = null; document.body.classList.remove('reading'); $('conv').hidden = true; $('conv-empty').hidden = false; drawList(); });
  $('composer').addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  let previewTimer;
  $('text').addEventListener('input', () => {
    const now = Date.now();
    if (now - lastTyping > 2000) {
      lastTyping = now;
      say(true);
    }
    clearTimeout(previewTimer);
    previewTimer = setTimeout(previewParts, 300);
  });
  $('text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  $('text').addEventListener('paste', (e) => {
    const f = [...(e.clipboardData?.files || [])].find((x) => x.type.startsWith('image/'));
    if (f) {
      e.preventDefault();
      sendImage(f);
    }
  });
  $('image').addEventListener('change', (e) => { sendImage(e.target.files[0]); e.target.value = ''; });
  for (const r of document.querySelectorAll('input[name="mode"]')) {
    r.addEventListener('change', () => {
      const note = r.value === 'note' && r.checked;
      $('composer').classList.toggle('note-mode', note);
      $('text').placeholder = note ? 'A note for the team (never sent to Bilibili)…' : 'Reply… (Enter sends, Shift+Enter new line)';
      previewParts();
    });
  }
  $('history').addEventListener('scroll', () => { if ($('history').scrollTop < 40) loadOlder(); });
  document.addEventListener('keydown', (e) => {
    const typing = ['INPUT', 'TEXTAREA', 'SELECT'].includes(document.activeElement?.tagName);
    if (e.key === 'Escape') { document.activeElement?.blur(); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    const keys = {
      j: () => move(1), k: () => move(-1),
      r: () => $('text').focus(),
      e: () => act('/status', { status: 'done' }),
      a: () => act('/assign', { assignee: 'me' }),
      '/': () => $('search').focus(),
    };
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden && state.open && state.open.unread > 0) markRead(); });
  addEventListener('pagehide', leave);
  presenceTimer = setInterval(() => say(false), 10000);

  listen({
    onEvent, onPresence,
    onState: (live) => { $('conn').textContent = live ? '● live' : '○ reconnecting…'; $('conn').classList.toggle('warn', !live); },
  });
  call('GET', '/api/v1/members').then((r) => { state.members = r.members.map((m) => m.name); if (state.open) drawHead(); }).catch(() => {});
  loadList().catch((e) => showError(e.message));
}

init();
