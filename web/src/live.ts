// One connection to `GET /api/board/stream` for the whole page, shared by every view.
//
// A view hears each `board-changed` event, and a `resync` whenever it may have missed some:
// when the server says so, and whenever the connection (re)opens, since events sent while it
// was down are gone. On a resync a view refetches what it shows, so it never keeps a board
// with a silent gap.

import type { BoardChange } from "./model";
import { store } from "./store";

export type LiveState = "connecting" | "live" | "down";

export type LiveMessage = { kind: "change"; change: BoardChange } | { kind: "resync" };

export const liveState = store<LiveState>("connecting");

const listeners = new Set<(message: LiveMessage) => void>();
let source: EventSource | undefined;
let retry: ReturnType<typeof setTimeout> | undefined;
let retryDelay = 1000;

function emit(message: LiveMessage): void {
  for (const listener of [...listeners]) listener(message);
}

function connect(): void {
  liveState.set("connecting");
  const next = new EventSource("/api/board/stream");
  source = next;
  next.onopen = () => {
    retryDelay = 1000;
    liveState.set("live");
    emit({ kind: "resync" });
  };
  next.addEventListener("board-changed", (event) => {
    try {
      emit({ kind: "change", change: JSON.parse((event as MessageEvent<string>).data) });
    } catch {
      // A change the app cannot read: refetching is always safe.
      emit({ kind: "resync" });
    }
  });
  next.addEventListener("resync", () => emit({ kind: "resync" }));
  next.onerror = () => {
    liveState.set("down");
    // The browser reconnects by itself after a dropped connection; it gives up only when the
    // answer was not a stream (a gateway error page). Then reconnect here, backing off.
    if (next.readyState === EventSource.CLOSED && source === next) {
      next.close();
      source = undefined;
      retry = setTimeout(() => {
        retry = undefined;
        connect();
      }, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30_000);
    }
  };
}

/** Listens to the live board until the returned function is called. */
export function onLive(listener: (message: LiveMessage) => void): () => void {
  listeners.add(listener);
  if (!source && retry === undefined) connect();
  return () => {
    listeners.delete(listener);
  };
}

/** Closes the stream (the page is going away). */
export function closeLive(): void {
  if (retry !== undefined) clearTimeout(retry);
  retry = undefined;
  source?.close();
  source = undefined;
}
