// Events: publishing the plugin's own (retried until the hub accepts them), and receiving its
// subscriptions' deliveries (signature checked, handlers by pattern, a thrown error = retry).
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Client } from "./client.js";
import { PlexhubError } from "./errors.js";
import { sleep } from "./util.js";
import { Refused, type HubRequest, type IncomingRequestLike, type Verifier } from "./verify.js";

/** An event to publish, with the optional CloudEvents attributes. */
export interface OutgoingEvent {
  /** Under the plugin's own `plugin.<name>.…`. */
  type: string;
  /** Payload. */
  data?: unknown;
  /** Unique per publisher; publishing the same id again is harmless (default: a new UUID). */
  id?: string;
  /** Events with one key reach each subscriber in publication order. */
  partitionkey?: string;
  /** What the event is about. */
  subject?: string;
  /** Ties events of one flow together (default: the event's id). */
  correlationid?: string;
  /** The event that caused this one. */
  causationid?: string;
  datacontenttype?: string;
}

/** What the hub stored for a published event. */
export interface Published {
  /** The event's id. */
  id: string;
  /** Its position in the tenant's log. */
  seq: number;
  /** The id had been published before; nothing new was stored. */
  duplicate: boolean;
}

/** How long `publish` keeps trying. */
export interface PublishOptions {
  /**
   * Give up after this long (default 30 s): until then a hub that cannot be reached, answers 5xx
   * or 429 is asked again (with the same event ids, so nothing is stored twice). Refusals (4xx)
   * are thrown at once. 0: one attempt.
   */
  retryForMs?: number;
}

/** First wait after a failed publication; doubled per attempt, at most `MAX_RETRY_WAIT_MS`. */
const FIRST_RETRY_WAIT_MS = 100;
const MAX_RETRY_WAIT_MS = 5_000;

function retryable(error: unknown): boolean {
  if (!(error instanceof PlexhubError)) return true; // the hub could not be reached
  return error.status >= 500 || error.status === 429 || error.status === 408;
}

/**
 * Publishes up to 100 events at once, in order, retried until the hub has stored them (see
 * `PublishOptions`). Each event without an id gets one first, so a retry never duplicates it.
 */
export async function publishAll(client: Client, events: OutgoingEvent[], options: PublishOptions = {}): Promise<Published[]> {
  const body = events.map((event) => ({ ...event, id: event.id ?? randomUUID() }));
  const deadline = Date.now() + (options.retryForMs ?? 30_000);
  let wait = FIRST_RETRY_WAIT_MS;
  for (;;) {
    try {
      const answer = await client.send<{ events: Published[] }>("POST", "/api/v1/events", body);
      return answer.events;
    } catch (error) {
      if (!retryable(error) || Date.now() + wait > deadline) throw error;
      const retryAfter = error instanceof PlexhubError ? retryAfterMs(error) : undefined;
      await sleep(Math.max(wait, retryAfter ?? 0));
      wait = Math.min(wait * 2, MAX_RETRY_WAIT_MS);
    }
  }
}

function retryAfterMs(error: PlexhubError): number | undefined {
  const details = error.details as { retryAfterSeconds?: unknown } | undefined;
  return typeof details?.retryAfterSeconds === "number" ? details.retryAfterSeconds * 1000 : undefined;
}

/** Publishes one event of this plugin (see `publishAll`). */
export async function publish(client: Client, type: string, data: unknown, options: Omit<OutgoingEvent, "type" | "data"> & PublishOptions = {}): Promise<Published> {
  const { retryForMs, ...attributes } = options;
  const [published] = await publishAll(client, [{ ...attributes, type, data }], retryForMs === undefined ? {} : { retryForMs });
  if (!published) throw new Error("the hub stored no event");
  return published;
}

/** A delivered event (CloudEvents 1.0 with the hub's extensions). */
export interface Event<T = unknown> {
  specversion: string;
  /** Id, unique per source. */
  id: string;
  /** The publishing plugin, or `plexhub`. */
  source: string;
  type: string;
  /** Publication time (RFC 3339). */
  time: string;
  /** The tenant (UUID). */
  tenantid: string;
  data: T;
  subject?: string;
  partitionkey?: string;
  correlationid?: string;
  causationid?: string;
  datacontenttype?: string;
}

/** The delivery an event came with: the verified request, and the subscription's attempt. */
export interface Delivery extends HubRequest {
  /** `X-Plexhub-Subscription`. */
  subscription: string | undefined;
  /** `X-Plexhub-Delivery-Attempt` (1 for the first). */
  attempt: number;
}

/** Handles one event; a thrown error (or rejected promise) makes the hub deliver it again later. */
export type EventHandler = (event: Event, delivery: Delivery) => unknown;

/** The answer to a delivery. */
export interface DeliveryAnswer {
  status: number;
  body: unknown;
}

/** Whether `pattern` (`*` one segment, a final `#` one or more) matches `topic`, as the hub's `Pattern`. */
export function patternMatches(pattern: string, topic: string): boolean {
  const segments = pattern.split(".");
  const parts = topic.split(".");
  for (const [index, segment] of segments.entries()) {
    if (segment === "#" && index === segments.length - 1) return parts.length > index;
    const part = parts[index];
    if (part === undefined) return false;
    if (segment !== "*" && segment !== part) return false;
  }
  return parts.length === segments.length;
}

function checkPattern(pattern: string): void {
  const segments = pattern.split(".");
  const valid = segments.every((segment, index) => segment === "*" || (segment === "#" && index === segments.length - 1) || /^[a-z0-9_-]+$/.test(segment));
  if (!valid || pattern.length === 0) throw new Error(`invalid event pattern ${JSON.stringify(pattern)}`);
}

/**
 * Receives a plugin's event deliveries: checks the hub's signature and calls every handler whose
 * pattern matches the event's type. A handler that throws answers 500, so the hub tries again
 * later (in the end moving the event to the dead letters); an event no handler wants is
 * acknowledged.
 */
export class EventRouter {
  readonly #handlers: [string, EventHandler][] = [];

  /** Adds a handler for the event types `pattern` matches. Throws on an invalid pattern. */
  on(pattern: string, handler: EventHandler): this {
    checkPattern(pattern);
    this.#handlers.push([pattern, handler]);
    return this;
  }

  /** Runs the matching handlers for an already verified delivery; rejects with the first handler error. */
  async dispatch(event: Event, delivery: Delivery): Promise<void> {
    for (const [pattern, handler] of this.#handlers) {
      if (patternMatches(pattern, event.type)) await handler(event, delivery);
    }
  }

  /**
   * Answers a delivery from any server: verifies it with `verifier`, parses `body` (the raw
   * text), dispatches. 200 acknowledges; 401 refuses; 400 a body that is not an event; 500 a
   * handler's failure (retried by the hub).
   */
  async handle(verifier: Verifier, request: IncomingRequestLike, body: string): Promise<DeliveryAnswer> {
    let hub: HubRequest;
    try {
      hub = await verifier.verify(request);
    } catch (error) {
      if (error instanceof Refused) return { status: error.status, body: error.body() };
      throw error;
    }
    let event: Event;
    try {
      event = JSON.parse(body) as Event;
      if (typeof event?.type !== "string" || typeof event.id !== "string") throw new Error("not an event");
    } catch {
      return { status: 400, body: { error: { code: "INVALID_EVENT", message: "the body is not a CloudEvent" } } };
    }
    const header = (name: string): string | undefined => {
      const headers = request.headers;
      const value = headers instanceof Headers ? headers.get(name) : (headers as Record<string, string | string[] | undefined>)[name];
      return Array.isArray(value) ? value[0] : (value ?? undefined);
    };
    const delivery: Delivery = { ...hub, subscription: header("x-plexhub-subscription"), attempt: Number(header("x-plexhub-delivery-attempt") ?? 1) };
    try {
      await this.dispatch(event, delivery);
    } catch (error) {
      return { status: 500, body: { error: { code: "HANDLER_FAILED", message: error instanceof Error ? error.message : String(error) } } };
    }
    return { status: 200, body: { acknowledged: event.id } };
  }

  /** A Node `http` request listener taking deliveries (mount it at the subscription's `endpoint`). */
  nodeListener(verifier: Verifier): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      void (async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        const answer = await this.handle(verifier, { method: req.method ?? "POST", url: req.url ?? "/", headers: req.headers }, Buffer.concat(chunks).toString("utf8"));
        const text = JSON.stringify(answer.body);
        res.writeHead(answer.status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
        res.end(text);
      })().catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: "INTERNAL", message: String(error) } }));
      });
    };
  }
}
