// Discovery: by name and npm version range, uncached (`discover`) or cached until the
// registry's watch stream says the service changed (`Discovery`); while the stream is down the
// cache is not used at all.
import type { Client } from "./client.js";
import { PlexhubError, isObject } from "./errors.js";
import type { components } from "./generated/openapi.js";
import { readSse } from "./sse.js";
import { sleep } from "./util.js";

/** A discoverable service: its best replica's `baseUrl` and `status`, and its endpoints. */
export type DiscoveredService = components["schemas"]["DiscoveredService"];

/** Pause before following the watch stream again after it broke. */
const RECONNECT_AFTER_MS = 1_000;

/**
 * The discoverable service of that name in the client's tenant, optionally within an npm version
 * range (`^1.0.0`, `>=1.2 <2`), or `undefined` when there is none (unknown, its plugin not ACTIVE,
 * no HEALTHY or DEGRADED replica, or no version in the range).
 */
export async function discover(client: Client, service: string, options: { version?: string } = {}): Promise<DiscoveredService | undefined> {
  const query = options.version ? `?${new URLSearchParams({ version: options.version })}` : "";
  try {
    const answer = await client.send<{ service: DiscoveredService }>("GET", `/api/plugin-gateway/services/discover/${encodeURIComponent(service)}${query}`);
    return answer.service;
  } catch (error) {
    if (error instanceof PlexhubError && error.status === 404) return undefined;
    throw error;
  }
}

/** Cached discovery of a client's tenant; `stop()` ends the watch. */
export class Discovery {
  readonly #client: Client;
  readonly #cache = new Map<string, DiscoveredService | undefined>();
  readonly #abort = new AbortController();
  #following = false;
  #ready: Promise<void>;
  #markReady: () => void = () => undefined;

  constructor(client: Client) {
    this.#client = client;
    this.#ready = new Promise((done) => (this.#markReady = done));
    void this.#follow();
  }

  /** Whether the watch stream is followed (answers are then cached). */
  get following(): boolean {
    return this.#following;
  }

  /** Resolves once the watch stream is followed (or after `timeoutMs`). */
  async ready(timeoutMs = 5_000): Promise<boolean> {
    await Promise.race([this.#ready, sleep(timeoutMs, this.#abort.signal)]);
    return this.#following;
  }

  /** As `discover`, from the cache while the watch stream is followed. */
  async discover(service: string, options: { version?: string } = {}): Promise<DiscoveredService | undefined> {
    const cacheKey = `${service}\n${options.version ?? ""}`;
    const trusted = this.#following;
    if (trusted && this.#cache.has(cacheKey)) return this.#cache.get(cacheKey);
    const found = await discover(this.#client, service, options);
    if (trusted && this.#following) this.#cache.set(cacheKey, found);
    return found;
  }

  /** Stops following the watch stream. */
  stop(): void {
    this.#abort.abort();
  }

  async #follow(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        const response = await this.#client.fetch("/api/v1/services/watch", { headers: { accept: "text/event-stream" }, signal });
        if (response.ok && response.body) {
          this.#cache.clear();
          this.#following = true;
          this.#markReady();
          for await (const event of readSse(response.body)) this.#forget(event.data);
        } else {
          await response.body?.cancel();
        }
      } catch {
        // the hub is unreachable or the stream broke: the cache is dropped below
      }
      this.#following = false;
      this.#cache.clear();
      await sleep(RECONNECT_AFTER_MS, signal);
    }
  }

  /** Drops the cached answers of the service an event names (all of them on `reset`). */
  #forget(data: string): void {
    let event: unknown;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    const service = isObject(event) && isObject(event["service"]) ? event["service"]["serviceName"] : undefined;
    if (typeof service !== "string" || (isObject(event) && event["type"] === "reset")) {
      this.#cache.clear();
      return;
    }
    for (const key of [...this.#cache.keys()]) if (key.startsWith(`${service}\n`)) this.#cache.delete(key);
  }
}
