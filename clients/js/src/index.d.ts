// Types for gattway's hub client (src/index.js).

export type State = "connecting" | "open" | "reconnecting" | "closed";
export declare const State: {
  readonly CONNECTING: "connecting";
  readonly OPEN: "open";
  readonly RECONNECTING: "reconnecting";
  readonly CLOSED: "closed";
};

export interface Backoff {
  /** First delay, ms (250). */
  initialMs?: number;
  /** Longest delay, ms (10,000). */
  maxMs?: number;
  /** Growth per attempt (2). */
  factor?: number;
  /** Share of each delay drawn at random (0.5). */
  jitter?: number;
}

export interface LinkOptions {
  /** An API key or JWT: `Authorization` in Node, `access_token` in browsers. */
  token?: string;
  /** Put the token in the query in Node too. */
  tokenInQuery?: boolean;
  /** A WebSocket class, where there is no global one (Node 20 without the flag). */
  WebSocket?: typeof globalThis.WebSocket;
  backoff?: Backoff;
  /** An attempt without a welcome within this many ms is given up and retried (10,000). */
  connectTimeoutMs?: number;
}

export declare function backoffDelay(attempt: number, backoff?: Backoff): number;

interface Emitter<Events> {
  on<K extends keyof Events>(type: K, listener: (event: Events[K]) => void): () => void;
}

export interface Welcome {
  type: "welcome";
  role: "device" | "client";
  device?: string;
  last_seq?: number;
  heartbeat_interval?: number;
}

export interface HubError {
  type: "error";
  id?: number;
  code: string;
  message: string;
  seq?: number;
}

export interface Command {
  type: "command";
  command_id: string;
  name: string;
  params: unknown;
  timeout: number;
}

export interface DeviceEvents {
  state: State;
  open: Welcome;
  ack: { seq: number; points: number };
  command: Command;
  cancel: { type: "cancel"; command_id: string };
  dropped: { key: string; priority: number; dropped: number };
  "hub-error": HubError;
  error: unknown;
}

export interface DeviceOptions extends LinkOptions {
  /** Points kept while offline (10,000); past it the oldest lowest-priority go. */
  queueLimit?: number;
  /** Points per telemetry message (100). */
  batchPoints?: number;
  /** Longest wait for a batch to fill, ms (20). */
  batchMs?: number;
  /** Messages sent and not yet acknowledged (32). */
  inFlight?: number;
}

export declare class HubDevice implements Emitter<DeviceEvents> {
  /** WebSocket extensions the server agreed to (`"permessage-deflate"` when it compresses); empty while not connected. */
  readonly extensions: string;
  constructor(base: string, device: string, options?: DeviceOptions);
  readonly device: string;
  readonly state: State;
  /** Points dropped from a full offline queue. */
  readonly dropped: number;
  /** The highest seq the hub has stored. */
  readonly lastSeq: number;
  /** Points waiting to be sent. */
  readonly queued: number;
  /** Resolves once stored; rejects if dropped from a full queue or closed. */
  send(key: string, value: unknown, options?: { priority?: number; ts?: number }): Promise<void>;
  result(
    commandId: string,
    status: "delivered" | "succeeded" | "failed",
    body?: { result?: unknown; error?: string },
  ): boolean;
  close(): void;
  on<K extends keyof DeviceEvents>(type: K, listener: (event: DeviceEvents[K]) => void): () => void;
}

export interface Point {
  id: number;
  key: string;
  value: unknown;
  ts: number;
}

export interface ClientEvents {
  state: State;
  open: Welcome;
  telemetry: { device: string; points: Point[]; replay: boolean };
  presence: { type: "presence"; device: string; online: boolean; last_seen: number };
  command_status: {
    type: "command_status";
    command_id: string;
    device: string;
    name: string;
    status: string;
    result?: unknown;
    error?: string;
  };
  lagged: { type: "lagged"; missed: number };
  subscribed: { type: "subscribed"; id: number; subscription: number };
  replayed: { type: "replayed"; id: number; points: number };
  error: unknown;
}

export interface Filter {
  /** Device ids, or ["*"] (the default). */
  devices?: string[];
  keys?: string[];
  /** Replay stored points from this time (ms) on the first subscribe. */
  since?: number;
}

export declare class HubClient implements Emitter<ClientEvents> {
  /** WebSocket extensions the server agreed to (`"permessage-deflate"` when it compresses); empty while not connected. */
  readonly extensions: string;
  constructor(base: string, options?: LinkOptions);
  readonly state: State;
  /** Returns a function that ends the subscription (from the next reconnect on). */
  subscribe(filter?: Filter): () => void;
  request(type: string, fields?: Record<string, unknown>): Promise<Record<string, unknown>>;
  command(
    device: string,
    name: string,
    params?: unknown,
    options?: { timeout?: number; priority?: number; ttl?: number },
  ): Promise<{ type: "command_accepted"; command_id: string; status: string }>;
  cancel(commandId: string): Promise<Record<string, unknown>>;
  history(device: string, query?: Record<string, unknown>): Promise<Record<string, unknown>>;
  presence(devices?: string[]): Promise<{ devices: { device: string; online: boolean; last_seen: number }[] }>;
  close(): void;
  on<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): () => void;
}

export interface ControlEvents {
  state: State;
  open: null;
  /** After a reconnect: what was connected and subscribed again. */
  restored: { devices: number; subscriptions: number };
  device: { type: "DEVICE_FOUND"; deviceId: string; name?: string; rssi?: number; services: string[] };
  notification: {
    type: "NOTIFICATION";
    deviceId: string;
    serviceUuid: string;
    characteristicUuid: string;
    /** base64 */
    value: string;
    decoded: { value: unknown; unit?: string; text?: string } | null;
    timestamp: number;
  };
  connected: { type: "CONNECTED"; deviceId: string; mtu?: number };
  disconnected: { type: "DISCONNECTED"; deviceId: string };
  "control-error": { type: "ERROR"; code: string; message: string };
  error: unknown;
}

/** Errors from the control API carry its `code` (docs/control-protocol.md). */
export interface ControlError extends Error {
  code: string;
}

/**
 * The control API (`/ws`): scan, connect, read, write, subscribe. After a
 * reconnect it connects its devices and subscribes again by itself.
 */
export declare class ControlClient implements Emitter<ControlEvents> {
  /** WebSocket extensions the server agreed to (`"permessage-deflate"` when it compresses); empty while not connected. */
  readonly extensions: string;
  constructor(base: string, options?: LinkOptions);
  readonly state: State;
  request(type: string, fields?: Record<string, unknown>): Promise<Record<string, any>>;
  scan(options?: { duration?: number; filters?: { name?: string; services?: string[]; minRssi?: number } }): Promise<Record<string, any>>;
  connect(deviceId: string, options?: { timeout?: number }): Promise<Record<string, any>>;
  disconnect(deviceId: string): Promise<Record<string, any>>;
  services(deviceId: string): Promise<Record<string, any>>;
  read(deviceId: string, serviceUuid: string, characteristicUuid: string): Promise<Record<string, any>>;
  write(
    deviceId: string,
    serviceUuid: string,
    characteristicUuid: string,
    value: Uint8Array | number[] | string,
    options?: { withResponse?: boolean },
  ): Promise<Record<string, any>>;
  subscribe(deviceId: string, serviceUuid: string, characteristicUuid: string): Promise<Record<string, any>>;
  unsubscribe(deviceId: string, serviceUuid: string, characteristicUuid: string): Promise<Record<string, any>>;
  close(): void;
  on<K extends keyof ControlEvents>(type: K, listener: (event: ControlEvents[K]) => void): () => void;
}
