// gattway's Web Bluetooth polyfill: navigator.bluetooth in any browser, backed by the
// radio behind gattway's control WebSocket (/ws). Served at /webbluetooth.js;
// /webbluetooth.js?force=1 replaces a native navigator.bluetooth as well.
//
//   <script src="http://127.0.0.1:8080/webbluetooth.js"></script>
//   <script src="…/webbluetooth.js" data-url="ws://host:8080/ws" data-token="JWT or API key"></script>
//   gattway.configure({ url, token })   // before the first call
//
// Values are DataViews, failures DOMExceptions with the standard names, UUIDs
// resolved through BluetoothUUID names as the spec defines. The device chooser is an
// in-page <dialog>: one button per matching device, named by the device, and Cancel.
(() => {
  "use strict";
  const script = document.currentScript;
  const src = script ? new URL(script.src, location.href) : new URL(location.href);
  const force = src.searchParams.get("force") === "1";
  if (navigator.bluetooth && !force) return;

  const wsDefault = () => {
    const u = new URL("/ws", src);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    return u.toString();
  };
  const config = {
    url: (script && script.dataset.url) || wsDefault(),
    token: (script && script.dataset.token) || null,
  };

  // ------------------------------------------------------------------ UUIDs
  const BASE = "-0000-1000-8000-00805f9b34fb";
  const NAMES = {
    service: {
      generic_access: 0x1800, generic_attribute: 0x1801, immediate_alert: 0x1802, link_loss: 0x1803,
      tx_power: 0x1804, current_time: 0x1805, health_thermometer: 0x1809, device_information: 0x180a,
      heart_rate: 0x180d, battery_service: 0x180f, blood_pressure: 0x1810, human_interface_device: 0x1812,
      cycling_speed_and_cadence: 0x1816, environmental_sensing: 0x181a, body_composition: 0x181b,
      user_data: 0x181c, weight_scale: 0x181d, fitness_machine: 0x1826,
    },
    characteristic: {
      "gap.device_name": 0x2a00, "gap.appearance": 0x2a01, alert_level: 0x2a06, tx_power_level: 0x2a07,
      battery_level: 0x2a19, system_id: 0x2a23, model_number_string: 0x2a24, serial_number_string: 0x2a25,
      firmware_revision_string: 0x2a26, hardware_revision_string: 0x2a27, software_revision_string: 0x2a28,
      manufacturer_name_string: 0x2a29, "ieee_11073-20601_regulatory_certification_data_list": 0x2a2a,
      heart_rate_measurement: 0x2a37, body_sensor_location: 0x2a38, heart_rate_control_point: 0x2a39,
      pnp_id: 0x2a50, temperature: 0x2a6e, humidity: 0x2a6f, pressure: 0x2a6d,
    },
    descriptor: {
      "gatt.characteristic_extended_properties": 0x2900, "gatt.characteristic_user_description": 0x2901,
      "gatt.client_characteristic_configuration": 0x2902, "gatt.server_characteristic_configuration": 0x2903,
      "gatt.characteristic_presentation_format": 0x2904, "gatt.characteristic_aggregate_format": 0x2905,
      valid_range: 0x2906, "es_measurement": 0x290c, "es_trigger_setting": 0x290d,
    },
  };
  const canonicalUUID = (alias) => (alias >>> 0).toString(16).padStart(8, "0") + BASE;
  const resolve = (kind) => (name) => {
    if (typeof name === "number") return canonicalUUID(name);
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(name)) return name;
    if (Object.prototype.hasOwnProperty.call(NAMES[kind], name)) return canonicalUUID(NAMES[kind][name]);
    throw new TypeError(
      `Invalid ${kind} name: '${name}'. It must be a valid UUID alias (e.g. 0x1234), ` +
      `UUID (lowercase hex characters e.g. '00001234-0000-1000-8000-00805f9b34fb'), ` +
      `or recognized standard name from https://www.bluetooth.com/specifications/gatt/${kind}s`);
  };
  const BluetoothUUID = {
    getService: resolve("service"),
    getCharacteristic: resolve("characteristic"),
    getDescriptor: resolve("descriptor"),
    canonicalUUID,
  };

  // ------------------------------------------------------------------ errors and bytes
  const dom = (name, message) => new DOMException(message, name);
  const ERROR_NAMES = {
    DEVICE_NOT_FOUND: "NotFoundError", ATTRIBUTE_NOT_FOUND: "NotFoundError", BLE_NOT_AVAILABLE: "NotFoundError",
    NOT_CONNECTED: "NetworkError", OPERATION_FAILED: "NetworkError", BUSY: "NetworkError",
    CONNECTION_LIMIT_REACHED: "NetworkError", NO_FREE_SLOT: "NetworkError",
    NOT_AUTHENTICATED: "SecurityError", INVALID_API_KEY: "SecurityError", INVALID_TOKEN: "SecurityError",
    SESSION_EXPIRED: "SecurityError", FORBIDDEN: "SecurityError",
    INVALID_PARAMS: "NotSupportedError",
  };
  const fromReply = (r) => dom(ERROR_NAMES[r.code] || "NetworkError", `${r.message} (${r.code})`);
  const toBase64 = (data) => {
    let bytes;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else throw new TypeError("value must be an ArrayBuffer or an ArrayBufferView");
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  };
  const toDataView = (b64) => {
    const s = atob(b64 || "");
    const bytes = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
    return new DataView(bytes.buffer);
  };

  // ------------------------------------------------------------------ the WebSocket
  // One link carries GATT for every device; a scan (the chooser, a watch) gets its own.
  class Link {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.pending = new Map();
      this.next = 1;
      this.open = null;
    }
    url() {
      const u = new URL(config.url, location.href);
      if (config.token) u.searchParams.set("access_token", config.token);
      return u.toString();
    }
    connect() {
      if (this.open) return this.open;
      this.open = new Promise((resolve, reject) => {
        const ws = new WebSocket(this.url());
        ws.onopen = () => { this.ws = ws; availability(true); resolve(ws); };
        ws.onerror = () => reject(dom("NetworkError", `cannot reach gattway at ${config.url}`));
        ws.onclose = () => {
          this.open = null;
          this.ws = null;
          for (const { reject: fail } of this.pending.values()) fail(dom("NetworkError", "the connection to gattway closed"));
          this.pending.clear();
          availability(false);
          this.onEvent({ type: "LINK_CLOSED" });
        };
        ws.onmessage = (m) => {
          let msg;
          try { msg = JSON.parse(m.data); } catch { return; }
          const waiting = msg.id !== undefined && this.pending.get(msg.id);
          if (waiting) {
            this.pending.delete(msg.id);
            if (msg.type === "ERROR") waiting.reject(fromReply(msg)); else waiting.resolve(msg);
          } else {
            this.onEvent(msg);
          }
        };
      });
      return this.open;
    }
    async request(type, body = {}) {
      const ws = await this.connect();
      const id = this.next++;
      return new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        ws.send(JSON.stringify({ type, id, ...body }));
      });
    }
    close() { if (this.ws) this.ws.close(); }
  }

  const devices = new Map(); // deviceId → BluetoothDevice
  const gattLink = new Link((msg) => {
    if (msg.type === "NOTIFICATION") {
      const d = devices.get(msg.deviceId);
      if (d) d.gatt._notified(msg);
    } else if (msg.type === "DISCONNECTED") {
      const d = devices.get(msg.deviceId);
      if (d) d.gatt._dropped();
    } else if (msg.type === "LINK_CLOSED") {
      for (const d of devices.values()) d.gatt._dropped();
    }
  });

  // ------------------------------------------------------------------ GATT objects
  const PROPERTY_NAMES = {
    broadcast: "broadcast", read: "read", write_without_response: "writeWithoutResponse", write: "write",
    notify: "notify", indicate: "indicate", authenticated_signed_writes: "authenticatedSignedWrites",
    reliable_write: "reliableWrite", writable_auxiliaries: "writableAuxiliaries",
  };
  class BluetoothCharacteristicProperties {
    constructor(names) {
      for (const p of Object.values(PROPERTY_NAMES)) this[p] = false;
      for (const n of names) if (PROPERTY_NAMES[n]) this[PROPERTY_NAMES[n]] = true;
    }
  }

  class BluetoothRemoteGATTDescriptor {
    constructor(characteristic, uuid) {
      this.characteristic = characteristic;
      this.uuid = uuid;
      this.value = null;
    }
    _target() { return { ...this.characteristic._target(), descriptorUuid: this.uuid }; }
    async readValue() {
      const r = await this.characteristic.service.device.gatt._request("DESCRIPTOR_READ", this._target());
      this.value = toDataView(r.value);
      return this.value;
    }
    async writeValue(value) {
      const b64 = toBase64(value);
      await this.characteristic.service.device.gatt._request("DESCRIPTOR_WRITE", { ...this._target(), value: b64 });
      this.value = toDataView(b64);
    }
  }

  class BluetoothRemoteGATTCharacteristic extends EventTarget {
    constructor(service, c) {
      super();
      this.service = service;
      this.uuid = c.uuid;
      this.properties = new BluetoothCharacteristicProperties(c.properties || []);
      this.value = null;
      this._descriptors = (c.descriptors || []).map((u) => new BluetoothRemoteGATTDescriptor(this, u));
      this.oncharacteristicvaluechanged = null;
    }
    _target() { return { deviceId: this.service.device.id, serviceUuid: this.service.uuid, characteristicUuid: this.uuid }; }
    _gatt() { return this.service.device.gatt; }
    async readValue() {
      if (!this.properties.read) throw dom("NotSupportedError", "GATT operation not permitted: the characteristic is not readable.");
      const r = await this._gatt()._request("CHARACTERISTIC_READ", this._target());
      this.value = toDataView(r.value);
      this._fire();
      return this.value;
    }
    async _write(value, withResponse) {
      const b64 = toBase64(value);
      await this._gatt()._request("CHARACTERISTIC_WRITE", { ...this._target(), value: b64, withResponse });
      this.value = toDataView(b64);
    }
    writeValue(value) { return this._write(value, this.properties.write || !this.properties.writeWithoutResponse); }
    writeValueWithResponse(value) {
      if (!this.properties.write) return Promise.reject(dom("NotSupportedError", "GATT operation not permitted: write with response."));
      return this._write(value, true);
    }
    writeValueWithoutResponse(value) {
      if (!this.properties.writeWithoutResponse) return Promise.reject(dom("NotSupportedError", "GATT operation not permitted: write without response."));
      return this._write(value, false);
    }
    async startNotifications() {
      if (!this.properties.notify && !this.properties.indicate) {
        throw dom("NotSupportedError", "GATT operation not permitted: the characteristic does not notify or indicate.");
      }
      const key = `${this.service.uuid}/${this.uuid}`;
      if (!this._gatt()._subscribed.has(key)) {
        await this._gatt()._request("SUBSCRIBE", this._target());
      }
      this._gatt()._subscribed.set(key, this);
      return this;
    }
    async stopNotifications() {
      const key = `${this.service.uuid}/${this.uuid}`;
      if (this._gatt()._subscribed.delete(key)) await this._gatt()._request("UNSUBSCRIBE", this._target());
      return this;
    }
    _fire() {
      const e = new Event("characteristicvaluechanged", { bubbles: true });
      this.dispatchEvent(e);
      if (typeof this.oncharacteristicvaluechanged === "function") this.oncharacteristicvaluechanged(e);
    }
    async getDescriptor(descriptor) {
      const uuid = BluetoothUUID.getDescriptor(descriptor);
      const d = this._descriptors.find((x) => x.uuid === uuid);
      if (!d) throw dom("NotFoundError", `No Descriptors matching UUID ${uuid} found in Characteristic with UUID ${this.uuid}.`);
      return d;
    }
    async getDescriptors(descriptor) {
      const uuid = descriptor === undefined ? null : BluetoothUUID.getDescriptor(descriptor);
      const found = this._descriptors.filter((x) => uuid === null || x.uuid === uuid);
      if (!found.length) throw dom("NotFoundError", `No Descriptors found in Characteristic with UUID ${this.uuid}.`);
      return found;
    }
  }

  class BluetoothRemoteGATTService {
    constructor(device, s) {
      this.device = device;
      this.uuid = s.uuid;
      this.isPrimary = s.primary !== false;
      this._characteristics = (s.characteristics || []).map((c) => new BluetoothRemoteGATTCharacteristic(this, c));
    }
    async getCharacteristic(characteristic) {
      const uuid = BluetoothUUID.getCharacteristic(characteristic);
      const c = this._characteristics.find((x) => x.uuid === uuid);
      if (!c) throw dom("NotFoundError", `No Characteristics matching UUID ${uuid} found in Service with UUID ${this.uuid}.`);
      return c;
    }
    async getCharacteristics(characteristic) {
      const uuid = characteristic === undefined ? null : BluetoothUUID.getCharacteristic(characteristic);
      const found = this._characteristics.filter((x) => uuid === null || x.uuid === uuid);
      if (!found.length) throw dom("NotFoundError", `No Characteristics matching UUID ${uuid} found in Service with UUID ${this.uuid}.`);
      return found;
    }
  }

  class BluetoothRemoteGATTServer {
    constructor(device) {
      this.device = device;
      this.connected = false;
      this._services = null;
      this._subscribed = new Map();
    }
    async _request(type, body) {
      if (!this.connected) throw dom("NetworkError", "GATT Server is disconnected. Cannot perform GATT operations. (Re)connect first with `device.gatt.connect`.");
      return gattLink.request(type, body);
    }
    async connect() {
      try {
        await gattLink.request("CONNECT", { deviceId: this.device.id });
      } catch (e) {
        // A link the gateway already holds (another tab, or a reconnect) is this one.
        if (!String(e.message).includes("ALREADY_CONNECTED")) throw e;
      }
      this.connected = true;
      this._services = null;
      return this;
    }
    disconnect() {
      if (!this.connected) return;
      gattLink.request("DISCONNECT", { deviceId: this.device.id }).catch(() => {});
      this._dropped();
    }
    _dropped() {
      if (!this.connected) return;
      this.connected = false;
      this._services = null;
      this._subscribed.clear();
      const e = new Event("gattserverdisconnected", { bubbles: true });
      this.device.dispatchEvent(e);
      if (typeof this.device.ongattserverdisconnected === "function") this.device.ongattserverdisconnected(e);
    }
    _notified(msg) {
      const key = `${msg.serviceUuid}/${msg.characteristicUuid}`;
      const c = this._subscribed.get(key);
      if (!c) return;
      c.value = toDataView(msg.value);
      c._fire();
    }
    async _tree() {
      if (!this._services) {
        const r = await this._request("GET_SERVICES", { deviceId: this.device.id });
        this._services = r.services.map((s) => new BluetoothRemoteGATTService(this.device, s));
      }
      return this._services;
    }
    _allowed(uuid) {
      if (!this.device._services.has(uuid)) {
        throw dom("SecurityError", `Origin is not allowed to access the service. Tip: Add the service UUID to 'optionalServices' in requestDevice() options.`);
      }
    }
    async getPrimaryService(service) {
      const uuid = BluetoothUUID.getService(service);
      this._allowed(uuid);
      const s = (await this._tree()).find((x) => x.isPrimary && x.uuid === uuid);
      if (!s) throw dom("NotFoundError", `No Services matching UUID ${uuid} found in Device.`);
      return s;
    }
    async getPrimaryServices(service) {
      const uuid = service === undefined ? null : BluetoothUUID.getService(service);
      if (uuid) this._allowed(uuid);
      const found = (await this._tree()).filter(
        (x) => x.isPrimary && (uuid === null ? this.device._services.has(x.uuid) : x.uuid === uuid));
      if (!found.length) throw dom("NotFoundError", `No Services ${uuid ? `matching UUID ${uuid} ` : ""}found in Device.`);
      return found;
    }
  }

  class BluetoothDevice extends EventTarget {
    constructor(id, name, services) {
      super();
      this.id = id;
      this.name = name || undefined;
      this._services = new Set(services);
      this.gatt = new BluetoothRemoteGATTServer(this);
      this.watchingAdvertisements = false;
      this.ongattserverdisconnected = null;
      this.onadvertisementreceived = null;
      this._watch = null;
    }
    async watchAdvertisements(options = {}) {
      if (options.signal && options.signal.aborted) throw dom("AbortError", "The watch was aborted.");
      if (this._watch) return;
      const link = new Link((msg) => {
        if (msg.type !== "DEVICE_FOUND" || msg.deviceId !== this.id) return;
        const e = new Event("advertisementreceived", { bubbles: true });
        e.device = this;
        e.name = msg.name || undefined;
        e.rssi = msg.rssi;
        e.txPower = msg.txPower;
        e.uuids = msg.services || [];
        e.manufacturerData = new Map(Object.entries(msg.manufacturerData || {}).map(([k, v]) => [Number(k), toDataView(v)]));
        e.serviceData = new Map(Object.entries(msg.serviceData || {}).map(([k, v]) => [k, toDataView(v)]));
        this.dispatchEvent(e);
        if (typeof this.onadvertisementreceived === "function") this.onadvertisementreceived(e);
      });
      this._watch = link;
      this.watchingAdvertisements = true;
      const stop = () => {
        this.watchingAdvertisements = false;
        if (this._watch === link) this._watch = null;
        link.close();
      };
      if (options.signal) options.signal.addEventListener("abort", stop, { once: true });
      // Scans of a minute at a time, again until the watch stops.
      (async () => {
        while (this._watch === link) {
          try { await link.request("START_SCAN", { duration: 60000 }); } catch { break; }
        }
      })();
      await link.connect();
    }
    async forget() {
      this.gatt.disconnect();
      if (this._watch) this._watch.close();
      const granted = grants().filter((g) => g.id !== this.id);
      localStorage.setItem(GRANTS, JSON.stringify(granted));
      devices.delete(this.id);
    }
  }

  const GRANTS = "gattway.webbluetooth.devices";
  const grants = () => { try { return JSON.parse(localStorage.getItem(GRANTS)) || []; } catch { return []; } };
  const deviceFor = (id, name, services) => {
    let d = devices.get(id);
    if (!d) { d = new BluetoothDevice(id, name, services); devices.set(id, d); }
    for (const s of services) d._services.add(s);
    return d;
  };

  // ------------------------------------------------------------------ requestDevice and the chooser
  const matches = (filter, dev) => {
    if (filter.name !== undefined && dev.name !== filter.name) return false;
    if (filter.namePrefix !== undefined && !(dev.name || "").startsWith(filter.namePrefix)) return false;
    if (filter.services && !filter.services.every((s) => dev.services.includes(BluetoothUUID.getService(s)))) return false;
    if (filter.manufacturerData && !filter.manufacturerData.every((m) => Object.prototype.hasOwnProperty.call(dev.manufacturerData || {}, String(m.companyIdentifier)))) return false;
    if (filter.serviceData && !filter.serviceData.every((sd) => Object.prototype.hasOwnProperty.call(dev.serviceData || {}, BluetoothUUID.getService(sd.service)))) return false;
    return true;
  };

  function checkOptions(options) {
    const filters = options.filters;
    if (!!filters === !!options.acceptAllDevices) {
      throw new TypeError("Either 'filters' should be present or 'acceptAllDevices' should be true, but not both.");
    }
    if (filters && (!Array.isArray(filters) || filters.length === 0)) {
      throw new TypeError("'filters' member must be non-empty to find any devices.");
    }
    for (const f of filters || []) {
      if (!f.services && f.name === undefined && f.namePrefix === undefined && !f.manufacturerData && !f.serviceData) {
        throw new TypeError("A filter must restrict the devices in some way.");
      }
      if (f.namePrefix === "") throw new TypeError("'namePrefix', if present, must be non-empty.");
      (f.services || []).forEach((s) => BluetoothUUID.getService(s));
    }
    (options.optionalServices || []).forEach((s) => BluetoothUUID.getService(s));
  }

  function chooser(options) {
    return new Promise((resolve, reject) => {
      const dialog = document.createElement("dialog");
      dialog.setAttribute("aria-label", "Choose a Bluetooth device");
      dialog.style.cssText = "min-width:18rem;max-width:90vw;font:14px system-ui,sans-serif;border:1px solid #888;border-radius:8px;padding:1rem";
      const title = document.createElement("h2");
      title.textContent = `${location.host} wants to pair`;
      title.style.cssText = "font-size:1rem;margin:0 0 .5rem";
      const status = document.createElement("p");
      status.setAttribute("role", "status");
      status.textContent = "Scanning for devices…";
      const list = document.createElement("ul");
      list.style.cssText = "list-style:none;padding:0;margin:0 0 .75rem;max-height:50vh;overflow:auto";
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.textContent = "Cancel";
      dialog.append(title, status, list, cancel);
      document.body.append(dialog);
      const rows = new Map();
      let done = false;
      const finish = (fn, value) => {
        if (done) return;
        done = true;
        link.close();
        dialog.close();
        dialog.remove();
        fn(value);
      };
      const link = new Link((msg) => {
        if (msg.type === "LINK_CLOSED" && !done) {
          finish(reject, dom("NetworkError", "the connection to gattway closed during the scan"));
          return;
        }
        if (msg.type === "DEVICE_FOUND") found(msg);
      });
      const found = (msg) => {
        const ok = options.acceptAllDevices || options.filters.some((f) => matches(f, msg));
        const excluded = (options.exclusionFilters || []).some((f) => matches(f, msg));
        if (!ok || excluded) return;
        let row = rows.get(msg.deviceId);
        if (!row) {
          row = { li: document.createElement("li"), button: document.createElement("button"), rssi: document.createElement("span") };
          row.button.type = "button";
          row.button.textContent = msg.name || `Unknown or Unsupported Device (${msg.deviceId})`;
          row.button.style.cssText = "margin:.15rem .5rem .15rem 0";
          row.li.append(row.button, row.rssi);
          list.append(row.li);
          rows.set(msg.deviceId, row);
          status.textContent = `${rows.size} device(s) found`;
        }
        row.rssi.textContent = `${msg.rssi} dBm`;
        row.button.onclick = () => {
          const wanted = new Set();
          for (const f of options.filters || []) for (const s of f.services || []) wanted.add(BluetoothUUID.getService(s));
          for (const s of options.optionalServices || []) wanted.add(BluetoothUUID.getService(s));
          const device = deviceFor(msg.deviceId, msg.name, wanted);
          const granted = grants().filter((g) => g.id !== device.id);
          granted.push({ id: device.id, name: msg.name || null, services: [...device._services] });
          localStorage.setItem(GRANTS, JSON.stringify(granted));
          finish(resolve, device);
        };
      };
      cancel.onclick = () => finish(reject, dom("NotFoundError", "User cancelled the requestDevice() chooser."));
      dialog.addEventListener("cancel", (e) => { e.preventDefault(); cancel.click(); });
      dialog.showModal();
      (async () => {
        // Devices gattway already knows come first: one it holds a link to (for
        // another page, or the hub) no longer advertises, yet this page may use it.
        try { (await link.request("GET_DEVICES")).devices.forEach(found); }
        catch (e) { if (!done) finish(reject, e); return; }
        while (!done) {
          try { await link.request("START_SCAN", { duration: 60000 }); }
          catch (e) { if (!done) finish(reject, e); return; }
        }
      })();
    });
  }

  // ------------------------------------------------------------------ navigator.bluetooth
  const bluetooth = new EventTarget();
  let available = null;
  function availability(value) {
    if (available === value) return;
    const was = available;
    available = value;
    if (was === null && value) return;
    const e = new Event("availabilitychanged");
    e.value = value;
    bluetooth.dispatchEvent(e);
    if (typeof bluetooth.onavailabilitychanged === "function") bluetooth.onavailabilitychanged(e);
  }
  bluetooth.onavailabilitychanged = null;
  bluetooth.requestDevice = async (options = {}) => {
    checkOptions(options);
    return chooser(options);
  };
  // Whether gattway answers for a radio: the page may be of another origin than
  // gattway (no CORS), so it asks over the WebSocket.
  bluetooth.getAvailability = async () => {
    try {
      await gattLink.request("PING");
      return true;
    } catch {
      return false;
    }
  };
  bluetooth.getDevices = async () => grants().map((g) => deviceFor(g.id, g.name, g.services));
  bluetooth.referringDevice = undefined;

  Object.defineProperty(navigator, "bluetooth", { value: bluetooth, configurable: true, enumerable: true });
  window.BluetoothUUID = BluetoothUUID;
  window.BluetoothDevice = BluetoothDevice;
  window.BluetoothRemoteGATTServer = BluetoothRemoteGATTServer;
  window.BluetoothRemoteGATTService = BluetoothRemoteGATTService;
  window.BluetoothRemoteGATTCharacteristic = BluetoothRemoteGATTCharacteristic;
  window.BluetoothRemoteGATTDescriptor = BluetoothRemoteGATTDescriptor;
  window.BluetoothCharacteristicProperties = BluetoothCharacteristicProperties;
  window.gattway = {
    configure(options = {}) {
      if (options.url) config.url = options.url;
      if (options.token !== undefined) config.token = options.token;
    },
  };
})();
