// demo.js wires the demo page (index.html) to the sessionhub client. The
// ids it uses are a contract with the browser tests (see doc.go).
import { connect } from './sessionhub.js';

const $ = (id) => document.getElementById(id);

let client = null;
let writes = 0; // the number of the latest write: only its outcome is shown

function show(v) {
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

// setInput updates a text control unless the user is editing it.
function setInput(el, v) {
  if (document.activeElement !== el) el.value = typeof v === 'string' ? v : '';
}

function render() {
  const v = client.values;
  $('colour-value').textContent = show(v.colour);
  $('theme-value').textContent = show(v.theme);
  $('language-value').textContent = show(v.language);
  $('notifications-value').textContent = show(v.notifications);
  $('name-value').textContent = show(v.name);
  setInput($('colour'), v.colour);
  setInput($('language'), v.language);
  $('theme').value = typeof v.theme === 'string' ? v.theme : '';
  $('notifications').checked = v.notifications === true;
  document.documentElement.dataset.theme = typeof v.theme === 'string' ? v.theme : '';
  paintSwatch(typeof v.colour === 'string' ? v.colour : '');
  $('seq').textContent = String(client.seq);
  renderCookie();
}

function renderCookie() {
  $('cookie').textContent = client.inCookie ? 'in cookie' : 'not in cookie';
}

function paintSwatch(colour) {
  const el = $('swatch');
  el.dataset.colour = colour;
  el.style.background = colour;
}

function message(text) {
  $('message').textContent = text;
}

// track shows the outcome of the latest write in #ack.
function track(promise) {
  const n = ++writes;
  $('ack').textContent = 'pending';
  promise.then(
    () => {
      if (n === writes) $('ack').textContent = 'acknowledged';
      renderCookie();
    },
    (err) => {
      if (n === writes) $('ack').textContent = `error: ${err.code || 'internal'}`;
      if (err.code !== 'unavailable') message(err.message);
    },
  );
}

// write sets key, or deletes it when value is the empty string.
function write(key, value) {
  track(value === '' ? client.delete(key) : client.set(key, value));
}

function start() {
  client = connect();
  window.sessionhub = client;
  $('status').textContent = client.status;
  for (const ev of ['welcome', 'change', 'reset', 'resumed']) client.on(ev, render);
  client.on('flushed', renderCookie);
  client.on('status', ({ status, code }) => {
    $('status').textContent = status;
    if (status === 'ended') {
      for (const id of ['colour-value', 'theme-value', 'language-value', 'notifications-value', 'name-value']) {
        $(id).textContent = '';
      }
      message('The session ended. Log in or reload to start a new one.');
    } else if (status === 'connected') {
      message('');
    } else if (status === 'reconnecting') {
      message(`Connection lost (code ${code}); reconnecting…`);
    }
  });
  client.on('error', ({ code, message: text }) => message(`${code}: ${text}`));
  return client;
}

async function post(path, body) {
  await client.pauseFlush();
  try {
    const res = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error ? data.error.message : `HTTP ${res.status}`);
    return data;
  } finally {
    client.resumeFlush();
  }
}

function init() {
  start();
  $('save-colour').addEventListener('click', () => write('colour', $('colour').value.trim()));
  $('save-language').addEventListener('click', () => write('language', $('language').value.trim()));
  $('theme').addEventListener('change', () => write('theme', $('theme').value));
  $('notifications').addEventListener('change', () => write('notifications', $('notifications').checked));
  for (const [input, button] of [['colour', 'save-colour'], ['language', 'save-language'], ['name', 'login']]) {
    $(input).addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') $(button).click();
    });
  }
  $('login').addEventListener('click', async () => {
    try {
      const data = await post('/login', { name: $('name').value.trim() });
      $('name-value').textContent = show(data.values && data.values.name);
      message('');
      // A session that ended has no socket left: open one for the new session.
      // Otherwise the server closed ours with 4100 and it reconnects by itself.
      if (client.status === 'ended' || client.status === 'closed') start();
    } catch (err) {
      message(`Login failed: ${err.message}`);
    }
  });
  $('logout').addEventListener('click', async () => {
    try {
      await post('/logout', {});
    } catch (err) {
      message(`Logout failed: ${err.message}`);
    }
  });
  paintSwatch($('swatch').dataset.colour || '');
}

init();
