// The walcast demo: a chat room with presence and a live event log.
// Writes go to the demo application routes (relay/http/demo.ts), which
// INSERT and UPSERT rows; every change comes back through the relay's
// WebSocket, to this page and every other one in the room.
import { createClient } from '/client.js';

/** The presence table's TTL (sql/example/001_example.sql): rows older than this are gone. */
const PRESENCE_TTL_MS = 2 * 60_000;
/** How often this page refreshes its own presence row, well inside the TTL. */
const PRESENCE_REFRESH_MS = 30_000;
const MAX_MESSAGES = 500;
const MAX_LOG_LINES = 200;

const $ = (selector) => document.querySelector(selector);
const params = new URLSearchParams(location.search);

const state = {
  room: '',
  name: '',
  // randomUUID exists only in secure contexts (https, localhost); a LAN address is not one.
  user: crypto.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`,
  /** id → message row */
  messages: new Map(),
  /** user_id → { name, heardAt } (heardAt: this page's clock) */
  members: new Map(),
};

// ---- joining ----

const joinForm = $('#join');
const initialRoom = params.get('room');
const initialName = params.get('name');
if (initialRoom && initialName) {
  join(initialRoom, initialName);
} else {
  joinForm.hidden = false;
  if (initialRoom) joinForm.room.value = initialRoom;
  joinForm.name.focus();
}

joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const room = joinForm.room.value.trim();
  const name = joinForm.name.value.trim();
  if (!room || !name) return;
  history.replaceState(null, '', `?${new URLSearchParams({ room, name })}`);
  join(room, name);
});

function join(room, name) {
  state.room = room;
  state.name = name.slice(0, 40);
  joinForm.hidden = true;
  $('#chat').hidden = false;
  $('#room-title').hidden = false;
  $('#room-title').textContent = `room ${room} · ${state.name}`;
  document.title = `${room} · walcast demo`;
  $('#psql-hint').textContent =
    `insert into chat_messages (channel_id, sender, body) values (${sqlString(room)}, 'psql', 'hi')`;
  connect();
  $('#compose').body.focus();
}

// ---- the live connection ----

function connect() {
  const rt = createClient(location.origin);
  window.walcast = rt; // for poking at it from the console
  rt.on('status', (s) => {
    setStatus(s.status);
    if (s.status === 'reconnecting') logNotice(`connection lost (${s.error.code}); retrying in ${s.delayMs} ms`);
    if (s.status === 'open') logNotice('connected');
  });
  setStatus(rt.status);

  const sub = rt.subscribe(state.room, { snapshot: true, limit: 50, tables: ['chat_messages', 'presence'] }, onEvent);
  sub.on('subscribed', (n) => {
    if (n.recovered === true) logNotice('resubscribed: missed events replayed');
  });
  sub.on('resync', () => {
    // The missed events are gone; a fresh snapshot follows and replaces what we had.
    logNotice('resync: too much was missed, reloading the room');
    state.messages.clear();
    state.members.clear();
    renderMessages();
    renderPresence();
  });
  sub.on('synced', (n) => n.rows > 0 && logNotice(`snapshot: ${n.rows} row${n.rows === 1 ? '' : 's'}`));
  sub.on('error', (err) => showError(`subscribe failed: ${err.message}`));

  announce();
  setInterval(announce, PRESENCE_REFRESH_MS);
  setInterval(sweepPresence, 5_000);
  // A page that leaves says so; one that vanishes is dropped by the TTL.
  addEventListener('pagehide', leave);
}

function onEvent(event) {
  logEvent(event);
  if (event.table === 'chat_messages') onMessage(event);
  else if (event.table === 'presence') onPresence(event);
}

function onMessage({ op, row }) {
  // TRUNCATE: every message is gone.
  if (op === 'truncate') state.messages.clear();
  else if (op === 'delete') state.messages.delete(row.id);
  else state.messages.set(row.id, row);
  while (state.messages.size > MAX_MESSAGES) state.messages.delete(state.messages.keys().next().value);
  renderMessages();
}

function onPresence({ op, row, commit_time }) {
  if (op === 'truncate') {
    state.members.clear();
    renderPresence();
    return;
  }
  // How old the row was when sent, by the server's own clock (snapshot rows
  // and rows written by hand can be old): a row past the TTL is a member gone.
  const age = Math.max(0, Date.parse(commit_time) - Date.parse(row.updated_at)) || 0;
  if (op === 'delete' || row.status === 'offline' || age >= PRESENCE_TTL_MS) {
    state.members.delete(row.user_id);
  } else {
    state.members.set(row.user_id, { name: row.name, heardAt: Date.now() - age });
  }
  renderPresence();
}

function sweepPresence() {
  const cutoff = Date.now() - PRESENCE_TTL_MS;
  let changed = false;
  for (const [user, m] of state.members) {
    if (user !== state.user && m.heardAt < cutoff) changed = state.members.delete(user);
  }
  if (changed) renderPresence();
}

// ---- writes, through the application routes ----

$('#compose').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = e.target.body;
  const body = input.value.trim();
  if (!body) return;
  const button = e.target.querySelector('button');
  button.disabled = true;
  try {
    await request('POST', '/demo/messages', { room: state.room, name: state.name, body });
    input.value = '';
    showError('');
  } catch (err) {
    showError(`not sent: ${err.message}`);
  } finally {
    button.disabled = false;
    input.focus();
  }
});

function announce() {
  request('PUT', '/demo/presence', { room: state.room, user: state.user, name: state.name }).catch((err) =>
    logNotice(`presence not saved: ${err.message}`),
  );
}

function leave() {
  const query = new URLSearchParams({ room: state.room, user: state.user });
  // keepalive: the request outlives the page.
  fetch(`/demo/presence?${query}`, { method: 'DELETE', keepalive: true }).catch(() => {});
}

async function request(method, url, body) {
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).message ?? `HTTP ${res.status}`);
}

// ---- rendering ----

function setStatus(status) {
  const el = $('#status');
  el.dataset.status = status;
  el.textContent = status;
}

function renderMessages() {
  const list = $('#messages');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const rows = [...state.messages.values()].sort((a, b) => compareIds(a.id, b.id));
  list.replaceChildren(...rows.map(messageItem));
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function messageItem(row) {
  const li = el('li', '', [
    el('span', 'sender', row.sender),
    el('span', 'body', row.body),
    el('span', 'time', clock(row.created_at)),
  ]);
  li.dataset.id = row.id;
  if (row.sender === state.name) li.classList.add('mine');
  return li;
}

function renderPresence() {
  const members = [...state.members].sort(([, a], [, b]) => a.name.localeCompare(b.name));
  $('#presence').replaceChildren(
    ...members.map(([user, m]) => {
      const li = el('li', user === state.user ? 'me' : '', m.name);
      li.dataset.user = user;
      return li;
    }),
  );
  $('#presence-count').textContent = String(members.length);
}

function logEvent({ op, table, position, row }) {
  if (op === 'truncate') return appendLog(op, `${table.padEnd(13)} every row removed`, position);
  const what =
    table === 'chat_messages' ? `${row.sender ?? ''}: ${row.body ?? `#${row.id}`}` : `${row.name || row.user_id}`;
  appendLog(op, `${table.padEnd(13)} ${what}`, position);
}

function logNotice(text) {
  appendLog('notice', text);
}

function appendLog(op, text, position) {
  const li = el('li', '', [el('span', `op op-${op}`, op), document.createTextNode(` ${clock()} ${text}`)]);
  if (position) li.title = `position ${position}`;
  const log = $('#log');
  log.prepend(li);
  while (log.childElementCount > MAX_LOG_LINES) log.lastElementChild.remove();
}

function showError(text) {
  $('#error').hidden = !text;
  $('#error').textContent = text;
}

function el(tag, className, content) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (Array.isArray(content)) node.append(...content);
  else if (content !== undefined) node.textContent = content;
  return node;
}

/** bigint ids arrive as strings: compare them as numbers. */
function compareIds(a, b) {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function clock(iso) {
  const d = iso ? new Date(iso) : new Date();
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function sqlString(s) {
  return `'${s.replace(/'/g, "''")}'`;
}
