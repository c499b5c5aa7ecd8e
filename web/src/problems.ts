// An API failure as a sentence for the person who caused it.

import { ApiError } from "./api";
import type { Locale, Messages } from "./messages";

/** Kinds whose server-side detail says more than the app's own sentence (in English). */
const DETAILED = new Set([
  "invalid-field",
  "hours-out-of-range",
  "starts-too-far-ahead",
  "malformed-request",
  "unknown",
]);

export function humanError(t: Messages, locale: Locale, error: unknown): string {
  if (!(error instanceof ApiError)) return t.errors.unknown ?? "";
  if (error.kind === "oauth-invalid_grant") {
    return error.status === 429 && error.retryAfter
      ? t.lockedOut(error.retryAfter)
      : t.wrongPassword;
  }
  const sentence = t.errors[error.kind] ?? t.errors[statusKind(error.status)] ?? t.errors.unknown;
  if (locale === "en" && DETAILED.has(error.kind) && error.detail) {
    return `${sentence} (${error.detail})`;
  }
  return sentence ?? "";
}

function statusKind(status: number): string {
  switch (status) {
    case 0:
      return "network";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not-found";
    case 429:
      return "rate-limited";
    case 502:
      return "bad-gateway";
    case 503:
      return "upstream-unavailable";
    case 504:
      return "upstream-timeout";
    default:
      return "unknown";
  }
}

/** The request field an error is about (`field` of the problem), if any. */
export function errorField(error: unknown): string | undefined {
  return error instanceof ApiError ? error.field : undefined;
}
