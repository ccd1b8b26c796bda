// sessionhub.js: the browser client of sessionhub.
//
// An ES module with no build step and no dependencies. It speaks the wire
// protocol of docs/PROTOCOL.md over one WebSocket, keeps a local copy of
// the session's client-readable values, reconnects with exponential
// backoff and jitter, resumes from the last sequence it saw, and flushes
// acknowledged changes into the session cookie (POST <prefix>/flush) so
// that the next page load is rendered with them. Guide: docs/CLIENT.md.
//
//   import { connect } from '/static/sessionhub.js';
//   const client = connect();
//   client.on('change', () => render(client.values));
//   await client.set('colour', 'teal'); // resolves with {seq} once stored

/**
 * The WebSocket subprotocol the client asks for: a server frame may carry
 * several messages, one JSON object per line (docs/PROTOCOL.md).
 */
export const subprotocol = 'sessionhub.v2';

/** Error codes of the protocol, plus the client's own `unavailable`. */
export const codes = Object.freeze([
  'invalid', 'forbidden', 'too_large', 'too_many_pending', 'rate_limited',
  'unavailable', 'not_found', 'internal',
]);

/**
 * The error a request's promise is rejected with. `code` is a wire error
 * code (see docs/PROTOCOL.md); `unavailable` also means the socket closed
 * before the reply, or the client is closed.
 */
export class SessionhubError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'SessionhubError';
    this.code = code;
  }
}

/**
 * What to do after the socket closed with `code`, by the close-code ranges
 * of docs/PROTOCOL.md: 1000 and 1008 stop; 4000–4099 stop (the session is
 * gone: 4000 session ended); 4100–4199 reconnect without resuming (the
 * session changed: 4100 session rotated); every other code (1001, 1006,
 * 1009, 1011, 4200–4999, codes this client does not know) reconnects and
 * resumes.
 */
export function closePolicy(code) {
  if (code === 1000 || code === 1008 || (code >= 4000 && code <= 4099)) {
    return { reconnect: false, resume: false };
  }
  if (code >= 4100 && code <= 4199) {
    return { reconnect: true, resume: false };
  }
  return { reconnect: true, resume: true };
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first): an
 * exponential backoff from `min` to `max` milliseconds with "equal
 * jitter", a random delay between half the step and the step.
 */
export function backoff(attempt, min = 250, max = 10000, random = Math.random) {
  const step = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + random() * (step / 2));
}

/** Opens a client and returns it; it connects at once. */
export function connect(options = {}) {
  const client = new Client(options);
  client.open();
  return client;
}

const OPEN = 1;

/**
 * A sessionhub client. Events (listen with `on(name, fn)`, or
 * addEventListener: the payload is `event.detail`):
 *
 *  - `welcome` {seq, values, resumed}: a socket was accepted;
 *  - `change`  {seq, ops, source, replayed}: a change of the session;
 *    `replayed` is true for changes a resume replayed that the welcome
 *    already held (values are not changed again);
 *  - `reset`   {seq, values}: the whole state, after a resume the log
 *    could not serve;
 *  - `resumed` {seq}: the end of a resume;
 *  - `status`  {status, code, reason, delay}: the connection's status
 *    changed (connecting, connected, reconnecting, closed, ended);
 *  - `ack`     {id, seq, data}: a request was acknowledged;
 *  - `flushed` {seq, values}: the cookie now holds the session at seq;
 *  - `push`    {name, data}: an event sent by the application's Go code;
 *  - `error`   {code, message}: an error that answers no request.
 */
export class Client extends EventTarget {
  constructor(options = {}) {
    super();
    const loc = globalThis.location;
    this.prefix = '/' + String(options.prefix ?? '/hub').replace(/^\/+|\/+$/g, '');
    this.url = options.url ?? defaultURL(loc, this.prefix);
    this.flushURL = options.flushURL ?? this.prefix + '/flush';
    this.autoFlush = options.autoFlush ?? true;
    this.flushDelay = options.flushDelay ?? 100;
    this.minReconnectDelay = options.minReconnectDelay ?? 250;
    this.maxReconnectDelay = options.maxReconnectDelay ?? 10000;
    this.requestTimeout = options.requestTimeout ?? 15000;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));

    /** connecting, connected, reconnecting, closed or ended. */
    this.status = 'connecting';
    /** The highest sequence seen: the version of `values`. */
    this.seq = 0;
    /** The highest sequence acknowledged to this client's requests. */
    this.ackedSeq = 0;
    /** The version of the session the cookie holds, as far as this client knows. */
    this.inCookieSeq = 0;

    this._values = new Map();
    this._nextID = 1;
    this._pending = new Map(); // id -> request sent, waiting for its reply
    this._queue = []; // requests waiting for a connected socket
    this._ws = null;
    this._welcomed = false; // the current socket got its welcome
    this._everWelcomed = false;
    this._attempt = 0;
    this._timer = null;
    this._resumeAfter = 0; // resume from this seq after the next welcome
    this._replay = null; // {from, to, emitted} while a resume replays
    this._flushTimer = null;
    this._flushing = null; // the flush in flight
    this._flushAgain = false;
    this._flushAttempt = 0;
    this._flushPaused = false;
    this._onOnline = () => {
      if (this.status === 'reconnecting' && this._timer !== null) {
        clearTimeout(this._timer);
        this._timer = null;
        this.open();
      }
    };
    globalThis.addEventListener?.('online', this._onOnline);
  }

  /** A copy of the client-readable values, as of `seq`. */
  get values() {
    return Object.fromEntries(this._values);
  }

  /** The value of key, or undefined. */
  get(key) {
    return this._values.get(key);
  }

  /** Whether the last acknowledged change is already in the cookie. */
  get inCookie() {
    return this.ackedSeq <= this.inCookieSeq;
  }

  /** Listens to event `name`; fn gets the detail. Returns an unsubscribe function. */
  on(name, fn) {
    const h = (ev) => fn(ev.detail, ev);
    this.addEventListener(name, h);
    return () => this.removeEventListener(name, h);
  }

  /** Sets key to value (any JSON). Resolves with {seq} once stored. */
  set(key, value) {
    let json;
    try {
      json = JSON.stringify(value === undefined ? null : value);
    } catch (err) {
      return Promise.reject(new SessionhubError('invalid', `value of ${key} is not JSON: ${err.message}`));
    }
    return this._request({ type: 'set', key, value: JSON.parse(json) }).then((m) => ({ seq: m.seq }));
  }

  /** Deletes key. Resolves with {seq} once stored. */
  delete(key) {
    return this._request({ type: 'delete', key }).then((m) => ({ seq: m.seq }));
  }

  /** Sends an event to the Go handler registered under name; resolves with its reply. */
  send(name, data = null) {
    return this._request({ type: 'event', name, data }).then((m) => m.data);
  }

  /**
   * Folds the acknowledged changes into the cookie now (POST <prefix>/flush).
   * Resolves with the bridge's {seq, values}. Automatic after acks unless
   * `autoFlush` is false.
   */
  flush() {
    if (this._flushTimer !== null) {
      clearTimeout(this._flushTimer);
      this._flushTimer = null;
    }
    if (this._flushing) {
      this._flushAgain = true;
      return this._flushing;
    }
    const p = this._doFlush();
    this._flushing = p;
    p.then(
      () => this._afterFlush(p, true),
      (err) => this._afterFlush(p, false, err),
    );
    return p;
  }

  /**
   * Stops automatic flushes and resolves once a flush in flight is done.
   * Call it before a request that replaces or deletes the cookie (login,
   * logout), so that a late flush response does not bring the old cookie
   * back; `resumeFlush` turns them on again.
   */
  async pauseFlush() {
    this._flushPaused = true;
    if (this._flushTimer !== null) {
      clearTimeout(this._flushTimer);
      this._flushTimer = null;
    }
    while (this._flushing) {
      try {
        await this._flushing;
      } catch {
        // the flush failed: nothing more to wait for
      }
    }
  }

  /** Turns automatic flushes on again after pauseFlush. */
  resumeFlush() {
    this._flushPaused = false;
    if (this.ackedSeq > this.inCookieSeq) this._scheduleFlush();
  }

  /** Closes the socket for good (status closed). Pending requests are rejected. */
  close() {
    if (this.status === 'closed' || this.status === 'ended') return;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      detach(ws);
      try {
        ws.close(1000, 'client closed');
      } catch {
        // already closing
      }
    }
    this._stop('closed', 1000, 'client closed');
  }

  /** Opens the socket; connect() calls it. */
  open() {
    this._timer = null;
    let ws;
    try {
      ws = new this._WebSocket(this.url, [subprotocol]);
    } catch (err) {
      this._afterClose(1006, String(err && err.message));
      return;
    }
    this._ws = ws;
    this._welcomed = false;
    ws.onmessage = (ev) => {
      if (ws !== this._ws) return;
      if (ws.protocol !== subprotocol) {
        this._onMessage(ev.data);
        return;
      }
      // Several messages per frame, newline-separated (JSON text holds
      // no raw newline).
      for (const line of String(ev.data).split('\n')) {
        if (line && ws === this._ws) this._onMessage(line);
      }
    };
    ws.onclose = (ev) => {
      if (ws === this._ws) this._onClose(ev.code, ev.reason);
    };
    ws.onerror = () => {}; // a close event follows
  }

  // --- messages -----------------------------------------------------------

  _onMessage(data) {
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    if (m === null || typeof m !== 'object') return;
    switch (m.type) {
      case 'welcome':
        this._onWelcome(m);
        break;
      case 'ack':
        this._onAck(m);
        break;
      case 'error':
        this._onError(m);
        break;
      case 'change':
        this._onChange(m);
        break;
      case 'resumed':
        this._replay = null;
        if (m.seq > this.seq) this.seq = m.seq;
        this._emit('resumed', { seq: this.seq });
        break;
      case 'reset':
        this._replay = null;
        this._values = new Map(Object.entries(m.values || {}));
        this.seq = m.seq;
        this._emit('reset', { seq: m.seq, values: this.values });
        break;
      case 'push':
        this._emit('push', { name: m.name, data: m.data });
        break;
    }
  }

  _onWelcome(m) {
    const resumeFrom = this._resumeAfter;
    this._resumeAfter = 0;
    this._welcomed = true;
    this._everWelcomed = true;
    this._attempt = 0;
    this._values = new Map(Object.entries(m.values || {}));
    this.seq = m.seq;
    // The 101 response that opened this socket carried the cookie at this
    // version.
    this.inCookieSeq = m.seq;
    if (resumeFrom === 0 && this.ackedSeq > m.seq) this.ackedSeq = 0; // another session
    this._setStatus('connected');
    this._emit('welcome', { seq: m.seq, values: this.values, resumed: resumeFrom > 0 });
    if (resumeFrom > 0) {
      this._replay = { from: resumeFrom, to: m.seq, emitted: resumeFrom };
      this._sendRaw({ id: this._nextID++, type: 'resume', after: resumeFrom });
    }
    const queue = this._queue;
    this._queue = [];
    for (const req of queue) this._send(req);
    if (this.ackedSeq > this.inCookieSeq) {
      this._flushAttempt = 0;
      this._scheduleFlush();
    }
  }

  _onChange(m) {
    const ops = Array.isArray(m.ops) ? m.ops : [];
    if (m.seq > this.seq) {
      applyOps(this._values, ops);
      this.seq = m.seq;
      this._emit('change', { seq: m.seq, ops, source: m.source, replayed: false });
      return;
    }
    // A resume replays what the welcome already held: tell, do not apply.
    const r = this._replay;
    if (r && m.seq > r.emitted && m.seq <= r.to) {
      r.emitted = m.seq;
      this._emit('change', { seq: m.seq, ops, source: m.source, replayed: true });
    }
  }

  _onAck(m) {
    const req = this._pending.get(m.id);
    if (!req) return;
    this._settle(m.id, req);
    if (typeof m.seq === 'number' && m.seq > this.ackedSeq) this.ackedSeq = m.seq;
    this._emit('ack', { id: m.id, seq: m.seq, data: m.data });
    req.resolve(m);
    if (this.ackedSeq > this.inCookieSeq) {
      this._flushAttempt = 0;
      this._scheduleFlush();
    }
  }

  _onError(m) {
    const req = m.id ? this._pending.get(m.id) : undefined;
    if (!req) {
      this._emit('error', { code: m.code, message: m.message });
      return;
    }
    this._settle(m.id, req);
    req.reject(new SessionhubError(m.code, m.message));
  }

  // --- requests -----------------------------------------------------------

  _request(msg) {
    return new Promise((resolve, reject) => {
      if (this.status === 'closed' || this.status === 'ended') {
        reject(new SessionhubError('unavailable', `the client is ${this.status}`));
        return;
      }
      const req = { msg, resolve, reject, timer: null };
      if (this._ws && this._welcomed && this._ws.readyState === OPEN) this._send(req);
      else this._queue.push(req);
    });
  }

  _send(req) {
    const id = this._nextID++;
    this._pending.set(id, req);
    if (this.requestTimeout > 0) {
      // No reply in time: the socket is presumed dead (a half-open TCP
      // connection); drop it and reconnect.
      const ws = this._ws;
      req.timer = setTimeout(() => {
        if (ws === this._ws && this._pending.has(id)) this._abandon(4201, 'no reply in time');
      }, this.requestTimeout);
    }
    this._sendRaw({ ...req.msg, id });
  }

  _sendRaw(msg) {
    try {
      this._ws.send(JSON.stringify(msg));
    } catch {
      // the close event rejects the pending requests
    }
  }

  _settle(id, req) {
    this._pending.delete(id);
    if (req.timer !== null) clearTimeout(req.timer);
  }

  _rejectPending(message) {
    const pending = this._pending;
    this._pending = new Map();
    for (const req of pending.values()) {
      if (req.timer !== null) clearTimeout(req.timer);
      req.reject(new SessionhubError('unavailable', message));
    }
  }

  // --- connection ---------------------------------------------------------

  _onClose(code, reason) {
    this._ws = null;
    this._afterClose(code, reason);
  }

  // _abandon drops the current socket at once, as if it had closed with code.
  _abandon(code, reason) {
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      detach(ws);
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    }
    this._afterClose(code, reason);
  }

  _afterClose(code, reason) {
    const welcomed = this._welcomed;
    this._welcomed = false;
    this._replay = null;
    this._rejectPending(`the connection closed before the reply (code ${code})`);
    if (this.status === 'closed' || this.status === 'ended') return;
    const policy = closePolicy(code);
    if (!policy.reconnect) {
      this._stop(code === 4000 ? 'ended' : 'closed', code, reason);
      return;
    }
    if (welcomed) this._resumeAfter = policy.resume ? this.seq : 0;
    else if (!policy.resume) this._resumeAfter = 0;
    const delay = backoff(this._attempt++, this.minReconnectDelay, this.maxReconnectDelay);
    this._setStatus(this._everWelcomed ? 'reconnecting' : 'connecting', { code, reason, delay });
    this._timer = setTimeout(() => this.open(), delay);
  }

  _stop(status, code, reason) {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    if (status === 'ended' && this._flushTimer !== null) {
      // The session is gone: a flush would only bring its cookie back.
      clearTimeout(this._flushTimer);
      this._flushTimer = null;
    }
    globalThis.removeEventListener?.('online', this._onOnline);
    const queue = this._queue;
    this._queue = [];
    for (const req of queue) req.reject(new SessionhubError('unavailable', `the client is ${status}`));
    this._rejectPending(`the client is ${status}`);
    this._setStatus(status, { code, reason });
  }

  _setStatus(status, extra = {}) {
    if (status === this.status) return;
    this.status = status;
    this._emit('status', { status, code: extra.code, reason: extra.reason, delay: extra.delay });
  }

  // --- flush --------------------------------------------------------------

  _scheduleFlush(delay = this.flushDelay) {
    if (!this.autoFlush || this._flushPaused || this.status === 'ended') return;
    if (this._flushing) {
      this._flushAgain = true;
      return;
    }
    if (this._flushTimer !== null) return;
    this._flushTimer = setTimeout(() => {
      this._flushTimer = null;
      this.flush().catch(() => {
        // _afterFlush retries
      });
    }, delay);
  }

  // _afterFlush follows a flush up: when the cookie is still behind this
  // client's last ack (the flush failed, or an ack came while it was in
  // flight), it flushes again, with backoff after a failure or a flush that
  // did not catch up, and gives up after a few tries until the next ack or
  // welcome.
  _afterFlush(p, ok, err) {
    if (this._flushing === p) this._flushing = null;
    const again = this._flushAgain;
    this._flushAgain = false;
    if (this.ackedSeq <= this.inCookieSeq) {
      this._flushAttempt = 0;
      return;
    }
    // The protocol's "do not retry" codes: the same flush would fail again.
    if (!ok && (err?.code === 'too_large' || err?.code === 'forbidden')) return;
    if (ok && again) this._scheduleFlush();
    else if (this._flushAttempt < 5) this._scheduleFlush(backoff(this._flushAttempt++, 250, 5000));
  }

  async _doFlush() {
    // seq: the highest sequence this client knows of, so that an instance
    // whose view already holds it answers without a NATS round trip.
    const seq = Math.max(this.seq, this.ackedSeq);
    const url = `${this.flushURL}${this.flushURL.includes('?') ? '&' : '?'}seq=${seq}`;
    const res = await this._fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
    if (!res.ok) {
      // The bridge's JSON error names its code (forbidden, too_large, ...);
      // anything unreadable is a server that could not be reached.
      let code = 'unavailable';
      try {
        code = (await res.json())?.error?.code || code;
      } catch {
        // not JSON: a proxy or a dead server
      }
      throw new SessionhubError(code, `flush: HTTP ${res.status}`);
    }
    const body = await res.json();
    this.inCookieSeq = typeof body.seq === 'number' ? body.seq : 0;
    this._emit('flushed', { seq: this.inCookieSeq, values: body.values || {} });
    return body;
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}

function defaultURL(loc, prefix) {
  if (!loc) throw new Error('sessionhub: no location; pass options.url');
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}${prefix}/ws`;
}

function applyOps(values, ops) {
  for (const op of ops) {
    switch (op.type) {
      case 'set':
        values.set(op.key, op.value);
        break;
      case 'delete':
        values.delete(op.key);
        break;
      case 'clear':
        values.clear();
        break;
    }
  }
}

function detach(ws) {
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}
