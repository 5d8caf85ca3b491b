// Building the page's nodes. Text from Bilibili (names, messages, card
// titles) only ever goes in as textContent, never as HTML, and links only
// when they are http(s): a DM holding <script> is shown, not run.

export function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k === 'text') n.textContent = v;
    else if (k.startsWith('data-')) n.setAttribute(k, v);
    else n[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    n.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return n;
}

// safeURL returns u when it is an http(s) URL, else null.
export function safeURL(u) {
  try {
    const p = new URL(u);
    return p.protocol === 'https:' || p.protocol === 'http:' ? p.href : null;
  } catch {
    return null;
  }
}

function image(url, cls) {
  const src = safeURL(url);
  if (!src) return null;
  return el('img', { src, class: cls, alt: '', loading: 'lazy', referrerPolicy: 'no-referrer' });
}

function link(url, text) {
  const href = safeURL(url);
  if (!href) return el('span', { text });
  return el('a', { href, text, target: '_blank', rel: 'noopener noreferrer' });
}

export function avatar(url) {
  return image(url, 'avatar') || el('span', { class: 'avatar placeholder' });
}

export function timeLabel(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) {
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }
  return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

const statusMark = { done: '✅', snoozed: '💤', open: '' };

// listItem is one conversation in the list.
export function listItem(c, { multiAccount, viewers }) {
  const lm = c.last_message;
  const preview = lm ? (lm.direction === 'out' ? '↗ ' : '') + lm.text : '';
  const li = el('li', { class: 'item' + (c.unread > 0 ? ' unread' : ''), tabIndex: 0, 'data-key': `${c.account_uid}.${c.session_type}.${c.talker_id}` },
    avatar(c.avatar),
    el('div', { class: 'grow' },
      el('div', { class: 'line' },
        el('span', { class: 'name', text: c.name || c.talker_id }),
        statusMark[c.status] ? el('span', { class: 'mark', title: c.status, text: statusMark[c.status] }) : null,
        el('span', { class: 'spacer' }),
        el('time', { class: 'muted small', text: timeLabel(c.last_activity || c.updated_at), dateTime: c.last_activity || '' })),
      el('div', { class: 'line' },
        el('span', { class: 'preview muted', text: preview }),
        el('span', { class: 'spacer' }),
        viewers && viewers.length ? el('span', { class: 'viewing', title: viewers.map((v) => v.member).join(', ') + ' viewing', text: '👁' }) : null,
        c.assignee ? el('span', { class: 'chip', text: c.assignee }) : null,
        c.unread > 0 ? el('span', { class: 'badge', text: String(c.unread) }) : null),
      multiAccount ? el('div', { class: 'muted small', text: `account ${c.account_uid}` }) : null));
  return li;
}

// message is one message of the history (a message event's data).
export function message(d) {
  const m = d.message;
  const kinds = { tip: 'system', notice: 'system', group_system: 'system' };
  const cls = ['msg', m.direction === 'out' ? 'out' : 'in', kinds[m.kind] || '', m.status === 'recalled' ? 'recalled' : ''].join(' ');
  const body = el('div', { class: 'body' });
  const imgs = m.images || [];
  if (m.kind === 'image' || m.kind === 'sticker' || m.kind === 'picture') {
    for (const i of imgs) body.append(image(i.url, 'photo') || '');
    if (!imgs.length) body.append(el('span', { text: m.text }));
  } else if (m.card) {
    const c = m.card;
    const card = el('div', { class: 'card' },
      c.cover ? image(c.cover, 'cover') : null,
      el('div', { class: 'grow' },
        c.title ? el('div', { class: 'title' }, c.url ? link(c.url, c.title) : c.title) : null,
        c.description ? el('div', { class: 'small', text: c.description }) : null,
        ...(c.fields || []).map((f) => el('div', { class: 'small muted', text: `${f.name}: ${f.value}` })),
        ...(c.buttons || []).map((b) => el('div', { class: 'small' }, link(b.url, b.text)))));
    if (m.text && m.text !== c.title) body.append(el('div', { class: 'text', text: m.text }));
    body.append(card);
  } else {
    body.append(el('div', { class: 'text', text: m.text }));
    for (const i of imgs) body.append(image(i.url, 'photo') || '');
  }
  const meta = [timeLabel(m.timestamp)];
  if (m.direction === 'out') meta.unshift('↗ the account');
  else if (m.sender_name && d.conversation && m.sender_name !== d.conversation.name) meta.unshift(m.sender_name);
  if (m.auto_reply) meta.push('auto-reply');
  if (m.status === 'recalled') meta.push('recalled');
  if (m.status === 'image_expired') meta.push('image expired');
  return el('li', { class: cls, 'data-msg-key': m.msg_key },
    body, el('div', { class: 'meta muted small', text: meta.join(' · ') }));
}

// note is an internal note in the history.
export function note(n) {
  const by = n.by && (n.by.member || (n.by.service ? 'an automation' : 'the bridge'));
  return el('li', { class: 'msg note', 'data-note': n.id },
    el('div', { class: 'body' }, el('div', { class: 'text', text: n.text })),
    el('div', { class: 'meta muted small', text: `📝 note by ${by} · ${timeLabel(n.time)} · not sent to Bilibili` }));
}

// pending is a reply on its way: state sending, sent or failed.
export function pending(text, commandID) {
  return el('li', { class: 'msg out pending', 'data-command': commandID },
    el('div', { class: 'body' }, el('div', { class: 'text', text })),
    el('div', { class: 'meta muted small state', text: 'sending…' }));
}
