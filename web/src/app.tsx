import { useEffect, useRef } from "preact/hooks";
import { locale, useI18n } from "./i18n";
import { liveState, onLive } from "./live";
import { LOCALES, type Locale } from "./messages";
import { href, navigate, type Route, route } from "./route";
import { isAdmin, isCustomer, session, sessionEnded, signOut } from "./session";
import { useStore } from "./store";
import { AdminPage } from "./views/admin";
import { MinePage } from "./views/mine";
import { SeatsPage } from "./views/seats";
import { SignInPage, SignUpPage } from "./views/sign-in";

const LANGUAGE_NAMES: Record<Locale, string> = { ko: "한국어", en: "English" };

export function App() {
  const { t } = useI18n();
  const current = useStore(route);
  const user = useStore(session);
  const language = useStore(locale);
  const ended = useStore(sessionEnded);
  const main = useRef<HTMLElement>(null);

  // The stream stays open on every screen, so the badge tells the truth everywhere.
  useEffect(() => onLive(() => {}), []);

  // A new screen moves focus to it, so keyboard and screen reader users start there.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.focus();
  }, [current]);

  const link = (to: Route, label: string) => (
    <a href={href(to)} aria-current={current === to ? "page" : undefined}>
      {label}
    </a>
  );

  return (
    <>
      <button type="button" class="skip" onClick={() => main.current?.focus()}>
        {t.skipToContent}
      </button>
      <header class="top">
        <a class="brand" href={href("seats")}>
          {t.appName}
        </a>
        <nav aria-label={t.appName}>
          {link("seats", t.navSeats)}
          {isCustomer(user) && link("mine", t.navMine)}
          {isAdmin(user) && link("admin", t.navAdmin)}
        </nav>
        <div class="tools">
          <LiveBadge />
          <label class="language">
            <span class="visually-hidden">{t.language}</span>
            <select
              id="language"
              value={language}
              onChange={(e) => locale.set(e.currentTarget.value as Locale)}
            >
              {LOCALES.map((l) => (
                <option key={l} value={l} lang={l}>
                  {LANGUAGE_NAMES[l]}
                </option>
              ))}
            </select>
          </label>
          {user ? (
            <span class="account">
              <span title={t.signedInAs(user.username)}>{user.username}</span>
              <button
                type="button"
                class="link"
                onClick={() => {
                  signOut();
                  navigate("seats");
                }}
              >
                {t.signOut}
              </button>
            </span>
          ) : (
            <a class="button small" href={href("signin")}>
              {t.signIn}
            </a>
          )}
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {ended && current !== "signin" ? (
          <p class="notice" role="alert">
            {t.sessionExpired} <a href={href("signin")}>{t.signIn}</a>
          </p>
        ) : null}
        {current === "seats" && <SeatsPage />}
        {current === "mine" && <MinePage />}
        {current === "admin" && <AdminPage />}
        {current === "signin" && <SignInPage />}
        {current === "signup" && <SignUpPage />}
      </main>
    </>
  );
}

function LiveBadge() {
  const { t } = useI18n();
  const state = useStore(liveState);
  const text = state === "live" ? t.live : state === "down" ? t.reconnecting : t.connecting;
  return (
    <output class={`live live-${state}`} aria-live="polite">
      {text}
    </output>
  );
}
