// The HTTP API of the bridge, as the page uses it: the session cookie
// goes along by itself; every state-changing request carries the CSRF
// token from the page's <meta name="csrf-token">.

const csrf = document.querySelector('meta[name="csrf-token"]').content;

export class APIError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.body = body;
  }
}

export async function call(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (method !== 'GET') {
    init.headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    // The session ended (signed out elsewhere, member removed): back to
    // the sign-in page.
    location.reload();
    throw new APIError(401, null);
  }
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    throw new APIError(res.status, data);
  }
  return data;
}

export const convPath = (c) => `/api/v1/conversations/${c.account_uid}/${c.session_type}/${c.talker_id}`;
export const convKey = (c) => `${c.account_uid}.${c.session_type}.${c.talker_id}`;

// listen follows the event stream, calling onEvent(type, cloudEvent) and
// onPresence(data); EventSource reconnects by itself with Last-Event-ID,
// so nothing is missed across a dropped connection. onState(connected)
// tells whether it is live.
export function listen({ onEvent, onPresence, onState }) {
  const es = new EventSource('/api/v1/events');
  const types = [
    'com.bilibili.dm.message', 'com.bilibili.dm.recall',
    'com.bilibili.dm.send.succeeded', 'com.bilibili.dm.send.failed',
    'com.bilibili.account.status',
    'com.bilibili.team.assigned', 'com.bilibili.team.status',
    'com.bilibili.team.note', 'com.bilibili.team.read',
  ];
  for (const t of types) {
    es.addEventListener(t, (e) => onEvent(t, JSON.parse(e.data)));
  }
  es.addEventListener('presence', (e) => onPresence(JSON.parse(e.data)));
  es.onopen = () => onState(true);
  es.onerror = () => onState(false);
  return es;
}
