// The hub client: gateway calls and shared data, with the plugin's credential.
import type { components } from "./generated/openapi.js";
import { PlexhubError, PluginError, SettingError, hubError, isObject } from "./errors.js";
import { readSse, type SseEvent } from "./sse.js";
import { sleep } from "./util.js";
import { Discovery, discover, type DiscoveredService } from "./discovery.js";
import { publish, publishAll, type Event, type OutgoingEvent, type PublishOptions, type Published } from "./events.js";
import { Heartbeats, registerReplica, type KeepRegisteredOptions, type ServiceSpec } from "./registration.js";

/** Headers as `fetch` takes them. */
export type HeadersInit = ConstructorParameters<typeof Headers>[0];

/** Attempts of `dataUpdate` before it gives up on a key that keeps changing. */
const UPDATE_ATTEMPTS = 16;
/** Pause before following a watch stream again after it broke. */
const RECONNECT_AFTER_MS = 1_000;

/** Who a credential belongs to (`GET /api/v1/whoami`). */
export type Identity = components["schemas"]["WhoAmI"];

/** A shared-data entry. */
export interface DataEntry<T = unknown> {
  namespace: string;
  key: string;
  /** The value (absent in key-only listings). */
  value: T;
  /** Revision, increases on every write (also the `ETag`). */
  revision: number;
  /** The owning plugin. */
  ownerId: string;
  /** Expiry (RFC 3339), or null when it never expires. */
  expiresAt: string | null;
  updatedAt: string;
}

/** One operation of `dataTransaction`. */
export type DataOp =
  | { op: "set"; namespace: string; key: string; value: unknown; ttl?: number; ifRevision?: number }
  | { op: "delete"; namespace: string; key: string; ifRevision?: number }
  | { op: "check"; namespace: string; key: string; ifRevision?: number };

/** A change seen by `dataWatch`: `set`, `deleted`, `expired`, or `reset` (history lost: read again). */
export interface DataChange {
  type: "set" | "deleted" | "expired" | "reset";
  namespace?: string;
  key?: string;
  revision?: number;
  /** The change log position (what `lastEventId` resumes after). */
  id: string | undefined;
}

/** A body the SDK sends: JSON for plain values, as-is for text, bytes and streams. */
export type CallBody = string | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array> | Blob | URLSearchParams | object;

/** A fetch-like request through the gateway. */
export interface CallInit {
  /** GET (default), POST, PUT, PATCH or DELETE. */
  method?: string;
  headers?: HeadersInit;
  /** JSON for objects and arrays; strings, bytes, `Blob`s and streams are sent unchanged. */
  body?: CallBody | null;
  signal?: AbortSignal;
}

/** The seed's `POST /api/plugin-gateway/call` request. */
export interface SeedCallRequest {
  targetPluginId: string;
  targetServiceName: string;
  method: string;
  path: string;
  query?: Record<string, string | number | boolean>;
  headers?: Record<string, string>;
  body?: unknown;
}

/** The seed's `/call` answer: the plugin's status, headers and body, and the call's metadata. */
export interface SeedCallAnswer<T = unknown> {
  status: number;
  headers: Record<string, string>;
  data: T;
  metadata: { targetPlugin: string; targetService: string; duration: number; timestamp: string };
}

/** Settings of a `Client`. */
export interface ClientOptions {
  /** The hub's base URL, e.g. `http://127.0.0.1:4000`. */
  url: string;
  /** The plugin's credential (`phk_<id>.<secret>`), or the admin token. */
  token: string;
  /** The credential's tenant slug and plugin, when known (`fromCredential` asks the hub). */
  tenant?: string | undefined;
  pluginId?: string | undefined;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/** A key kept changing under `dataUpdate`. */
export class ContendedError extends Error {
  override readonly name = "ContendedError";
}

/** A plugin's connection to the hub. */
export class Client {
  /** The hub's base URL, without a trailing `/`. */
  readonly url: string;
  /** The credential's tenant (slug), when known. */
  readonly tenant: string | undefined;
  /** The credential's plugin, when known. */
  readonly pluginId: string | undefined;
  readonly #token: string;
  readonly #fetch: typeof fetch;

  constructor(options: ClientOptions) {
    if (!options.url) throw new SettingError("the hub URL is not set");
    if (!options.token) throw new SettingError("the token is not set");
    this.url = options.url.replace(/\/+$/, "");
    this.#token = options.token;
    this.tenant = options.tenant;
    this.pluginId = options.pluginId;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** From `PLEXHUB_URL` and `PLEXHUB_TOKEN` (tenant and plugin unknown until `whoami`). */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): Client {
    const url = env["PLEXHUB_URL"];
    const token = env["PLEXHUB_TOKEN"];
    if (!url) throw new SettingError("PLEXHUB_URL is not set");
    if (!token) throw new SettingError("PLEXHUB_TOKEN is not set");
    return new Client({ url, token });
  }

  /**
   * A client for a plugin credential, with its tenant and plugin taken from `GET /api/v1/whoami`
   * (so a wrong or revoked credential fails here, with the hub's `UNAUTHENTICATED`).
   */
  static async fromCredential(baseUrl: string, token: string, options: { fetch?: typeof fetch } = {}): Promise<Client> {
    const probe = new Client({ url: baseUrl, token, ...options });
    const identity = await probe.whoami();
    if (identity.kind !== "plugin" || !identity.tenant || !identity.pluginId) {
      throw new SettingError("a plugin credential is needed, not an admin token");
    }
    return new Client({ url: baseUrl, token, tenant: identity.tenant, pluginId: identity.pluginId, ...options });
  }

  /** Who this client's credential belongs to. */
  whoami(): Promise<Identity> {
    return this.send<Identity>("GET", "/api/v1/whoami");
  }

  /** A raw request to the hub with the credential (`path` from the root). */
  fetch(path: string, init: CallInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${this.#token}`);
    const request: RequestInit & { duplex?: "half" } = { method: init.method ?? "GET", headers };
    if (init.signal) request.signal = init.signal;
    if (init.body !== undefined && init.body !== null) {
      const body = init.body;
      if (typeof body === "string" || body instanceof Uint8Array || body instanceof ArrayBuffer || body instanceof Blob || body instanceof URLSearchParams) {
        request.body = body as NonNullable<RequestInit["body"]>;
      } else if (body instanceof ReadableStream) {
        request.body = body as NonNullable<RequestInit["body"]>;
        request.duplex = "half";
      } else {
        request.body = JSON.stringify(body);
        if (!headers.has("content-type")) headers.set("content-type", "application/json");
      }
    }
    return this.#fetch(`${this.url}${path}`, request);
  }

  /**
   * A hub API call: the JSON answer (`undefined` when empty), or the hub's error as a
   * `PlexhubError`. For routes this SDK does not wrap.
   */
  async send<T = unknown>(method: string, path: string, body?: unknown, headers?: HeadersInit): Promise<T> {
    const response = await this.fetch(path, { method, body: body as CallBody | undefined, headers });
    if (!response.ok) throw await hubError(response);
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  // ---------------------------------------------------------------------------------------
  // Gateway
  // ---------------------------------------------------------------------------------------

  /**
   * Calls another plugin's service through the gateway's proxy route
   * (`/api/v1/proxy/{service}{path}`), fetch-like: the plugin's own answer comes back whatever
   * its status, with its body unread (a stream). A refusal by the hub itself (access, quota,
   * unreachable plugin…) throws `PlexhubError`: the hub marks its own errors with
   * `X-Plexhub-Error`, a header the gateway never lets a plugin send.
   */
  async call(service: string, path: string, init: CallInit = {}): Promise<Response> {
    const suffix = path === "" || path.startsWith("/") || path.startsWith("?") ? path : `/${path}`;
    const response = await this.fetch(`/api/v1/proxy/${encodeURIComponent(service)}${suffix}`, init);
    if (!response.ok && response.headers.has("x-plexhub-error")) throw await hubError(response);
    return response;
  }

  /** `GET` through the gateway, decoding a 2xx JSON answer (`PluginError` otherwise). */
  async getJson<T = unknown>(service: string, path: string, init: Omit<CallInit, "method" | "body"> = {}): Promise<T> {
    return pluginJson<T>(await this.call(service, path, { ...init, method: "GET" }));
  }

  /** `POST` a JSON body through the gateway, decoding a 2xx JSON answer. */
  async postJson<T = unknown>(service: string, path: string, body: unknown, init: Omit<CallInit, "method" | "body"> = {}): Promise<T> {
    return pluginJson<T>(await this.call(service, path, { ...init, method: "POST", body: body as CallBody }));
  }

  /**
   * The seed's call, `POST /api/plugin-gateway/call`: the plugin's answer as
   * `{status, headers, data, metadata}` whatever its status; a refusal by the hub throws.
   */
  async callPlugin<T = unknown>(request: SeedCallRequest, init: Omit<CallInit, "method" | "body"> = {}): Promise<SeedCallAnswer<T>> {
    const response = await this.fetch("/api/plugin-gateway/call", { ...init, method: "POST", body: request });
    if (!response.ok && response.headers.has("x-plexhub-error")) throw await hubError(response);
    return (await response.json()) as SeedCallAnswer<T>;
  }

  // ---------------------------------------------------------------------------------------
  // Registry and discovery
  // ---------------------------------------------------------------------------------------

  /**
   * Registers (or refreshes) this replica of `service` at `baseUrl` (registering the service
   * first when the hub does not know it). Returns the hub's heartbeat interval in ms.
   */
  registerReplica(service: ServiceSpec, instance: string, baseUrl: string): Promise<number> {
    return registerReplica(this, service, instance, baseUrl);
  }

  /**
   * Registers this replica of every service, then beats in the background (the hub's interval,
   * or `everyMs`), registering again whatever the hub forgot and backing off while it cannot be
   * reached. `stop()` on the result ends it (and deregisters the replica).
   */
  keepRegistered(services: ServiceSpec[], instance: string, baseUrl: string, options: KeepRegisteredOptions = {}): Promise<Heartbeats> {
    return Heartbeats.start(this, services, instance, baseUrl, options);
  }

  /** The discoverable service by name, optionally in an npm version range (`{version: "^1.2.0"}`); `undefined` when none. */
  discover(service: string, options: { version?: string } = {}): Promise<DiscoveredService | undefined> {
    return discover(this, service, options);
  }

  /** Cached discovery, kept fresh by the registry's watch stream (`stop()` it when done). */
  discovery(): Discovery {
    return new Discovery(this);
  }

  // ---------------------------------------------------------------------------------------
  // Events
  // ---------------------------------------------------------------------------------------

  /** Publishes an event of this plugin (`plugin.<name>.…`), retried until the hub stored it. */
  publish(type: string, data: unknown, options: Omit<OutgoingEvent, "type" | "data"> & PublishOptions = {}): Promise<Published> {
    return publish(this, type, data, options);
  }

  /** Publishes up to 100 events at once, in order, retried until the hub stored them. */
  publishAll(events: OutgoingEvent[], options: PublishOptions = {}): Promise<Published[]> {
    return publishAll(this, events, options);
  }

  /**
   * Pulls the tenant's events the plugin may read (`GET /api/v1/events/stream`), from now on, or
   * after `lastEventId` (`"0"`: the whole retained log). Each comes with its log position.
   */
  async *eventStream(options: { pattern?: string; lastEventId?: string; signal?: AbortSignal } = {}): AsyncGenerator<{ seq: string | undefined; event: Event }> {
    const query = options.pattern ? `?${new URLSearchParams({ pattern: options.pattern })}` : "";
    for await (const message of this.follow(`/api/v1/events/stream${query}`, options)) {
      const event = parseJson(message.data);
      if (isObject(event) && typeof event["type"] === "string") yield { seq: message.id, event: event as unknown as Event };
    }
  }

  // ---------------------------------------------------------------------------------------
  // Shared data
  // ---------------------------------------------------------------------------------------

  #dataPath(namespace: string, key?: string): string {
    const base = `/api/v1/data/${encodeURIComponent(namespace)}`;
    return key === undefined ? base : `${base}/${encodeURIComponent(key)}`;
  }

  /** An entry of the plugin's tenant, `undefined` when missing or expired. */
  async dataGet<T = unknown>(namespace: string, key: string): Promise<DataEntry<T> | undefined> {
    const response = await this.fetch(this.#dataPath(namespace, key));
    if (response.ok) return (await response.json()) as DataEntry<T>;
    const error = await hubError(response);
    if (error.code === "DATA_NOT_FOUND") return undefined;
    throw error;
  }

  /**
   * Writes an entry this plugin owns; `ttl` in seconds (without it the entry never expires, and
   * an existing expiry is removed). Returns the new revision.
   */
  async dataSet(namespace: string, key: string, value: unknown, options: { ttl?: number } = {}): Promise<number> {
    return this.#put(namespace, key, value, options.ttl, undefined);
  }

  async #put(namespace: string, key: string, value: unknown, ttl: number | undefined, condition: [string, string] | undefined): Promise<number> {
    const body: Record<string, unknown> = { value };
    if (ttl !== undefined) body["ttl"] = ttl;
    const headers: Record<string, string> = condition ? { [condition[0]]: condition[1] } : {};
    const answer = await this.send<{ revision: number }>("PUT", this.#dataPath(namespace, key), body, headers);
    return answer.revision;
  }

  /**
   * Compare-and-set: writes `value` only if the entry is still at `revision` (`undefined`: only
   * if it does not exist). Returns the new revision, or `undefined` when someone else wrote first
   * (read it again and decide).
   */
  async dataReplace(namespace: string, key: string, value: unknown, revision: number | undefined, options: { ttl?: number } = {}): Promise<number | undefined> {
    const condition: [string, string] = revision === undefined ? ["if-none-match", "*"] : ["if-match", String(revision)];
    try {
      return await this.#put(namespace, key, value, options.ttl, condition);
    } catch (error) {
      if (error instanceof PlexhubError && error.code === "PRECONDITION_FAILED") return undefined;
      throw error;
    }
  }

  /** Deletes an entry this plugin owns (only at `ifRevision`, when given); `false` when it did not exist. */
  async dataDelete(namespace: string, key: string, options: { ifRevision?: number } = {}): Promise<boolean> {
    const headers: Record<string, string> = options.ifRevision === undefined ? {} : { "if-match": String(options.ifRevision) };
    const response = await this.fetch(this.#dataPath(namespace, key), { method: "DELETE", headers });
    if (response.ok) return true;
    const error = await hubError(response);
    if (error.code === "DATA_NOT_FOUND") return false;
    throw error;
  }

  /**
   * The live entries of a namespace by key, every page (`prefix` filters keys; `values` includes
   * the values; `ownerId` filters by owner).
   */
  async dataList<T = unknown>(namespace: string, options: { prefix?: string; values?: boolean; ownerId?: string; pageSize?: number } = {}): Promise<DataEntry<T>[]> {
    const entries: DataEntry<T>[] = [];
    let cursor: string | undefined;
    do {
      const query = new URLSearchParams({ limit: String(options.pageSize ?? 1000) });
      if (options.prefix) query.set("prefix", options.prefix);
      if (options.values) query.set("values", "true");
      if (options.ownerId) query.set("ownerId", options.ownerId);
      if (cursor) query.set("cursor", cursor);
      const page = await this.send<{ entries: DataEntry<T>[]; nextCursor?: string }>("GET", `${this.#dataPath(namespace)}?${query}`);
      entries.push(...page.entries);
      cursor = page.nextCursor;
    } while (cursor);
    return entries;
  }

  /** Reads up to 100 keys of a namespace at once. */
  dataBatchGet<T = unknown>(namespace: string, keys: string[]): Promise<{ entries: DataEntry<T>[]; missing: string[] }> {
    return this.send("POST", `${this.#dataPath(namespace)}/batch-get`, { keys });
  }

  /**
   * Up to 64 operations, all or none; returns the revision each produced or checked. A failed
   * operation throws `PlexhubError` `TRANSACTION_FAILED` with `details.index` and `details.code`.
   */
  async dataTransaction(ops: DataOp[]): Promise<number[]> {
    const answer = await this.send<{ revisions: number[] }>("POST", "/api/v1/data-transactions", { ops });
    return answer.revisions;
  }

  /**
   * Read-modify-write with compare-and-set: `change` gets the current value (`undefined` when
   * missing) and returns the new one; on a concurrent write the read and `change` are repeated.
   * Returns the new revision.
   */
  async dataUpdate<T = unknown>(namespace: string, key: string, change: (old: T | undefined) => T | Promise<T>, options: { ttl?: number } = {}): Promise<number> {
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
      const current = await this.dataGet<T>(namespace, key);
      const next = await change(current?.value);
      const revision = await this.dataReplace(namespace, key, next, current?.revision, options);
      if (revision !== undefined) return revision;
    }
    throw new ContendedError(`${namespace}/${key} changed on every attempt; gave up`);
  }

  /**
   * Follows the changes of a namespace (`GET /api/v1/data-watch/{namespace}`): `set`, `deleted`,
   * `expired`, and `reset` when the hub's history no longer reaches back to where the stream
   * resumed. A broken stream is resumed from the last change seen; stop with `signal` or by
   * leaving the loop.
   */
  async *dataWatch(namespace: string, options: { prefix?: string; lastEventId?: string; signal?: AbortSignal } = {}): AsyncGenerator<DataChange> {
    const query = options.prefix ? `?${new URLSearchParams({ prefix: options.prefix })}` : "";
    for await (const event of this.follow(`/api/v1/data-watch/${encodeURIComponent(namespace)}${query}`, options)) {
      const data = parseJson(event.data);
      yield { ...(isObject(data) ? data : {}), type: event.event as DataChange["type"], id: event.id } as DataChange;
    }
  }

  /**
   * Follows a Server-Sent Events route of the hub (`path` from the root), reconnecting with
   * `Last-Event-ID` after a break (refusals such as 401 or 403 end it with `PlexhubError`).
   */
  async *follow(path: string, options: { lastEventId?: string | undefined; signal?: AbortSignal | undefined } = {}): AsyncGenerator<SseEvent> {
    let lastEventId = options.lastEventId;
    while (!options.signal?.aborted) {
      let response: Response | undefined;
      try {
        const headers: Record<string, string> = { accept: "text/event-stream" };
        if (lastEventId !== undefined) headers["last-event-id"] = lastEventId;
        response = await this.fetch(path, { headers, ...(options.signal ? { signal: options.signal } : {}) });
      } catch (error) {
        if (options.signal?.aborted) return;
        void error; // the hub is unreachable: try again
      }
      if (response && !response.ok) {
        const error = await hubError(response);
        if (error.status < 500) throw error;
      } else if (response?.body) {
        try {
          for await (const event of readSse(response.body)) {
            if (event.id !== undefined) lastEventId = event.id;
            yield event;
          }
        } catch (error) {
          if (options.signal?.aborted) return;
          void error; // the stream broke: resume
        }
      }
      await sleep(RECONNECT_AFTER_MS, options.signal);
    }
  }
}

async function pluginJson<T>(response: Response): Promise<T> {
  if (!response.ok) {
    const body = await response.text().catch(() => "");
    throw new PluginError(response.status, body, response.headers.get("x-request-id") ?? undefined);
  }
  return (await response.json()) as T;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
