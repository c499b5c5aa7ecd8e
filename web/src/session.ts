// The signed-in user. The access token lives in this tab's sessionStorage only: never in a
// cookie (no other site's request can carry it), gone when the tab closes, and a reload keeps
// the user signed in. What the token says about the user is read for display and routing only;
// every service checks the token itself.

import { api, setUnauthorizedHandler } from "./api";
import { store } from "./store";

export interface Session {
  token: string;
  username: string;
  roles: readonly string[];
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

const KEY = "studycafe.session";

interface Claims {
  sub?: unknown;
  preferred_username?: unknown;
  roles?: unknown;
  exp?: unknown;
}

/** The claims of a JWT, unverified. */
export function claimsOf(token: string): Claims {
  const payload = token.split(".")[1];
  if (!payload) return {};
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "="));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) as Claims;
  } catch {
    return {};
  }
}

export function sessionOf(token: string, expiresIn: number, fallbackName: string): Session {
  const claims = claimsOf(token);
  const roles = Array.isArray(claims.roles)
    ? claims.roles.filter((r): r is string => typeof r === "string")
    : [];
  const exp = typeof claims.exp === "number" ? claims.exp * 1000 : Date.now() + expiresIn * 1000;
  const username =
    typeof claims.preferred_username === "string" ? claims.preferred_username : fallbackName;
  return { token, username, roles, expiresAt: exp };
}

function load(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const session = JSON.parse(raw) as Session;
    return session.expiresAt > Date.now() ? session : null;
  } catch {
    return null;
  }
}

export const session = store<Session | null>(load());

/** Set when the API turned the token down, so the sign-in page can say why. */
export const sessionEnded = store(false);

session.subscribe((value) => {
  if (value) sessionStorage.setItem(KEY, JSON.stringify(value));
  else sessionStorage.removeItem(KEY);
});

setUnauthorizedHandler(() => {
  if (session.get()) {
    sessionEnded.set(true);
    session.set(null);
  }
});

export async function signIn(username: string, password: string): Promise<Session> {
  const answer = await api.signIn(username.trim(), password);
  const value = sessionOf(answer.access_token, answer.expires_in, username.trim());
  sessionEnded.set(false);
  session.set(value);
  return value;
}

export function signOut(): void {
  sessionEnded.set(false);
  session.set(null);
}

export const isAdmin = (s: Session | null): boolean => !!s?.roles.includes("admin");
export const isCustomer = (s: Session | null): boolean => !!s?.roles.includes("customer");
