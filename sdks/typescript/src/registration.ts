// Keeping a plugin's services registered: one replica per service at start-up, then heartbeats
// in the background; a replica the hub no longer knows (hub restarted on a fresh database,
// replica removed by an operator) is registered again by the next beat. While the hub cannot be
// reached, beats are retried with exponential backoff (from 250 ms up to the interval).
import type { Client } from "./client.js";
import { PlexhubError } from "./errors.js";

/** One service of the plugin's manifest (`api.services[]`). */
export interface ServiceSpec {
  /** Service name, e.g. `crm.contacts`. */
  name: string;
  /** Service version. */
  version: string;
  /** The manifest's endpoints. */
  endpoints: unknown[];
}

/** The services of a manifest (`api.services[]`). */
export function manifestServices(manifest: unknown): ServiceSpec[] {
  const services = (manifest as { api?: { services?: unknown } } | undefined)?.api?.services;
  if (!Array.isArray(services)) return [];
  return services
    .map((service: Record<string, unknown>) => ({
      name: typeof service["name"] === "string" ? service["name"] : "",
      version: typeof service["version"] === "string" ? service["version"] : "1.0.0",
      endpoints: Array.isArray(service["endpoints"]) ? service["endpoints"] : [],
    }))
    .filter((service) => service.name !== "");
}

/** First wait after a failed beat; doubled per failure, at most the interval. */
const FIRST_RETRY_MS = 250;

/**
 * Registers (or refreshes) this replica of `service` at `baseUrl`; when the hub does not know
 * the service at all, registers the service from its spec first (the seed's register route).
 * Returns the hub's heartbeat interval in milliseconds.
 */
export async function registerReplica(client: Client, service: ServiceSpec, instance: string, baseUrl: string): Promise<number> {
  const path = `/api/v1/services/${encodeURIComponent(service.name)}/instances/${encodeURIComponent(instance)}`;
  const replica = { baseUrl };
  let answer: { heartbeatIntervalSeconds?: number };
  try {
    answer = await client.send("PUT", path, replica);
  } catch (error) {
    if (!(error instanceof PlexhubError && error.code === "SERVICE_NOT_FOUND")) throw error;
    const pluginId = client.pluginId ?? (await client.whoami()).pluginId;
    await client.send("POST", "/api/plugin-gateway/services/register", {
      pluginId,
      serviceName: service.name,
      version: service.version,
      baseUrl,
      endpoints: service.endpoints,
    });
    answer = await client.send("PUT", path, replica);
  }
  return Math.max(1, answer.heartbeatIntervalSeconds ?? 15) * 1000;
}

/** Options of `keepRegistered`. */
export interface KeepRegisteredOptions {
  /** Heartbeat period in ms (default: the interval the hub asks for). */
  everyMs?: number;
  /** Called with each failed beat or registration (default: a line on stderr). */
  onError?: (error: unknown, service: string) => void;
}

/** What the heartbeats did so far. */
export interface HeartbeatStats {
  /** Heartbeats the hub recorded. */
  beats: number;
  /** Registrations, the first ones included (more mean the hub had forgotten the replica). */
  registrations: number;
  /** Failed beats or registrations. */
  failures: number;
  /** The last failure. */
  lastError: unknown;
}

/** The background heartbeats of a plugin replica; `stop()` ends them. */
export class Heartbeats {
  readonly stats: HeartbeatStats = { beats: 0, registrations: 0, failures: 0, lastError: undefined };
  readonly #client: Client;
  readonly #services: ServiceSpec[];
  readonly #instance: string;
  readonly #baseUrl: string;
  readonly #options: KeepRegisteredOptions;
  #intervalMs = 15_000;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #running: Promise<void> = Promise.resolve();

  private constructor(client: Client, services: ServiceSpec[], instance: string, baseUrl: string, options: KeepRegisteredOptions) {
    this.#client = client;
    this.#services = services;
    this.#instance = instance;
    this.#baseUrl = baseUrl;
    this.#options = options;
  }

  /**
   * Registers this replica of every service, then beats in the background, registering again
   * whatever the hub forgot.
   */
  static async start(client: Client, services: ServiceSpec[], instance: string, baseUrl: string, options: KeepRegisteredOptions = {}): Promise<Heartbeats> {
    const beats = new Heartbeats(client, services, instance, baseUrl, options);
    for (const service of services) {
      beats.#intervalMs = await registerReplica(client, service, instance, baseUrl);
      beats.stats.registrations++;
    }
    beats.#schedule(options.everyMs ?? beats.#intervalMs);
    return beats;
  }

  #schedule(ms: number, backoff = 0): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#beat(backoff);
    }, ms);
  }

  async #beat(backoff: number): Promise<void> {
    let failed = false;
    for (const service of this.#services) {
      if (this.#stopped) return;
      const path = `/api/v1/services/${encodeURIComponent(service.name)}/instances/${encodeURIComponent(this.#instance)}/heartbeat`;
      try {
        try {
          await this.#client.send("POST", path);
          this.stats.beats++;
        } catch (error) {
          // INSTANCE_NOT_FOUND (replica removed) or SERVICE_NOT_FOUND (service gone): register again.
          if (!(error instanceof PlexhubError && error.status === 404)) throw error;
          this.#intervalMs = await registerReplica(this.#client, service, this.#instance, this.#baseUrl);
          this.stats.registrations++;
        }
      } catch (error) {
        failed = true;
        this.stats.failures++;
        this.stats.lastError = error;
        const report = this.#options.onError ?? ((e: unknown, name: string) => console.error(`plexhub-sdk: heartbeat of ${name} failed: ${e instanceof Error ? e.message : e}`));
        report(error, service.name);
      }
    }
    const every = this.#options.everyMs ?? this.#intervalMs;
    if (failed) {
      const wait = Math.min(every, backoff === 0 ? FIRST_RETRY_MS : backoff * 2);
      this.#schedule(wait, wait);
    } else {
      this.#schedule(every);
    }
  }

  /**
   * Stops beating. With `deregister` (default true) this replica is also removed from the
   * registry, so callers stop being sent to it at once (rather than after the hub notices the
   * missing beats).
   */
  async stop(options: { deregister?: boolean } = {}): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    if (options.deregister ?? true) {
      await Promise.all(
        this.#services.map((service) =>
          this.#client
            .send("DELETE", `/api/v1/services/${encodeURIComponent(service.name)}/instances/${encodeURIComponent(this.#instance)}`)
            .catch(() => undefined),
        ),
      );
    }
  }
}

/** Registers this replica of every service and keeps it alive (see `Heartbeats`). */
export function keepRegistered(client: Client, services: ServiceSpec[], instance: string, baseUrl: string, options: KeepRegisteredOptions = {}): Promise<Heartbeats> {
  return Heartbeats.start(client, services, instance, baseUrl, options);
}
