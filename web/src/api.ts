// The gateway's public API. Every failure becomes an `ApiError` carrying the problem+json
// document (or the token endpoint's RFC 6749 error), so views can say what went wrong next to
// what caused it instead of showing a status code.

import type {
  Board,
  Booking,
  BookingStatus,
  Payments,
  Policy,
  Reservation,
  ReservationStatus,
  Seat,
  TimelineEntry,
  TokenResponse,
} from "./model";

export class ApiError extends Error {
  /** The HTTP status; 0 when the request never got an answer. */
  readonly status: number;
  /** The problem's slug (`seat-taken` from `/problems/seat-taken`), the OAuth2 `error` code,
   * or `network`. */
  readonly kind: string;
  readonly detail: string;
  /** The request field the problem is about, when the API says (`field`). */
  readonly field: string | undefined;
  readonly seatId: string | undefined;
  /** Seconds, from `Retry-After`. */
  readonly retryAfter: number | undefined;

  constructor(init: {
    status: number;
    kind: string;
    detail: string;
    field?: string | undefined;
    seatId?: string | undefined;
    retryAfter?: number | undefined;
  }) {
    super(init.detail);
    this.name = "ApiError";
    this.status = init.status;
    this.kind = init.kind;
    this.detail = init.detail;
    this.field = init.field;
    this.seatId = init.seatId;
    this.retryAfter = init.retryAfter;
  }
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** The slug of a problem type: `/problems/seat-taken` → `seat-taken`. */
export function problemSlug(type: string | undefined): string {
  if (!type) return "unknown";
  const slash = type.lastIndexOf("/");
  return slash >= 0 ? type.slice(slash + 1) : type;
}

async function errorOf(response: Response): Promise<ApiError> {
  const retry = Number(response.headers.get("retry-after"));
  const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : undefined;
  let body: Record<string, unknown> = {};
  try {
    body = (await response.json()) as Record<string, unknown>;
  } catch {
    // Not JSON (a proxy's HTML page): the status alone has to do.
  }
  const oauth = text(body.error);
  if (oauth) {
    return new ApiError({
      status: response.status,
      kind: `oauth-${oauth}`,
      detail: text(body.error_description) ?? oauth,
      retryAfter,
    });
  }
  return new ApiError({
    status: response.status,
    kind: problemSlug(text(body.type)),
    detail: text(body.detail) ?? text(body.title) ?? response.statusText,
    field: text(body.field),
    seatId: text(body.seatId),
    retryAfter,
  });
}

export interface RequestOptions {
  token?: string | undefined;
  json?: unknown;
  form?: Record<string, string>;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
}

/** Called with every 401 a signed-in request gets: the session is over. */
let onUnauthorized: (() => void) | undefined;

export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

export async function request<T>(
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json", ...options.headers };
  let body: string | undefined;
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form) {
    headers["content-type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(options.form).toString();
  }
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body ?? null,
      signal: options.signal ?? null,
      cache: "no-store",
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError({ status: 0, kind: "network", detail: String(e) });
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (error.status === 401 && options.token) onUnauthorized?.();
    throw error;
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

const q = encodeURIComponent;

export const api = {
  signIn: (username: string, password: string) =>
    request<TokenResponse>("POST", "/auth/token", {
      form: { grant_type: "password", username, password },
    }),

  signUp: (username: string, password: string, displayName: string) =>
    request<unknown>("POST", "/api/users", { json: { username, password, displayName } }),

  seats: (signal?: AbortSignal) => request<Seat[]>("GET", "/api/seats", { signal }),

  board: (at: string, token?: string, signal?: AbortSignal) =>
    request<Board>("GET", `/api/board?at=${q(at)}`, { token, signal }),

  reserve: (
    token: string,
    idempotencyKey: string,
    body: { seatId: string; startsAt: string; hours: number; paymentToken: string },
  ) =>
    request<{ reservationId: string; status: ReservationStatus }>("POST", "/api/reservations", {
      token,
      json: body,
      headers: { "idempotency-key": idempotencyKey },
    }),

  reservation: (token: string, id: string, signal?: AbortSignal) =>
    request<Reservation>("GET", `/api/reservations/${q(id)}`, { token, signal }),

  cancel: (token: string, id: string) =>
    request<unknown>("DELETE", `/api/reservations/${q(id)}`, { token }),

  myReservations: (token: string, signal?: AbortSignal) =>
    request<{ reservations: TimelineEntry[] }>("GET", "/api/my/reservations?limit=50", {
      token,
      signal,
    }),

  payments: (token: string, reservationId: string, signal?: AbortSignal) =>
    request<Payments>("GET", `/api/payments?reservationId=${q(reservationId)}`, {
      token,
      signal,
    }),

  /** Bookings of one status, or the newest of all when `status` is undefined. */
  bookings: (token: string, status: BookingStatus | undefined, signal?: AbortSignal) =>
    request<{ bookings: Booking[] }>(
      "GET",
      status
        ? `/api/admin/bookings?status=${status.toLowerCase()}&limit=500`
        : "/api/admin/bookings?limit=500",
      { token, signal },
    ),

  confirm: (token: string, id: string) =>
    request<Booking>("POST", `/api/admin/bookings/${q(id)}/confirm`, { token }),

  reject: (token: string, id: string, reason: string) =>
    request<Booking>("POST", `/api/admin/bookings/${q(id)}/reject`, { token, json: { reason } }),

  policy: (token: string, signal?: AbortSignal) =>
    request<Policy>("GET", "/api/admin/policy", { token, signal }),

  setPolicy: (token: string, autoConfirm: boolean) =>
    request<Policy>("PUT", "/api/admin/policy", { token, json: { autoConfirm } }),
};

/** A fresh idempotency key. `crypto.randomUUID` needs a secure context, which a cafe's LAN
 * address over plain HTTP is not; `getRandomValues` works everywhere. */
export function newIdempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Waits `ms`, or rejects with an AbortError when `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException("aborted", "AbortError"));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Asks `fetch` again, with growing pauses, until `done` holds for its answer, and returns the
 * last answer either way. For what no live event announces: a booking registration has not
 * stored yet, a refund the payment service is still making.
 */
export async function until<T>(
  fetchOnce: () => Promise<T>,
  done: (value: T) => boolean,
  signal?: AbortSignal,
  pauses: readonly number[] = [200, 400, 800, 1500, 2500, 4000, 6000, 10000],
): Promise<T> {
  let value = await fetchOnce();
  for (const pause of pauses) {
    if (done(value)) return value;
    await sleep(pause, signal);
    value = await fetchOnce();
  }
  return value;
}

export function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === "AbortError";
}
