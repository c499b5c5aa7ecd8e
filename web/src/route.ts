// Hash routes (`#/my`): the gateway serves files, not an app shell for every path, so the
// route lives after the `#` and a reload lands on the same screen.

import { store } from "./store";

export type Route = "seats" | "mine" | "admin" | "signin" | "signup";

const PATHS: Record<Route, string> = {
  seats: "#/",
  mine: "#/my",
  admin: "#/admin",
  signin: "#/signin",
  signup: "#/signup",
};

export function routeOf(hash: string): Route {
  const path = hash.replace(/^#\/?/, "").replace(/\/+$/, "");
  const routes = Object.keys(PATHS) as Route[];
  return routes.find((r) => PATHS[r].replace(/^#\/?/, "") === path) ?? "seats";
}

export const route = store<Route>(routeOf(location.hash));

window.addEventListener("hashchange", () => route.set(routeOf(location.hash)));

export const href = (to: Route): string => PATHS[to];

export function navigate(to: Route): void {
  if (location.hash !== PATHS[to]) location.hash = PATHS[to];
  else route.set(to);
}
