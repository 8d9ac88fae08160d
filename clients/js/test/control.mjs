// Driven by tests/js_client.rs: the control API against the simulated devices,
// across a server restart (the test kills the server and starts it again, then
// writes `restarted` on stdin).
//
//   node --experimental-websocket control.mjs http://127.0.0.1:PORT
//
// Prints `subscribed` once heart-rate notifications flow, and at the end
// `done {json}`.
import { createInterface } from "node:readline";
import { ControlClient } from "../src/index.js";

const [base] = process.argv.slice(2);
const control = new ControlClient(base, { backoff: { initialMs: 50, maxMs: 500 } });
const states = [];
control.on("state", (s) => states.push(s));
await new Promise((resolve) => control.on("open", resolve));

const HRM = "C0:FF:EE:00:00:01";
const found = [];
control.on("device", (d) => found.push(d.deviceId));
await control.scan({ duration: 1000, filters: { services: ["180d"] } });
await control.connect(HRM);
const battery = await control.read(HRM, "180f", "2a19");
let notifications = [];
control.on("notification", (n) => notifications.push(n.decoded?.value ?? n.value));
await control.subscribe(HRM, "180d", "2a37");
await waitFor(() => notifications.length >= 2);
const before = notifications.length;
console.log("subscribed");

const restored = new Promise((resolve) => control.on("restored", resolve));
for await (const line of createInterface({ input: process.stdin })) {
  if (line === "restarted") break;
}
const again = await restored;
notifications = [];
await waitFor(() => notifications.length >= 2);
let refused = null;
try {
  await control.read(HRM, "180f", "ffff");
} catch (e) {
  refused = e.code;
}
console.log(`done ${JSON.stringify({ found, battery: battery.decoded, before, after: notifications.length, again, states, refused })}`);
control.close();
process.exit(0);

async function waitFor(cond) {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}
