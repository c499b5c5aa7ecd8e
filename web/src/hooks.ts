// Hooks the views share: listening to the live board, and refetching without piling up.

import { useEffect, useRef, useState } from "preact/hooks";
import { isAbort } from "./api";
import { type LiveMessage, onLive } from "./live";

/** Calls `listener` with every live board message while the component is mounted. */
export function useLive(listener: (message: LiveMessage) => void): void {
  const current = useRef(listener);
  current.current = listener;
  useEffect(() => onLive((message) => current.current(message)), []);
}

/**
 * A refresh that runs `load` at most once per `delay` ms burst of requests, aborts a load
 * still running when a newer one starts (its answer would be stale), and stops on unmount.
 * Returns the function that asks for a refresh.
 */
export function useRefresh(
  load: (signal: AbortSignal) => Promise<void>,
  delay = 150,
): (now?: boolean) => void {
  const current = useRef(load);
  current.current = load;
  const state = useRef<{
    timer?: ReturnType<typeof setTimeout> | undefined;
    running?: AbortController | undefined;
  }>({});
  useEffect(
    () => () => {
      clearTimeout(state.current.timer);
      state.current.running?.abort();
    },
    [],
  );
  const run = () => {
    state.current.timer = undefined;
    state.current.running?.abort();
    const controller = new AbortController();
    state.current.running = controller;
    current.current(controller.signal).catch((e: unknown) => {
      if (!isAbort(e)) throw e;
    });
  };
  const ask = useRef((now?: boolean) => {
    clearTimeout(state.current.timer);
    if (now) run();
    else state.current.timer = setTimeout(run, delay);
  });
  return ask.current;
}

export interface Action<A extends unknown[]> {
  busy: boolean;
  /** What the last run failed with, until the next run starts. */
  error: unknown;
  run(...args: A): Promise<void>;
}

/** Something the user does that calls the API: busy while it runs, its failure kept to show. */
export function useAction<A extends unknown[]>(act: (...args: A) => Promise<unknown>): Action<A> {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (...args: A) => {
    setBusy(true);
    setError(null);
    try {
      await act(...args);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run };
}
