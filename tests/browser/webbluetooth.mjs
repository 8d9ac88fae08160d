// Drives Debian's Chromium (playwright-core, never a downloaded browser) through pages
// that use the standard Web Bluetooth API with gattway's polyfill forced in, against
// the simulated devices: the flows of the Web Bluetooth samples Chrome's team
// publishes, the chooser by its button names, errors, a foreign origin.
//
//   node tests/browser/webbluetooth.mjs http://127.0.0.1:PORT
//
// Prints one JSON object: each scenario's result, and every page error seen.
import http from "node:http";
import { chromium } from "playwright-core";

const base = process.argv[2];
const results = {};
const errors = [];

// The pages come from a web app's own server on another local port, as a dev server
// would serve them; gattway admits localhost origins. "evil.example" resolves to the
// same server, so its pages are a foreign origin on the same network.
const site = http.createServer((req, res) => {
  const name = req.url.split("/").pop();
  res.writeHead(200, { "content-type": "text/html" });
  res.end(`<!doctype html><html><head><title>${name}</title>` +
    `<script src="${base}/webbluetooth.js?force=1"></script></head><body><h1>${name}</h1></body></html>`);
});
await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
const port = site.address().port;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP evil.example 127.0.0.1"],
});

/// A page at `origin`/__test/NAME that loads the polyfill from gattway.
async function page(name, { origin = `http://127.0.0.1:${port}` } = {}) {
  const context = await browser.newContext();
  const p = await context.newPage();
  p.on("pageerror", (e) => errors.push(`${name}: ${e.message}`));
  p.on("console", (m) => { if (m.type() === "error") errors.push(`${name}: console: ${m.text()}`); });
  await p.goto(`${origin}/__test/${name}`);
  return p;
}

/// Starts `flow` in the page (a function of no arguments, as a sample's click
/// handler), picks `choose` in the chooser, and returns what the flow returned.
async function run(p, flow, choose) {
  const result = p.evaluate(flow);
  // A failed click must not leave this promise's rejection unheard.
  result.catch(() => {});
  if (choose) {
    const button = p.getByRole("dialog", { name: "Choose a Bluetooth device" }).getByRole("button", { name: choose, exact: true });
    await button.click({ timeout: 15000 });
  }
  return result;
}

try {
  // Battery Level sample.
  {
    const p = await page("battery");
    results.battery = await run(p, async () => {
      const device = await navigator.bluetooth.requestDevice({ filters: [{ services: ["battery_service"] }] });
      const server = await device.gatt.connect();
      const service = await server.getPrimaryService("battery_service");
      const characteristic = await service.getCharacteristic("battery_level");
      const value = await characteristic.readValue();
      return { name: device.name, level: value.getUint8(0), isDataView: value instanceof DataView };
    }, "Gattway Battery");
  }

  // Device Information Characteristics sample.
  {
    const p = await page("device-info");
    results.deviceInfo = await run(p, async () => {
      const device = await navigator.bluetooth.requestDevice({
        filters: [{ namePrefix: "Gattway" }], optionalServices: ["device_information"] });
      const server = await device.gatt.connect();
      const service = await server.getPrimaryService("device_information");
      const decoder = new TextDecoder("utf-8");
      const read = async (name) => decoder.decode(await (await service.getCharacteristic(name)).readValue());
      return { manufacturer: await read("manufacturer_name_string"), model: await read("model_number_string") };
    }, "Gattway HRM");
  }

  // Notifications sample (heart rate), then stopNotifications.
  {
    const p = await page("notifications");
    results.notifications = await run(p, async () => {
      const device = await navigator.bluetooth.requestDevice({ filters: [{ services: ["heart_rate"] }] });
      const server = await device.gatt.connect();
      const service = await server.getPrimaryService("heart_rate");
      const characteristic = await service.getCharacteristic("heart_rate_measurement");
      const bpms = await new Promise((resolve) => {
        const seen = [];
        characteristic.addEventListener("characteristicvaluechanged", (event) => {
          const v = event.target.value;
          const wide = v.getUint8(0) & 1;
          seen.push(wide ? v.getUint16(1, true) : v.getUint8(1));
          if (seen.length === 3) resolve(seen);
        });
        characteristic.startNotifications();
      });
      await characteristic.stopNotifications();
      return { bpms, notify: characteristic.properties.notify, read: characteristic.properties.read };
    }, "Gattway HRM");
  }

  // Read Descriptors sample; Reset Energy Expended sample; errors.
  {
    const p = await page("descriptors");
    results.descriptors = await run(p, async () => {
      const device = await navigator.bluetooth.requestDevice({ filters: [{ services: ["environmental_sensing"] }] });
      const server = await device.gatt.connect();
      const service = await server.getPrimaryService("environmental_sensing");
      const characteristic = await service.getCharacteristic("temperature");
      const descriptors = await characteristic.getDescriptors();
      const user = await characteristic.getDescriptor("gatt.characteristic_user_description");
      const text = new TextDecoder().decode(await user.readValue());
      let notGranted;
      try { await server.getPrimaryService("heart_rate"); } catch (e) { notGranted = e.name; }
      let missing;
      try { await service.getCharacteristic("battery_level"); } catch (e) { missing = e.name; }
      let badName;
      try { BluetoothUUID.getService("no_such_service"); } catch (e) { badName = e.constructor.name; }
      return { count: descriptors.length, uuids: descriptors.map((d) => d.uuid), text, notGranted, missing, badName };
    }, "Gattway Env");
  }
  {
    const p = await page("reset-energy");
    results.resetEnergy = await run(p, async () => {
      const device = await navigator.bluetooth.requestDevice({ filters: [{ services: ["heart_rate"] }] });
      const server = await device.gatt.connect();
      const service = await server.getPrimaryService("heart_rate");
      const cp = await service.getCharacteristic("heart_rate_control_point");
      await cp.writeValue(Uint8Array.of(1));
      return { written: true, value: cp.value.getUint8(0) };
    }, "Gattway HRM");
  }

  // Device Disconnect sample: disconnect() fires gattserverdisconnected.
  {
    const p = await page("disconnect");
    results.disconnect = await run(p, async () => {
      const device = await navigator.bluetooth.requestDevice({ filters: [{ name: "Gattway UART" }],
        optionalServices: ["6e400001-b5a3-f393-e0a9-e50e24dcca9e"] });
      const events = [];
      device.addEventListener("gattserverdisconnected", () => events.push("gattserverdisconnected"));
      await device.gatt.connect();
      const before = device.gatt.connected;
      device.gatt.disconnect();
      return { before, after: device.gatt.connected, events };
    }, "Gattway UART");
  }

  // Link loss: another client takes the link down; the page hears of it.
  {
    const p = await page("link-loss");
    results.linkLoss = await run(p, async () => {
      const device = await navigator.bluetooth.requestDevice({ filters: [{ services: ["battery_service"] }] });
      await device.gatt.connect();
      const lost = new Promise((resolve) => { device.ongattserverdisconnected = () => resolve(device.gatt.connected); });
      // Another client (here, REST on gattway) takes the link down.
      const gattway = new URL(document.querySelector("script").src).origin;
      await fetch(`${gattway}/api/v1/devices/${encodeURIComponent(device.id)}/disconnect`, { method: "POST", mode: "no-cors" });
      const connectedAfter = await lost;
      await device.gatt.connect();
      const level = (await (await (await device.gatt.getPrimaryService("battery_service")).getCharacteristic("battery_level")).readValue()).getUint8(0);
      return { connectedAfter, reconnectedLevel: level };
    }, "Gattway Battery");
  }

  // Discover Services & Characteristics sample.
  {
    const p = await page("discover");
    results.discover = await run(p, async () => {
      const device = await navigator.bluetooth.requestDevice({ acceptAllDevices: true,
        optionalServices: ["heart_rate", "battery_service", "device_information"] });
      const server = await device.gatt.connect();
      const services = await server.getPrimaryServices();
      const tree = {};
      for (const s of services) tree[s.uuid] = (await s.getCharacteristics()).map((c) => c.uuid);
      return tree;
    }, "Gattway HRM");
  }

  // The chooser's Cancel; availability; devices granted before.
  {
    const p = await page("cancel");
    const cancelled = p.evaluate(async () => {
      try { await navigator.bluetooth.requestDevice({ filters: [{ namePrefix: "Gattway" }] }); return "chosen"; }
      catch (e) { return e.name; }
    });
    await p.getByRole("dialog", { name: "Choose a Bluetooth device" }).getByRole("button", { name: "Gattway HRM", exact: true }).waitFor({ timeout: 15000 });
    await p.getByRole("button", { name: "Cancel" }).click();
    results.cancel = await cancelled;
    results.availability = await p.evaluate(() => navigator.bluetooth.getAvailability());
    results.typeErrors = await p.evaluate(async () => {
      const out = [];
      for (const options of [{}, { filters: [] }, { filters: [{}] }]) {
        try { await navigator.bluetooth.requestDevice(options); out.push("none"); } catch (e) { out.push(e.constructor.name); }
      }
      return out;
    });
  }
  {
    // The battery page granted "Gattway Battery" in this origin; a fresh page of the
    // same origin (new context: new storage) has none; the same context keeps it.
    const p = await page("granted");
    results.grantedFresh = await p.evaluate(async () => (await navigator.bluetooth.getDevices()).length);
    await run(p, async () => navigator.bluetooth.requestDevice({ filters: [{ services: ["battery_service"] }] }).then(() => null), "Gattway Battery");
    await p.reload();
    results.grantedAfterReload = await p.evaluate(async () => (await navigator.bluetooth.getDevices()).map((d) => d.name));
  }

  // Advertisements of a device granted earlier: the BTHome thermometer only
  // broadcasts; watchAdvertisements hears its service data until aborted.
  {
    const p = await page("advertisements");
    results.advertisements = await run(p, async () => {
      const device = await navigator.bluetooth.requestDevice({ filters: [{ namePrefix: "Gattway BTHome" }],
        exclusionFilters: [{ name: "Gattway BTHome Secure" }] });
      const abort = new AbortController();
      const seen = await new Promise((resolve) => {
        device.addEventListener("advertisementreceived", (event) => {
          const data = event.serviceData.get("0000fcd2-0000-1000-8000-00805f9b34fb");
          const watching = device.watchingAdvertisements;
          abort.abort();
          resolve({ name: event.name, rssi: typeof event.rssi, firstByte: data.getUint8(0), watching });
        });
        device.watchAdvertisements({ signal: abort.signal });
      });
      return { ...seen, after: device.watchingAdvertisements };
    }, "Gattway BTHome");
  }

  // A page of a foreign origin: gattway refuses its WebSocket.
  {
    const p = await page("foreign", { origin: `http://evil.example:${port}` });
    results.foreign = await p.evaluate(async () => {
      try { await navigator.bluetooth.requestDevice({ acceptAllDevices: true }); return "chosen"; }
      catch (e) { return e.name; }
    });
    // That failure is the point; it is not a page error of the flows above.
    for (let i = errors.length - 1; i >= 0; i--) if (errors[i].startsWith("foreign:")) errors.splice(i, 1);
  }
} catch (e) {
  errors.push(`driver: ${e.stack || e}`);
} finally {
  await browser.close();
  site.close();
}
console.log(JSON.stringify({ results, errors }));
