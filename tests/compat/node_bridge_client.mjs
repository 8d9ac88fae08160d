// Drives gattway's bridge with ble-mcp-test's own NodeBleClient, as its README
// shows: connect to the CS108, send the battery-voltage command, check the answer,
// disconnect. Usage: node node_bridge_client.mjs ws://127.0.0.1:PORT
import { NodeBleClient } from 'ble-mcp-test/node';

const bridgeUrl = process.argv[2];
if (!bridgeUrl) {
  console.error('usage: node node_bridge_client.mjs ws://HOST:PORT');
  process.exit(2);
}
const hex = (bytes) => Array.from(bytes).map((b) => b.toString(16).padStart(2, '0')).join(' ');

const client = new NodeBleClient({
  sessionId: `gattway-compat-${process.pid}`,
  bridgeUrl,
  service: '9800',
  write: '9900',
  notify: '9901',
  deviceName: 'CS108',
});

const timer = setTimeout(() => {
  console.error('timed out');
  process.exit(3);
}, 20000);

await client.connect();
const battery = new Uint8Array([0xa7, 0xb3, 0x02, 0xd9, 0x82, 0x37, 0x00, 0x00, 0xa0, 0x00]);
const answer = await client.sendCommandAsync(battery);
const got = hex(answer);
if (!got.startsWith('a7 b3 04 d9 82 9e') || !got.slice(24).startsWith('a0 00')) {
  console.error(`unexpected answer: ${got}`);
  process.exit(1);
}
await client.disconnect();
clearTimeout(timer);
console.log(`ok battery answer: ${got}`);
process.exit(0);
