// Why an SDK call failed: the hub refused it (PlexhubError, with the hub's code), the called
// plugin answered an error status (PluginError), or a setting is missing (SettingError).
import type { ErrorCode } from "./codes.js";
import { isTargetUnavailable } from "./codes.js";

/** An error the hub answered with: its stable code, status, message, details and request id. */
export class PlexhubError extends Error {
  override readonly name = "PlexhubError";
  /** Stable code, e.g. `PERMISSION_DENIED` (`UNKNOWN` when the answer carried none). */
  readonly code: ErrorCode;
  /** HTTP status (0 when the hub could not be reached). */
  readonly status: number;
  /** Structured details (`missing`, `availableEndpoints`, `currentRevision`…), if any. */
  readonly details: unknown;
  /** The hub's `X-Request-Id` of the failed request (for its logs), if known. */
  readonly requestId: string | undefined;

  constructor(init: { code: ErrorCode; status: number; message: string; details?: unknown; requestId?: string | undefined; cause?: unknown }) {
    super(`${init.code} (${init.status}): ${init.message}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.status = init.status;
    this.details = init.details;
    this.requestId = init.requestId;
  }

  /** Whether the called plugin cannot be reached right now (see `isTargetUnavailable`). */
  get targetUnavailable(): boolean {
    return isTargetUnavailable(this.code);
  }
}

/** The called plugin (through the gateway) answered with an error status of its own. */
export class PluginError extends Error {
  override readonly name = "PluginError";
  /** The plugin's status. */
  readonly status: number;
  /** The plugin's body, as text. */
  readonly body: string;
  /** The request id the hub gave the call. */
  readonly requestId: string | undefined;

  constructor(status: number, body: string, requestId: string | undefined) {
    super(`the plugin answered ${status}: ${body.slice(0, 500)}`);
    this.status = status;
    this.body = body;
    this.requestId = requestId;
  }
}

/** A required setting (hub URL, credential) is missing. */
export class SettingError extends Error {
  override readonly name = "SettingError";
}

/**
 * Reads a hub error answer, nested (`/api/v1`: `{"error":{"code","message","details"}}`) or flat
 * (the seed's `/api/plugin-gateway` routes: `{"error":"<message>","code":…, …details}`).
 */
export async function hubError(response: Response): Promise<PlexhubError> {
  const requestId = response.headers.get("x-request-id") ?? undefined;
  const text = await response.text().catch(() => "");
  let body: unknown = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: the message is the text
  }
  return errorFromBody(response.status, body, text, requestId, response.headers.get("x-plexhub-error"));
}

/** The error a parsed error body describes (see `hubError`). */
export function errorFromBody(
  status: number,
  body: unknown,
  text: string,
  requestId: string | undefined,
  headerCode?: string | null,
): PlexhubError {
  const object = isObject(body) ? body : {};
  const error = object["error"];
  if (isObject(error)) {
    return new PlexhubError({
      status,
      code: asString(error["code"]) ?? headerCode ?? "UNKNOWN",
      message: asString(error["message"]) ?? text,
      details: error["details"],
      requestId,
    });
  }
  const { error: message, code, success: _success, ...rest } = object;
  return new PlexhubError({
    status,
    code: asString(code) ?? headerCode ?? "UNKNOWN",
    message: asString(message) ?? (text || `HTTP ${status}`),
    details: Object.keys(rest).length > 0 ? rest : undefined,
    requestId,
  });
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function asString(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}
