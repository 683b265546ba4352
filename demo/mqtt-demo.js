// The chat demo over MQTT (docs/mqtt.md): no walcast SDK, only mqtt.js.
//   chat_messages/<room>/#   every message of the room; the newest arrive first as retained messages
//   presence/<room>/#        who is here; an empty payload is a row deleted (someone left)
// Sending a message publishes the row with retain=1 on chat_messages/<room> (an INSERT);
// this page's presence row is presence/<room>/<name>, upserted with retain=1 every 30 s
// (the presence TTL is 2 minutes). Its will, an empty retained payload, deletes the
// row if the page vanishes without saying goodbye.
import mqtt from '/vendor/mqtt.esm.js';

const params = new URLSearchParams(location.search);
const room = params.get('room') || 'lobby';
const name = params.get('name') || `guest-${Math.random().toString(36).slice(2, 7)}`;
// Values in topic levels escape what MQTT reserves (docs/mqtt.md#topics).
const level = (v) => v.replace(/[%/+#]/g, (c) => ({ '%': '%25', '/': '%2F', '+': '%2B', '#': '%23' })[c]);
const unlevel = (v) => v.replace(/%(25|2F|2B|23)/gi, (_, h) => String.fromCharCode(parseInt(h, 16)));
const me = `presence/${level(room)}/${level(name)}`;

const $ = (id) => document.getElementById(id);
$('room-title').textContent = `${room} · you are ${name}`;
const messages = new Map(); // id → li
const members = new Map(); // user → name

function status(s, text) {
  $('status').dataset.status = s;
  $('status').textContent = text;
}

const client = mqtt.connect(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mqtt`, {
  protocolVersion: 5,
  reconnectPeriod: 1000,
  will: { topic: me, payload: '', retain: true, qos: 1 },
});

const here = () => client.publish(me, JSON.stringify({ name }), { qos: 1, retain: true });

client.on('connect', () => {
  status('open', 'connected (MQTT)');
  client.subscribe([`chat_messages/${level(room)}/#`, `presence/${level(room)}/#`], { qos: 1 });
  here();
});
client.on('reconnect', () => status('reconnecting', 'reconnecting'));
client.on('offline', () => status('closed', 'offline'));
client.on('close', () => status('closed', 'disconnected'));
setInterval(() => client.connected && here(), 30_000);

client.on('message', (topic, payload) => {
  const [table, , key] = topic.split('/');
  if (table === 'chat_messages') return payload.length && showMessage(JSON.parse(payload.toString()));
  if (table === 'presence') {
    const user = unlevel(key ?? '');
    if (payload.length) members.set(user, JSON.parse(payload.toString()).name);
    else members.delete(user);
    showMembers();
  }
});

function showMessage(row) {
  // A resubscribe after a reconnect sends the retained rows again: one li per id, in id order.
  if (messages.has(row.id)) return;
  const li = document.createElement('li');
  const who = document.createElement('strong');
  who.textContent = row.sender;
  const body = document.createElement('span');
  body.className = 'body';
  body.textContent = row.body;
  li.append(who, ' ', body);
  li.dataset.id = row.id;
  const next = [...$('messages').children].find((el) => BigInt(el.dataset.id) > BigInt(row.id));
  $('messages').insertBefore(li, next ?? null);
  messages.set(row.id, li);
}

function showMembers() {
  const list = $('presence');
  list.replaceChildren(
    ...[...members.values()].sort().map((n) => {
      const li = document.createElement('li');
      li.textContent = n;
      return li;
    }),
  );
  $('presence-count').textContent = String(members.size);
}

$('compose').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = e.target.elements.body;
  const row = { sender: name, body: input.value };
  client.publish(`chat_messages/${level(room)}`, JSON.stringify(row), { qos: 1, retain: true }, (err) => {
    $('error').hidden = !err;
    if (err) $('error').textContent = `not sent: ${err.message}`;
  });
  input.value = '';
});

// Leaving: the presence row is deleted (an empty retained payload). The connection is left to
// close with the page, without DISCONNECT, so the will does the same if this publish is cut short.
addEventListener('pagehide', () => client.publish(me, '', { qos: 0, retain: true }));
