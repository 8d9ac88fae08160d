// gattway's operator dashboard, on the index page at `/`: the radios, a live scan,
// a GATT explorer and the packet log. Plain JavaScript over gattway's own APIs (/ws,
// /api/v1, /metrics), embedded in the binary: no build step, no CDN.
(() => {
  "use strict";
  const TOKEN = "gattway.token";
  const token = () => sessionStorage.getItem(TOKEN) || "";
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  };
  const api = async (path, init = {}) => {
    const headers = { ...(init.headers || {}) };
    if (token()) headers.authorization = `Bearer ${token()}`;
    const r = await fetch(path, { ...init, headers });
    if (r.status === 401 || r.status === 403) throw Object.assign(new Error("sign in"), { auth: true });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.headers.get("content-type")?.includes("json") ? r.json() : r.text();
  };
  const hex = (b64) => [...atob(b64 || "")].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
  // The value as text, when it is printable UTF-8 (a name, a version), else "".
  const utf8 = (b64) => {
    try {
      const t = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(atob(b64 || ""), (c) => c.charCodeAt(0)));
      return /^[^\u0000-\u0008\u000e-\u001f\u007f]*$/.test(t) ? t : "";
    } catch { return ""; }
  };
  // A value as hex, its text when printable, and what the SIG decoder made of it.
  const shown = (m) => [hex(m.value), utf8(m.value) && `"${utf8(m.value)}"`, m.decoded && `= ${m.decoded.text}`]
    .filter(Boolean).join(" ");
  const b64FromHex = (h) => btoa(String.fromCharCode(...(h.replace(/[^0-9a-f]/gi, "").match(/../g) || []).map((x) => parseInt(x, 16))));
  const short = (uuid) => (/^0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb$/.exec(uuid) || [])[1] || uuid;

  // ------------------------------------------------------------------ the WebSocket
  let ws = null;
  const pending = new Map();
  const listeners = new Set();
  let nextId = 1;
  function socket() {
    if (ws) return ws;
    const u = new URL("/ws", location.href);
    u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (token()) u.searchParams.set("access_token", token());
    ws = new Promise((resolve, reject) => {
      const s = new WebSocket(u);
      s.onopen = () => resolve(s);
      s.onerror = () => reject(new Error("cannot open /ws"));
      s.onclose = () => { ws = null; for (const p of pending.values()) p.reject(new Error("/ws closed")); pending.clear(); };
      s.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        const p = msg.id !== undefined && pending.get(msg.id);
        if (p) { pending.delete(msg.id); msg.type === "ERROR" ? p.reject(new Error(`${msg.code}: ${msg.message}`)) : p.resolve(msg); }
        else for (const l of listeners) l(msg);
      };
    });
    return ws;
  }
  async function call(type, body = {}) {
    const s = await socket();
    const id = nextId++;
    return new Promise((resolve, reject) => { pending.set(id, { resolve, reject }); s.send(JSON.stringify({ type, id, ...body })); });
  }

  // ------------------------------------------------------------------ radios
  const lastAdverts = new Map();
  async function radios() {
    const box = $("#radio-cards");
    try {
      const [list, metrics] = await Promise.all([api("/api/v1/radios"), api("/metrics")]);
      const now = performance.now();
      box.replaceChildren(...(list.radios || list).map((r) => {
        const m = new RegExp(`gattway_radio_adverts_total\\{radio="${r.name}"\\} (\\d+)`).exec(metrics);
        const count = m ? Number(m[1]) : 0;
        const prev = lastAdverts.get(r.name);
        const rate = prev ? ((count - prev.count) * 1000) / (now - prev.at) : 0;
        lastAdverts.set(r.name, { count, at: now });
        return el("article", { class: `card ${r.state}`, "aria-label": `radio ${r.name}` },
          el("h3", {}, r.name), el("p", {}, `${r.kind} · ${r.state}${r.detail ? `: ${r.detail}` : ""}`),
          el("p", {}, `scanning: ${r.scanning ? "yes" : "no"} · ${rate.toFixed(1)} adverts/s`),
          el("p", {}, `slots ${r.slots_used}/${r.slots_used + r.slots_free}`));
      }));
    } catch (e) {
      if (e.auth) showLogin();
    }
  }

  // ------------------------------------------------------------------ live scan
  const seen = new Map();
  function sparkline(values) {
    const w = 60, h = 16, min = -100, max = -30;
    const pts = values.map((v, i) => `${(i * w) / Math.max(values.length - 1, 1)},${h - ((Math.min(Math.max(v, min), max) - min) * h) / (max - min)}`);
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("aria-hidden", "true");
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", pts.join(" ")); line.setAttribute("fill", "none"); line.setAttribute("stroke", "currentColor");
    svg.append(line);
    return svg;
  }
  function found(d) {
    const row = seen.get(d.deviceId) || { rssi: [] };
    row.rssi = [...row.rssi, d.rssi].slice(-30);
    row.device = d;
    seen.set(d.deviceId, row);
    const tr = el("tr", { "data-id": d.deviceId },
      el("td", {}, d.name || "(no name)"), el("td", {}, el("code", {}, d.deviceId)),
      el("td", {}, `${d.rssi} dBm `, sparkline(row.rssi)),
      el("td", {}, (d.services || []).map(short).join(", ")),
      el("td", {}, (d.readings || []).map((r) => `${r.key} ${r.value}${r.unit ? ` ${r.unit}` : ""}`).join(", ")),
      el("td", {}, el("button", { type: "button", onclick: () => explore(d.deviceId, d.name) }, `Explore ${d.name || d.deviceId}`)));
    const old = $(`#scan-rows tr[data-id="${d.deviceId}"]`);
    old ? old.replaceWith(tr) : $("#scan-rows").append(tr);
  }
  async function scan() {
    $("#scan-status").textContent = "scanning…";
    try {
      const known = await call("GET_DEVICES");
      known.devices.forEach(found);
      const done = await call("START_SCAN", { duration: 10000 });
      done.devices.forEach(found);
      $("#scan-status").textContent = `${seen.size} device(s)`;
    } catch (e) {
      $("#scan-status").textContent = e.message;
    }
  }
  listeners.add((m) => { if (m.type === "DEVICE_FOUND") found(m); });

  // ------------------------------------------------------------------ GATT explorer
  const LOG_MAX = 200;
  function log(text) {
    const list = $("#value-log");
    list.prepend(el("li", {}, `${new Date().toLocaleTimeString()} ${text}`));
    while (list.children.length > LOG_MAX) list.lastChild.remove();
  }
  listeners.add((m) => {
    if (m.type === "NOTIFICATION") log(`${short(m.characteristicUuid)} ← ${shown(m)}`);
  });
  async function explore(id, name) {
    const tree = $("#gatt-tree");
    $("#gatt-device").textContent = `${name || id} (${id})`;
    tree.replaceChildren(el("p", {}, "connecting…"));
    document.getElementById("explorer").scrollIntoView();
    try {
      await call("CONNECT", { deviceId: id }).catch((e) => { if (!String(e.message).startsWith("ALREADY_CONNECTED")) throw e; });
      const { services } = await call("GET_SERVICES", { deviceId: id });
      tree.replaceChildren(...services.map((s) => el("details", { open: "" },
        el("summary", {}, `${s.name || short(s.uuid)} (${short(s.uuid)})`),
        el("ul", {}, ...s.characteristics.map((c) => characteristic(id, s, c))))));
    } catch (e) {
      tree.replaceChildren(el("p", { role: "alert" }, e.message));
    }
  }
  function characteristic(id, s, c) {
    const label = c.name || short(c.uuid);
    const out = el("output", { "aria-label": `${label} value` });
    const target = { deviceId: id, serviceUuid: s.uuid, characteristicUuid: c.uuid };
    const input = el("input", { "aria-label": `${label} hex to write`, placeholder: "hex", size: "10" });
    const buttons = [];
    if (c.properties.includes("read")) buttons.push(el("button", { type: "button", onclick: async () => {
      try { const v = await call("CHARACTERISTIC_READ", target); out.textContent = shown(v); log(`${short(c.uuid)} read ${shown(v)}`); }
      catch (e) { out.textContent = e.message; }
    } }, `Read ${label}`));
    if (c.properties.includes("write") || c.properties.includes("write_without_response")) {
      buttons.push(input, el("button", { type: "button", onclick: async () => {
        try { await call("CHARACTERISTIC_WRITE", { ...target, value: b64FromHex(input.value), withResponse: c.properties.includes("write") }); log(`${short(c.uuid)} → ${input.value}`); }
        catch (e) { out.textContent = e.message; }
      } }, `Write ${label}`));
    }
    if (c.properties.includes("notify") || c.properties.includes("indicate")) buttons.push(el("button", { type: "button", onclick: async () => {
      try { await call("SUBSCRIBE", target); log(`subscribed to ${short(c.uuid)}`); } catch (e) { out.textContent = e.message; }
    } }, `Subscribe ${label}`));
    return el("li", {}, el("span", {}, `${label} (${short(c.uuid)}) [${c.properties.join(", ")}] `), ...buttons, " ", out);
  }

  // ------------------------------------------------------------------ packet log
  async function packets() {
    const filter = $("#packet-filter").value.trim();
    const q = new URLSearchParams({ since: "10m", limit: "100" });
    if (filter) q.set("filter", filter);
    try {
      const r = await api(`/api/v1/packets?${q}`);
      const rows = r.packets || r.entries || r;
      $("#packet-rows").replaceChildren(...rows.map((p) => el("tr", {},
        el("td", {}, p.timestamp || p.time || ""), el("td", {}, p.direction || p.dir || ""),
        el("td", {}, el("code", {}, p.device || p.deviceId || "")), el("td", {}, el("code", {}, p.hex || p.data || "")))));
    } catch (e) {
      if (e.auth) showLogin();
    }
  }


  // ------------------------------------------------------------------ device hub
  // A chart keeps at most this many points: memory stays bounded however long the page runs.
  const CHART_POINTS = 600;
  let hubSocket = null;
  let liveChart = null;
  let live = [[], []];
  let received = 0;
  function chart(target, series, data) {
    const width = Math.max(Math.min(target.clientWidth || 600, 900), 280);
    return new uPlot({ width, height: 220, scales: { x: { time: true } }, series: [{}, ...series] }, data, target);
  }
  async function hubDevices() {
    try {
      const r = await api("/api/v1/hub/devices");
      $("#hub").hidden = false;
      $("#hub-rows").replaceChildren(...r.devices.map((d) => el("tr", {},
        el("td", {}, el("code", {}, d.device)), el("td", {}, d.online ? "online" : "offline"),
        el("td", {}, d.last_seen ? new Date(d.last_seen).toLocaleTimeString() : ""),
        el("td", {}, el("button", { type: "button", onclick: () => { $("#hub-device").value = d.device; } }, `Open ${d.device}`)))));
    } catch (e) {
      if (e.auth) showLogin();
    }
  }
  function hubUrl() {
    const u = new URL("/hub", location.href);
    u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (token()) u.searchParams.set("access_token", token());
    return u;
  }
  async function hubShow() {
    const device = $("#hub-device").value.trim();
    const key = $("#hub-key").value.trim();
    if (!device || !key) return;
    // The live chart: the last points, then every new one, from a /hub subscription.
    live = [[], []];
    received = 0;
    const box = $("#hub-live");
    box.replaceChildren();
    liveChart = chart(box, [{ label: key, stroke: "#0969da" }], live);
    if (hubSocket) hubSocket.close();
    hubSocket = new WebSocket(hubUrl());
    hubSocket.onopen = () => hubSocket.send(JSON.stringify({ type: "subscribe", id: 1, devices: [device], keys: [key], since: Date.now() - 60000 }));
    hubSocket.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type !== "telemetry") return;
      for (const p of msg.points) {
        if (typeof p.value !== "number") continue;
        received += 1;
        live[0].push(p.ts / 1000);
        live[1].push(p.value);
      }
      if (live[0].length > CHART_POINTS) live = live.map((col) => col.slice(-CHART_POINTS));
      liveChart.setData(live);
      $("#hub-live-count").textContent =
        `${received} points received, the last ${live[0].length} shown; latest ${live[1][live[1].length - 1]}`;
    };
    // History: min, average and max per bucket over the chosen range.
    const range = Number($("#hub-range").value);
    const bucket = range <= 3600000 ? "1m" : "15m";
    const h = await api(`/api/v1/devices/${encodeURIComponent(device)}/telemetry?key=${encodeURIComponent(key)}&from=${Date.now() - range}&bucket=${bucket}`);
    const b = h.buckets || [];
    const hist = $("#hub-history");
    hist.replaceChildren();
    chart(hist, [{ label: "min", stroke: "#1a7f37" }, { label: "avg", stroke: "#0969da" }, { label: "max", stroke: "#cf222e" }],
      [b.map((x) => x.ts / 1000), b.map((x) => x.min), b.map((x) => x.avg), b.map((x) => x.max)]);
    $("#hub-history-count").textContent = `${b.length} buckets of ${bucket}`;
    await commands();
  }
  async function commands() {
    const device = $("#hub-device").value.trim();
    if (!device) return;
    const r = await api(`/api/v1/devices/${encodeURIComponent(device)}/commands?limit=20`);
    $("#command-rows").replaceChildren(...r.commands.map((c) => el("tr", { "data-command": c.id },
      el("td", {}, c.name), el("td", {}, c.status), el("td", {}, new Date(c.created_at || c.created || Date.now()).toLocaleTimeString()),
      el("td", {}, el("button", { type: "button", onclick: () => timeline(c.id) }, `Timeline ${c.name}`)))));
  }
  async function timeline(id) {
    const c = await api(`/api/v1/commands/${encodeURIComponent(id)}`);
    $("#command-timeline").replaceChildren(...(c.events || []).map((e) =>
      el("li", {}, `${new Date(e.at).toLocaleTimeString()} ${e.status}`)));
    return c;
  }
  async function sendCommand(e) {
    e.preventDefault();
    const device = $("#hub-device").value.trim();
    let params = {};
    try { params = JSON.parse($("#command-params").value || "{}"); }
    catch { $("#command-status").textContent = "params must be JSON"; return; }
    try {
      const r = await api(`/api/v1/devices/${encodeURIComponent(device)}/commands`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: $("#command-name").value.trim(), params }),
      });
      $("#command-status").textContent = `${r.command_id}: ${r.status}`;
      // Follow it until it is final.
      for (let i = 0; i < 100; i++) {
        const c = await timeline(r.command_id);
        $("#command-status").textContent = `${r.command_id}: ${c.status}`;
        if (["succeeded", "failed", "timed_out", "expired", "cancelled"].includes(c.status)) break;
        await new Promise((ok) => setTimeout(ok, 300));
      }
      await commands();
    } catch (err) {
      $("#command-status").textContent = err.message;
    }
  }

  // ------------------------------------------------------------------ connections and leases
  async function connections() {
    try {
      const r = await api("/api/v1/connections");
      $("#connection-rows").replaceChildren(...r.connections.map((c) => el("tr", { "data-id": c.id },
        el("td", {}, el("code", {}, c.id)), el("td", {}, c.name || ""), el("td", {}, c.state),
        el("td", {}, c.radio || ""), el("td", {}, c.lease_holder || "shared"),
        el("td", {}, c.lease_holder ? el("button", { type: "button", onclick: () => release(c.id) }, `Release ${c.id}`) : ""))));
    } catch (e) {
      if (e.auth) showLogin();
    }
  }
  async function release(id) {
    try {
      const r = await api(`/api/v1/devices/${encodeURIComponent(id)}/release`, { method: "POST" });
      $("#release-status").textContent = `${id} released from ${r.released_from}`;
    } catch (e) {
      $("#release-status").textContent = e.auth ? "releasing needs a credential with ble:admin" : e.message;
    }
    await connections();
  }

  // ------------------------------------------------------------------ sign-in
  function showLogin() {
    $("#login").hidden = false;
  }
  function start() {
    $("#login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN, $("#login-token").value.trim());
      location.reload();
    });
    // With credentials configured and none signed in, ask first: calling the APIs
    // without one would only collect 401s.
    if (document.body.dataset.auth === "required" && !token()) {
      showLogin();
      $("#login-token").focus();
      return;
    }
    $("#scan-button").addEventListener("click", scan);
    $("#packet-refresh").addEventListener("click", packets);
    $("#hub-show").addEventListener("click", hubShow);
    $("#command-form").addEventListener("submit", sendCommand);
    hubDevices();
    setInterval(hubDevices, 5000);
    connections();
    setInterval(connections, 3000);
    radios();
    setInterval(radios, 2000);
  }
  document.readyState === "loading" ? document.addEventListener("DOMContentLoaded", start) : start();
})();
