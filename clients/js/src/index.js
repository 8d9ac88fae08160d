// gattway's hub client for browsers and Node.js (20 with --experimental-websocket,
// 22+ as is): one WebSocket that reconnects by itself, with exponential back-off and
// jitter, and picks up where it stopped.
//
// - HubDevice: telemetry batched (size and time limits), queued while offline
//   (bounded, by priority: the oldest low-priority points are dropped first, and
//   counted), sent with a `seq` the hub de-duplicates on, each point's promise
//   settled when the hub acknowledges it (stored); commands in, results out;
//   heartbeats.
// - HubClient: subscriptions that resume after a reconnect from the last point id
//   seen (no gap, no duplicate), commands, history, presence.
//
// No dependencies. See README.md and docs/hub-protocol.md.

export const State = Object.freeze({
  CONNECTING: "connecting",
  OPEN: "open",
  RECONNECTING: "reconnecting",
  CLOSED: "closed",
});

/** A minimal typed-event emitter: `on(type, listener)` returns an unsubscribe. */
class Emitter {
  #listeners = new Map();

  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.#listeners.get(type)?.delete(listener);
  }

  emit(type, event) {
    for (const listener of this.#listeners.get(type) ?? []) {
      try {
        listener(event);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

const isNode = typeof process !== "undefined" && !!process.versions?.node;

/** The delay before reconnect attempt `n` (0-based): exponential, capped, jittered. */
export function backoffDelay(n, { initialMs = 250, maxMs = 10_000, factor = 2, jitter = 0.5 } = {}) {
  const base = Math.min(maxMs, initialMs * factor ** n);
  return Math.round(base * (1 - jitter + Math.random() * jitter));
}

/**
 * One WebSocket to the hub that reconnects until closed. Subclasses say what to
 * do on open (`onOpen`) and with each message (`onMessage`).
 */
class Link extends Emitter {
  #url;
  #options;
  #ws = null;
  #attempt = 0;
  #timer = null;
  state = State.CONNECTING;

  constructor(url, options = {}) {
    super();
    this.#options = options;
    const u = new URL(url);
    // Browsers cannot set headers on a WebSocket: the token goes in the query.
    if (options.token && (!isNode || options.tokenInQuery)) u.searchParams.set("access_token", options.token);
    this.#url = u.toString();
    queueMicrotask(() => this.#connect());
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }

  #connect() {
    if (this.state === State.CLOSED) return;
    const WS = this.#options.WebSocket ?? globalThis.WebSocket;
    if (!WS) throw new Error("no WebSocket: pass options.WebSocket (Node 20: run with --experimental-websocket)");
    const init =
      isNode && this.#options.token && !this.#options.tokenInQuery
        ? { headers: { Authorization: `Bearer ${this.#options.token}` } }
        : undefined;
    let ws;
    try {
      ws = init ? new WS(this.#url, init) : new WS(this.#url);
    } catch (e) {
      this.emit("error", e);
      this.#retry();
      return;
    }
    this.#ws = ws;
    // Ends this attempt once, whichever says so first: Node 20's WebSocket reports a
    // refused connection as `error` and never `close`, and a silent peer says
    // nothing at all (hence the timer).
    const ended = (event) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      clearTimeout(timeout);
      try {
        ws.close();
      } catch {
        // never opened
      }
      this.onClose(event);
      this.#retry();
    };
    const timeout = setTimeout(() => ended({ code: 4000, reason: "no welcome in time" }), this.#options.connectTimeoutMs ?? 10_000);
    ws.onopen = () => {
      this.#attempt = 0;
      // The control socket has no welcome: it is open when the socket is.
      if (!this.opensOnWelcome) {
        clearTimeout(timeout);
        this.#setState(State.OPEN);
        this.onOpen(null);
      }
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "welcome" && this.opensOnWelcome) {
        clearTimeout(timeout);
        this.#setState(State.OPEN);
        this.onOpen(message);
      }
      this.onMessage(message);
    };
    ws.onerror = () => {
      if (ws.readyState !== 1) ended({ code: 1006, reason: "connection failed" });
    };
    ws.onclose = (event) => ended(event);
  }

  #retry() {
    if (this.state === State.CLOSED) return;
    this.#setState(State.RECONNECTING);
    const delay = backoffDelay(this.#attempt++, this.#options.backoff);
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  /**
   * The WebSocket extensions the server agreed to on the current socket
   * (`"permessage-deflate"` when it compresses); empty while not connected.
   */
  get extensions() {
    return this.#ws?.extensions ?? "";
  }

  /** Sends a message now; false when not connected. */
  sendNow(message) {
    if (this.state !== State.OPEN || !this.#ws) return false;
    this.#ws.send(JSON.stringify(message));
    return true;
  }

  /** Stops reconnecting and closes the socket. */
  close() {
    this.#setState(State.CLOSED);
    clearTimeout(this.#timer);
    this.#ws?.close(1000);
    this.#ws = null;
    this.onClose({ code: 1000 });
  }

  /** The hub greets with `welcome`; the control socket does not. */
  get opensOnWelcome() {
    return true;
  }

  onOpen(_welcome) {}
  onMessage(_message) {}
  onClose(_event) {}
}

function hubUrl(base, query) {
  const u = new URL("/hub", base);
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  return u.toString();
}

/** Requests sent with an `id`, waiting for the reply that echoes it. */
class Requests {
  #pending = new Map();
  #nextId = 1;

  /** A fresh id, for requests whose reply nobody waits on. */
  nextId() {
    return this.#nextId++;
  }

  /** Sends `{type, id, ...fields}` over `link`; the promise settles with its reply. */
  send(link, type, fields) {
    return new Promise((resolve, reject) => {
      const id = this.#nextId++;
      if (!link.sendNow({ type, id, ...fields })) {
        reject(new Error(`not connected (${link.state})`));
        return;
      }
      this.#pending.set(id, { resolve, reject });
    });
  }

  /** Settles the request `m` answers, if any: rejected when `isError`. */
  answer(m, isError) {
    const waiting = m.id !== undefined && this.#pending.get(m.id);
    if (!waiting) return false;
    this.#pending.delete(m.id);
    if (isError) waiting.reject(Object.assign(new Error(m.message), { code: m.code }));
    else waiting.resolve(m);
    return true;
  }

  failAll() {
    for (const { reject } of this.#pending.values()) reject(new Error("connection lost"));
    this.#pending.clear();
  }
}

/**
 * A device on the hub. `send(key, value)` returns a promise settled once the
 * point is stored (or dropped from a full queue).
 */
export class HubDevice extends Link {
  #queue = []; // points waiting: {key, value, ts, priority, order, resolve, reject}
  #batch = []; // points gathering into the next message
  #batchTimer = null;
  #inFlight = []; // messages sent, not acknowledged: {seq, points}
  #seq = 0;
  #order = 0;
  #heartbeat = null;
  #limits;
  dropped = 0;
  lastSeq = 0;

  constructor(base, device, options = {}) {
    super(hubUrl(base, { device }), options);
    this.device = device;
    this.#limits = {
      queue: options.queueLimit ?? 10_000,
      batchPoints: options.batchPoints ?? 100,
      batchMs: options.batchMs ?? 20,
      inFlight: options.inFlight ?? 32,
    };
  }

  /** Queues one point; resolves when stored, rejects if dropped or closed. */
  send(key, value, { priority = 0, ts = Date.now() } = {}) {
    return new Promise((resolve, reject) => {
      this.#queue.push({ key, value, ts, priority, order: this.#order++, resolve, reject });
      this.#bound();
      this.#pump();
    });
  }

  /** Points waiting to be sent. */
  get queued() {
    return this.#queue.length + this.#batch.length;
  }

  /** Reports a command's result (or `delivered`). */
  result(commandId, status, { result, error } = {}) {
    return this.sendNow({ type: "command_result", command_id: commandId, status, result, error });
  }

  /** Over the bound: the oldest point of the lowest priority goes. */
  #bound() {
    while (this.#queue.length > this.#limits.queue) {
      let victim = 0;
      for (let i = 1; i < this.#queue.length; i++) {
        const [a, b] = [this.#queue[i], this.#queue[victim]];
        if (a.priority < b.priority || (a.priority === b.priority && a.order < b.order)) victim = i;
      }
      const [gone] = this.#queue.splice(victim, 1);
      this.dropped++;
      gone.reject(new Error("dropped: the offline queue is full"));
      this.emit("dropped", { key: gone.key, priority: gone.priority, dropped: this.dropped });
    }
  }

  /** Sends what the queue holds, highest priority first, within the window. */
  #pump() {
    if (this.state !== State.OPEN) return;
    while (this.#queue.length && this.#inFlight.length < this.#limits.inFlight) {
      this.#queue.sort((a, b) => b.priority - a.priority || a.order - b.order);
      const room = this.#limits.batchPoints - this.#batch.length;
      this.#batch.push(...this.#queue.splice(0, room));
      if (this.#batch.length >= this.#limits.batchPoints) this.#flush();
      else if (!this.#batchTimer) this.#batchTimer = setTimeout(() => this.#flush(), this.#limits.batchMs);
    }
  }

  /** The gathered points as one message; its seq is given now, in send order. */
  #flush() {
    clearTimeout(this.#batchTimer);
    this.#batchTimer = null;
    if (!this.#batch.length || this.state !== State.OPEN) return;
    const message = { seq: ++this.#seq, points: this.#batch };
    this.#batch = [];
    this.#inFlight.push(message);
    this.#transmit(message);
    this.#pump();
  }

  #transmit({ seq, points }) {
    this.sendNow({
      type: "telemetry",
      seq,
      points: points.map(({ key, value, ts }) => ({ key, value, ts })),
    });
  }

  onOpen(welcome) {
    // What the hub stored is acknowledged; the rest goes again, same seq, in order.
    this.lastSeq = welcome.last_seq ?? 0;
    this.#seq = Math.max(this.#seq, this.lastSeq);
    const stillOpen = [];
    for (const m of this.#inFlight) {
      if (m.seq <= this.lastSeq) m.points.forEach((p) => p.resolve());
      else stillOpen.push(m);
    }
    this.#inFlight = stillOpen;
    for (const m of this.#inFlight) this.#transmit(m);
    clearInterval(this.#heartbeat);
    const every = Math.max(1, (welcome.heartbeat_interval ?? 30) / 2) * 1000;
    this.#heartbeat = setInterval(() => this.sendNow({ type: "heartbeat" }), every);
    this.emit("open", welcome);
    this.#pump();
  }

  onMessage(m) {
    switch (m.type) {
      case "telemetry_ack": {
        const i = this.#inFlight.findIndex((x) => x.seq === m.seq);
        if (i >= 0) {
          const [done] = this.#inFlight.splice(i, 1);
          done.points.forEach((p) => p.resolve());
          this.lastSeq = Math.max(this.lastSeq, m.seq);
          this.emit("ack", { seq: m.seq, points: done.points.length });
        }
        this.#pump();
        break;
      }
      case "command":
        this.emit("command", m);
        break;
      case "cancel":
        this.emit("cancel", m);
        break;
      case "error":
        this.emit("hub-error", m);
        break;
    }
  }

  onClose() {
    clearInterval(this.#heartbeat);
    // A batch not sent yet goes back to the queue, ahead of newer points.
    if (this.#batch.length) {
      this.#queue.unshift(...this.#batch);
      this.#batch = [];
    }
    if (this.state === State.CLOSED) {
      for (const p of [...this.#queue, ...this.#inFlight.flatMap((m) => m.points)]) {
        p.reject(new Error("closed"));
      }
      this.#queue = [];
      this.#inFlight = [];
    }
  }
}

/** A subscription that survives reconnects. */
class Subscription {
  constructor(filter) {
    this.filter = filter;
    this.lastId = null;
  }

  admits(device, key) {
    const ok = (list, v) => !list || list.includes("*") || list.includes(v);
    return ok(this.filter.devices, device) && ok(this.filter.keys, key);
  }
}

/** A client of the hub: subscriptions, commands, history, presence. */
export class HubClient extends Link {
  #subscriptions = new Set();
  #requests = new Requests();

  constructor(base, options = {}) {
    super(hubUrl(base, { role: "client" }), options);
  }

  /**
   * Subscribes (`devices`, `keys` default to all; `since`: ms, replay from then).
   * After a reconnect it subscribes again from the last point id it saw.
   */
  subscribe(filter = {}) {
    const sub = new Subscription(filter);
    this.#subscriptions.add(sub);
    if (this.state === State.OPEN) this.#resubscribe(sub);
    return () => {
      this.#subscriptions.delete(sub);
    };
  }

  #resubscribe(sub) {
    const message = { type: "subscribe", id: this.#requests.nextId(), devices: sub.filter.devices, keys: sub.filter.keys };
    if (sub.lastId !== null) message.after_id = sub.lastId;
    else if (sub.filter.since !== undefined) message.since = sub.filter.since;
    this.sendNow(message);
  }

  /** Sends a request with an `id`; resolves with its answer, rejects with a hub error. */
  request(type, fields = {}) {
    return this.#requests.send(this, type, fields);
  }

  command(device, name, params = {}, options = {}) {
    return this.request("command", { device, name, params, ...options });
  }

  cancel(commandId) {
    return this.request("cancel", { command_id: commandId });
  }

  history(device, query = {}) {
    return this.request("history", { device, ...query });
  }

  presence(devices) {
    return this.request("presence", devices ? { devices } : {});
  }

  onOpen(welcome) {
    for (const sub of this.#subscriptions) this.#resubscribe(sub);
    this.emit("open", welcome);
  }

  onMessage(m) {
    if (m.type === "batch") {
      m.messages.forEach((inner) => this.onMessage(inner));
      return;
    }
    if (this.#requests.answer(m, m.type === "error")) return;
    if (m.type === "telemetry") {
      // Only what a subscription has not seen yet: each point once.
      const fresh = m.points.filter((p) =>
        [...this.#subscriptions].some((s) => s.admits(m.device, p.key) && (s.lastId === null || p.id > s.lastId)),
      );
      for (const s of this.#subscriptions) {
        for (const p of m.points) {
          if (s.admits(m.device, p.key) && (s.lastId === null || p.id > s.lastId)) s.lastId = p.id;
        }
      }
      if (fresh.length) this.emit("telemetry", { device: m.device, points: fresh, replay: !!m.replay });
      return;
    }
    this.emit(m.type, m);
  }

  onClose() {
    this.#requests.failAll();
  }
}

/** Bytes or base64 as the control API's base64. */
function base64(value) {
  if (typeof value === "string") return value;
  let text = "";
  for (const b of value) text += String.fromCharCode(b);
  return btoa(text);
}

/**
 * The control API (`/ws`, docs/control-protocol.md): scan, connect, read, write,
 * subscribe. After a reconnect it connects again the devices it had connected
 * and subscribes again, so notifications carry on.
 */
export class ControlClient extends Link {
  #requests = new Requests();
  #connected = new Map(); // deviceId → timeout
  #subscriptions = new Map(); // "device|service|characteristic" → request fields

  constructor(base, options = {}) {
    super(new URL("/ws", base).toString(), options);
  }

  get opensOnWelcome() {
    return false;
  }

  /** Sends a request with an `id`; resolves with its reply, rejects with an `ERROR`. */
  request(type, fields = {}) {
    return this.#requests.send(this, type, fields);
  }

  scan({ duration = 5000, filters } = {}) {
    return this.request("START_SCAN", { duration, filters });
  }

  async connect(deviceId, { timeout } = {}) {
    const reply = await this.request("CONNECT", { deviceId, timeout });
    this.#connected.set(deviceId, timeout);
    return reply;
  }

  disconnect(deviceId) {
    this.#connected.delete(deviceId);
    for (const key of [...this.#subscriptions.keys()]) if (key.startsWith(`${deviceId}|`)) this.#subscriptions.delete(key);
    return this.request("DISCONNECT", { deviceId });
  }

  services(deviceId) {
    return this.request("GET_SERVICES", { deviceId });
  }

  read(deviceId, serviceUuid, characteristicUuid) {
    return this.request("CHARACTERISTIC_READ", { deviceId, serviceUuid, characteristicUuid });
  }

  /** `value`: bytes (Uint8Array, array of numbers) or base64. */
  write(deviceId, serviceUuid, characteristicUuid, value, { withResponse = true } = {}) {
    return this.request("CHARACTERISTIC_WRITE", {
      deviceId,
      serviceUuid,
      characteristicUuid,
      value: base64(value),
      withResponse,
    });
  }

  /** Notifications arrive as `notification` events, across reconnects. */
  async subscribe(deviceId, serviceUuid, characteristicUuid) {
    const fields = { deviceId, serviceUuid, characteristicUuid };
    const reply = await this.request("SUBSCRIBE", fields);
    this.#subscriptions.set(`${deviceId}|${serviceUuid}|${characteristicUuid}`, fields);
    return reply;
  }

  unsubscribe(deviceId, serviceUuid, characteristicUuid) {
    this.#subscriptions.delete(`${deviceId}|${serviceUuid}|${characteristicUuid}`);
    return this.request("UNSUBSCRIBE", { deviceId, serviceUuid, characteristicUuid });
  }

  async onOpen() {
    this.emit("open", null);
    // What this client had, again: devices first, then their subscriptions.
    try {
      for (const [deviceId, timeout] of this.#connected) {
        await this.request("CONNECT", { deviceId, timeout }).catch((e) => {
          if (e.code !== "ALREADY_CONNECTED") throw e;
        });
      }
      for (const fields of this.#subscriptions.values()) await this.request("SUBSCRIBE", fields);
      this.emit("restored", { devices: this.#connected.size, subscriptions: this.#subscriptions.size });
    } catch (e) {
      this.emit("error", e);
    }
  }

  onMessage(m) {
    if (this.#requests.answer(m, m.type === "ERROR")) return;
    const events = {
      DEVICE_FOUND: "device",
      NOTIFICATION: "notification",
      CONNECTED: "connected",
      DISCONNECTED: "disconnected",
      ERROR: "control-error",
    };
    this.emit(events[m.type] ?? m.type, m);
  }

  onClose() {
    this.#requests.failAll();
  }
}
