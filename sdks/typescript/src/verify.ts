// For the plugin's own server: accept only requests the hub forwarded and signed. The checks are
// those of the Rust SDK's `Verifier` (crates/plexhub-sdk/src/verify.rs): `v2` HMAC-SHA256 with
// the installation's own secrets (several during a rotation's overlap), `v1` Ed25519 with the
// hub's published keys, a 5-minute clock-skew window, and each signature accepted once.
import { createHmac, createPublicKey, timingSafeEqual, verify as verifySignature, type KeyObject } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { Client } from "./client.js";
import type { VerifierErrorCode } from "./codes.js";

/** How far a signature's time may be from this server's clock; a signature is also remembered this long. */
export const MAX_SKEW_MS = 5 * 60 * 1000;
/** Signatures remembered at most; past it, the oldest half is forgotten. */
const MAX_REMEMBERED = 1_000_000;
/** Expired signatures are forgotten every this many accepted ones. */
const PRUNE_EVERY = 4_096;
/** A key id still unknown after a refresh does not cause another one for this long. */
const UNKNOWN_KEY_QUIET_MS = 1_000;

/** The header that carries the signature. */
export const SIGNATURE_HEADER = "x-plexhub-signature";

/** What a signature covers (besides the scheme's tag and the timestamp). */
export interface SignedFields {
  /** HTTP method, upper case. */
  method: string;
  /** Path as received (percent-encoding kept). */
  path: string;
  /** Query string without `?`, empty when none. */
  query: string;
  /** `X-Tenant-ID` (the tenant's UUID). */
  tenantId: string;
  /** `X-Caller-Plugin-ID`. */
  caller: string;
  /** `X-Request-ID`. */
  requestId: string;
  /** `X-User-ID`, empty when absent. */
  userId: string;
  /** `X-Workspace-ID`, empty when absent. */
  workspaceId: string;
}

/** Why a signature was refused (the Rust SDK's `VerifyError`). */
export type VerifyFailure = "malformed" | "unknown_key" | "stale" | "mismatch" | "replayed";

const FAILURE_MESSAGES: Record<VerifyFailure, string> = {
  malformed: "the request carries no well-formed X-Plexhub-Signature",
  unknown_key: "the signature names an unknown key",
  stale: "the signature is too old (or from the future)",
  mismatch: "the signature does not match the request",
  replayed: "the request was already received (replayed)",
};

/** A signature check failed. */
export class VerifyError extends Error {
  override readonly name = "VerifyError";
  constructor(readonly kind: VerifyFailure) {
    super(FAILURE_MESSAGES[kind]);
  }
}

/** A request refused by the verifier: answer 401 with `body()`. */
export class Refused extends Error {
  override readonly name = "Refused";
  readonly status = 401;
  constructor(readonly code: VerifierErrorCode, message: string) {
    super(message);
  }
  /** `{"error":{"code","message"}}`, as the Rust SDK answers. */
  body(): { error: { code: VerifierErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/** A request the hub forwarded, verified: who calls, for which tenant. */
export interface HubRequest {
  /** The tenant's id (UUID). */
  tenantId: string;
  /** The tenant's slug. */
  tenantSlug: string;
  /** The calling plugin (for an event delivery: the event's source). */
  caller: string;
  /** The request id (for logs). */
  requestId: string;
  /** `X-User-ID`: asserted by the calling plugin, not verified by the hub (only not changed on the way). */
  userId: string | undefined;
  /** `X-Workspace-ID`, asserted by the calling plugin like `userId`. */
  workspaceId: string | undefined;
}

/** The parts of a request the verifier reads. Header names lower case (as Node gives them). */
export interface IncomingRequestLike {
  method: string;
  /** Path and query as received, e.g. `/contacts?limit=5`. */
  url: string;
  headers: IncomingHttpHeaders | Headers | Record<string, string | string[] | undefined>;
}

/** A published Ed25519 key of the hub. */
export interface PublicKeyInfo {
  keyId: string;
  algorithm?: string;
  publicKey: string;
}

/** An installation's HMAC signing secret. */
export interface SigningSecretInfo {
  keyId: string;
  secret: string;
}

interface TrustedKeys {
  publicKeys: Map<string, KeyObject | undefined>;
  secrets: Map<string, Buffer>;
}

interface ParsedHeader {
  version: "v1" | "v2";
  keyIds: string;
  timestampText: string;
  timestamp: number;
  signatures: string;
}

function parseHeader(header: string): ParsedHeader {
  const [version, ...parts] = header.split(";");
  if (version !== "v1" && version !== "v2") throw new VerifyError("malformed");
  let keyIds: string | undefined;
  let timestamp: [string, number] | undefined;
  let timestampSeen = false;
  let signatures: string | undefined;
  for (const part of parts) {
    const equals = part.indexOf("=");
    const [name, value] = equals < 0 ? [part, undefined] : [part.slice(0, equals), part.slice(equals + 1)];
    if (value === undefined) throw new VerifyError("malformed");
    if (name === "keyId" && keyIds === undefined) keyIds = value;
    else if (name === "ts" && !timestampSeen) {
      timestampSeen = true;
      if (/^[+-]?\d+$/.test(value)) timestamp = [value, Number(value)];
    } else if (name === "sig" && signatures === undefined) signatures = value;
    else throw new VerifyError("malformed");
  }
  if (keyIds === undefined || timestamp === undefined || signatures === undefined) throw new VerifyError("malformed");
  return { version, keyIds, timestampText: timestamp[0], timestamp: timestamp[1], signatures };
}

function fieldsText(tag: string, request: SignedFields, timestamp: string): string {
  return [tag, request.method, request.path, request.query, request.tenantId, request.caller, request.requestId, request.userId, request.workspaceId, timestamp].join("\n");
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function decodeBase64url(text: string): Buffer | undefined {
  // Rust's URL_SAFE_NO_PAD refuses padding and other alphabets; so does this.
  if (!BASE64URL.test(text) || text.length % 4 === 1) return undefined;
  return Buffer.from(text, "base64url");
}

function ed25519Key(publicKey: string): KeyObject | undefined {
  const raw = decodeBase64url(publicKey);
  if (!raw || raw.length !== 32) return undefined;
  try {
    return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: publicKey }, format: "jwk" });
  } catch {
    return undefined;
  }
}

/**
 * Checks a signature header (`v1` or `v2`) against the request, the trusted keys and the time.
 * Returns the signature's timestamp; throws `VerifyError`. No replay check (see `Verifier.check`).
 */
function verifyAny(trusted: TrustedKeys, header: string, request: SignedFields, nowMs: number, maxSkewMs: number): number {
  const parsed = parseHeader(header);
  if (parsed.version === "v1") {
    if (!trusted.publicKeys.has(parsed.keyIds)) throw new VerifyError("unknown_key");
    if (Math.abs(nowMs - parsed.timestamp) > maxSkewMs) throw new VerifyError("stale");
    const key = trusted.publicKeys.get(parsed.keyIds);
    if (!key) throw new VerifyError("unknown_key");
    const signature = decodeBase64url(parsed.signatures);
    if (!signature || signature.length !== 64) throw new VerifyError("malformed");
    const message = Buffer.from(fieldsText("plexhub-v1", request, String(parsed.timestamp)));
    if (!verifySignature(null, message, key, signature)) throw new VerifyError("mismatch");
    return parsed.timestamp;
  }
  const keyIds = parsed.keyIds.split(",");
  const signatures = parsed.signatures.split(",");
  if (keyIds.length !== signatures.length) throw new VerifyError("malformed");
  let known = false;
  for (const [index, keyId] of keyIds.entries()) {
    const secret = trusted.secrets.get(keyId);
    if (!secret) continue;
    known = true;
    if (Math.abs(nowMs - parsed.timestamp) > maxSkewMs) throw new VerifyError("stale");
    const presented = decodeBase64url(signatures[index] ?? "");
    if (!presented) throw new VerifyError("malformed");
    const expected = createHmac("sha256", secret).update(fieldsText("plexhub-v2", request, parsed.timestampText)).digest();
    if (presented.length === expected.length && timingSafeEqual(presented, expected)) return parsed.timestamp;
  }
  throw new VerifyError(known ? "mismatch" : "unknown_key");
}

function headerValue(headers: IncomingRequestLike["headers"], name: string): string {
  if (headers instanceof Headers) return headers.get(name) ?? "";
  const value = (headers as Record<string, string | string[] | undefined>)[name];
  if (Array.isArray(value)) return value.join(", ");
  return value ?? "";
}

/**
 * What the hub's requests are checked against: its published Ed25519 keys (`v1`) and the HMAC
 * secrets of the plugin's installations (`v2`, the hub's default). A signature is accepted once:
 * the same one presented again within the skew window is a replay.
 */
export class Verifier {
  readonly #hubUrl: string | undefined;
  readonly #installations: Client[];
  #trusted: TrustedKeys = { publicKeys: new Map(), secrets: new Map() };
  readonly #seen = new Map<string, number>();
  /** Key ids still unknown after a refresh, and when: they do not cause another one at once. */
  readonly #unknownKeys = new Map<string, number>();
  #refreshing: Promise<void> | undefined;
  /** The clock (ms since the epoch); replaceable in tests. */
  now: () => number = () => Date.now();

  private constructor(hubUrl: string | undefined, installations: Client[]) {
    this.#hubUrl = hubUrl?.replace(/\/+$/, "");
    this.#installations = installations;
  }

  /** Trusts the hub's published Ed25519 keys only (for installations signed with `ed25519`). */
  static async fetch(hubUrl: string): Promise<Verifier> {
    const verifier = new Verifier(hubUrl, []);
    await verifier.refresh();
    return verifier;
  }

  /**
   * Trusts the hub's public keys and the HMAC secrets of every installation (each client holds
   * one installation's credential; the secrets come from `GET /api/v1/self/signing-secrets`).
   */
  static async forInstallations(installations: Iterable<Client> | { clients(): Iterable<Client>; hubUrl: string }): Promise<Verifier> {
    const clients = "clients" in installations ? [...installations.clients()] : [...installations];
    const hubUrl = "clients" in installations ? installations.hubUrl : clients[0]?.url;
    const verifier = new Verifier(hubUrl, clients);
    await verifier.refresh();
    return verifier;
  }

  /** Trusts exactly these keys and secrets (no hub to refresh from). */
  static fromKeys(keys: { publicKeys?: PublicKeyInfo[]; secrets?: SigningSecretInfo[] }): Verifier {
    const verifier = new Verifier(undefined, []);
    verifier.#trust(keys.publicKeys ?? [], keys.secrets ?? []);
    return verifier;
  }

  #trust(publicKeys: PublicKeyInfo[], secrets: SigningSecretInfo[]): void {
    const trusted: TrustedKeys = { publicKeys: new Map(), secrets: new Map() };
    for (const key of publicKeys) trusted.publicKeys.set(key.keyId, ed25519Key(key.publicKey));
    for (const secret of secrets) {
      const bytes = decodeBase64url(secret.secret.trim());
      if (!bytes || bytes.length !== 32) throw new Error(`signing secret ${secret.keyId} is not 32 bytes in base64url`);
      trusted.secrets.set(secret.keyId, bytes);
    }
    this.#trusted = trusted;
  }

  /** Trusts one more installation's secrets (`client` holds its credential). */
  async addInstallation(client: Client): Promise<void> {
    this.#installations.push(client);
    await this.refresh();
  }

  /** Reads the keys and secrets again (after the hub rotated them). */
  async refresh(): Promise<void> {
    const hubUrl = this.#hubUrl;
    if (hubUrl === undefined) return;
    const answer = await fetch(`${hubUrl}/.well-known/plexhub-keys`);
    if (!answer.ok) throw new Error(`GET /.well-known/plexhub-keys answered ${answer.status}`);
    const { keys } = (await answer.json()) as { keys: PublicKeyInfo[] };
    const secrets: SigningSecretInfo[] = [];
    for (const installation of this.#installations) {
      const own = await installation.send<{ secrets: SigningSecretInfo[] }>("GET", "/api/v1/self/signing-secrets");
      secrets.push(...own.secrets);
    }
    this.#trust(keys, secrets);
  }

  /**
   * Checks a signature header against the request it came with, the trusted keys, the clock and
   * the signatures already accepted. Returns the signature's timestamp; throws `VerifyError`.
   */
  check(header: string, request: SignedFields): number {
    const now = this.now();
    const timestamp = verifyAny(this.#trusted, header, request, now, MAX_SKEW_MS);
    const seen = this.#seen;
    if (seen.size % PRUNE_EVERY === 0 || seen.size >= MAX_REMEMBERED) {
      // A signature older than the skew window is refused as stale anyway.
      for (const [signature, at] of seen) if (now - at > MAX_SKEW_MS) seen.delete(signature);
      if (seen.size >= MAX_REMEMBERED) {
        const times = [...seen.values()].sort((a, b) => a - b);
        const median = times[Math.floor(times.length / 2)] ?? 0;
        for (const [signature, at] of seen) if (at <= median) seen.delete(signature);
      }
    }
    if (seen.has(header)) throw new VerifyError("replayed");
    seen.set(header, timestamp);
    return timestamp;
  }

  /**
   * Verifies a request as received (method, path and query, headers): its tenant, caller and
   * request id, or `Refused` (`UNSIGNED_REQUEST`, `BAD_SIGNATURE`, `REPLAYED_REQUEST`). A
   * signature naming a key this verifier does not know makes it read the keys again once (a
   * rotation).
   */
  async verify(request: IncomingRequestLike): Promise<HubRequest> {
    const header = headerValue(request.headers, SIGNATURE_HEADER);
    if (header === "") throw new Refused("UNSIGNED_REQUEST", "only requests forwarded by the hub are accepted");
    const question = request.url.indexOf("?");
    const fields: SignedFields = {
      method: request.method.toUpperCase(),
      path: question < 0 ? request.url : request.url.slice(0, question),
      query: question < 0 ? "" : request.url.slice(question + 1),
      tenantId: headerValue(request.headers, "x-tenant-id"),
      caller: headerValue(request.headers, "x-caller-plugin-id"),
      requestId: headerValue(request.headers, "x-request-id"),
      userId: headerValue(request.headers, "x-user-id"),
      workspaceId: headerValue(request.headers, "x-workspace-id"),
    };
    try {
      this.check(header, fields);
    } catch (error) {
      if (!(error instanceof VerifyError && error.kind === "unknown_key" && (await this.#refreshForUnknownKey(header)))) {
        throw toRefused(error);
      }
      try {
        this.check(header, fields);
      } catch (again) {
        if (again instanceof VerifyError && again.kind === "unknown_key") this.#rememberUnknown(header);
        throw toRefused(again);
      }
    }
    return {
      tenantId: fields.tenantId,
      tenantSlug: headerValue(request.headers, "x-tenant-slug"),
      caller: fields.caller,
      requestId: fields.requestId,
      userId: fields.userId || undefined,
      workspaceId: fields.workspaceId || undefined,
    };
  }

  #rememberUnknown(header: string): void {
    if (this.#unknownKeys.size >= 1_000) this.#unknownKeys.clear();
    this.#unknownKeys.set(keyIdsOf(header), Date.now());
  }

  /** Reads the keys again for a signature naming an unknown key (one refresh at a time). */
  async #refreshForUnknownKey(header: string): Promise<boolean> {
    if (this.#hubUrl === undefined) return false;
    const refused = this.#unknownKeys.get(keyIdsOf(header));
    if (refused !== undefined && Date.now() - refused < UNKNOWN_KEY_QUIET_MS) return false;
    if (!this.#refreshing) {
      this.#refreshing = this.refresh().finally(() => (this.#refreshing = undefined));
    }
    try {
      await this.#refreshing;
      return true;
    } catch {
      return false;
    }
  }
}

function keyIdsOf(header: string): string {
  return /;keyId=([^;]*)/.exec(header)?.[1] ?? "";
}

function toRefused(error: unknown): Refused {
  if (error instanceof VerifyError) return new Refused(error.kind === "replayed" ? "REPLAYED_REQUEST" : "BAD_SIGNATURE", error.message);
  throw error;
}

/** Verifies `request` with `verifier` (see `Verifier.verify`). */
export function verifyRequest(verifier: Verifier, request: IncomingRequestLike): Promise<HubRequest> {
  return verifier.verify(request);
}

function refuse(res: ServerResponse, error: Refused): void {
  const body = JSON.stringify(error.body());
  res.writeHead(error.status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** A Node `http` handler that also gets the verified `HubRequest`. */
export type HubHandler = (req: IncomingMessage, res: ServerResponse, hub: HubRequest) => unknown;

/**
 * A Node `http` request listener that runs `handler` only for requests the hub signed; anything
 * else gets 401 `{"error":{"code","message"}}`.
 */
export function nodeVerifier(verifier: Verifier, handler: HubHandler): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    verifier
      .verify({ method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers })
      .then((hub) => handler(req, res, hub))
      .catch((error: unknown) => {
        if (error instanceof Refused) return refuse(res, error);
        if (!res.headersSent) {
          res.writeHead(500, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: { code: "INTERNAL", message: error instanceof Error ? error.message : String(error) } }));
        } else res.destroy();
      });
  };
}

/** The parts of an Express request and response the middleware uses. */
interface ExpressRequestLike {
  method: string;
  originalUrl?: string;
  url: string;
  headers: IncomingHttpHeaders;
  hub?: HubRequest;
}
interface ExpressResponseLike {
  status(code: number): { json(body: unknown): unknown };
  locals?: Record<string, unknown>;
}

/**
 * Express middleware: a verified request goes on with `req.hub` (and `res.locals.hub`) set;
 * anything else gets 401 `{"error":{"code","message"}}`. Mount it before the plugin's routes.
 */
export function expressVerifier(verifier: Verifier): (req: ExpressRequestLike, res: ExpressResponseLike, next: (error?: unknown) => void) => void {
  return (req, res, next) => {
    verifier
      .verify({ method: req.method, url: req.originalUrl ?? req.url, headers: req.headers })
      .then((hub) => {
        req.hub = hub;
        if (res.locals) res.locals["hub"] = hub;
        next();
      })
      .catch((error: unknown) => {
        if (error instanceof Refused) res.status(error.status).json(error.body());
        else next(error);
      });
  };
}

/** The parts of a Fastify request and reply the hook uses. */
interface FastifyRequestLike {
  method: string;
  url: string;
  raw?: { url?: string | undefined };
  headers: IncomingHttpHeaders;
  hub?: HubRequest;
}
interface FastifyReplyLike {
  code(status: number): { send(body: unknown): unknown };
}

/**
 * A Fastify `onRequest` (or `preHandler`) hook: a verified request goes on with `request.hub`
 * set; anything else gets 401 `{"error":{"code","message"}}`. Add it with
 * `app.addHook("onRequest", fastifyVerifier(verifier))` (and `app.decorateRequest("hub", null)`).
 */
export function fastifyVerifier(verifier: Verifier): (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<void> {
  return async (request, reply) => {
    try {
      request.hub = await verifier.verify({ method: request.method, url: request.raw?.url ?? request.url, headers: request.headers });
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      await reply.code(error.status).send(error.body());
    }
  };
}
