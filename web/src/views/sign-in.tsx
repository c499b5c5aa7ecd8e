// Sign in (the OAuth2 password grant) and sign up (`POST /api/users`, then signed in).

import { useState } from "preact/hooks";
import { ApiError, api } from "../api";
import { useI18n } from "../i18n";
import { errorField, humanError } from "../problems";
import { href, navigate } from "../route";
import { isAdmin, type Session, sessionEnded, signIn } from "../session";
import { useStore } from "../store";

function afterSignIn(session: Session): void {
  navigate(isAdmin(session) ? "admin" : "seats");
}

export function SignInPage() {
  const { t, locale } = useI18n();
  const ended = useStore(sessionEnded);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      afterSignIn(await signIn(username, password));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="narrow">
      <h1>{t.signInTitle}</h1>
      {ended ? <p class="notice">{t.sessionExpired}</p> : null}
      <form class="card" onSubmit={(e) => void submit(e)}>
        <div class="field">
          <label for="signin-username">{t.username}</label>
          <input
            id="signin-username"
            name="username"
            autocomplete="username"
            required
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="signin-password">{t.password}</label>
          <input
            id="signin-password"
            name="password"
            type="password"
            autocomplete="current-password"
            required
            value={password}
            aria-invalid={!!error}
            aria-describedby={error ? "signin-error" : undefined}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </div>
        {error ? (
          <p id="signin-error" class="notice error" role="alert">
            {humanError(t, locale, error)}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? t.working : t.signIn}
        </button>
      </form>
      <p>
        {t.noAccount} <a href={href("signup")}>{t.signUp}</a>
      </p>
    </div>
  );
}

export function SignUpPage() {
  const { t, locale } = useI18n();
  const [username, setUsername] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.signUp(username, password, displayName);
      afterSignIn(await signIn(username, password));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  // A problem about one field is shown under it; anything else under the button.
  const field =
    errorField(error) ??
    (error instanceof ApiError && error.kind === "username-taken" ? "username" : undefined);
  const message = error ? humanError(t, locale, error) : "";
  const fieldError = (name: string, id: string) =>
    field === name ? (
      <p id={id} class="field-error" role="alert">
        {message}
      </p>
    ) : null;

  return (
    <div class="narrow">
      <h1>{t.signUpTitle}</h1>
      <form class="card" onSubmit={(e) => void submit(e)}>
        <div class="field">
          <label for="signup-username">{t.username}</label>
          <input
            id="signup-username"
            name="username"
            autocomplete="username"
            required
            minLength={3}
            maxLength={32}
            value={username}
            aria-invalid={field === "username"}
            aria-describedby="signup-username-hint signup-username-error"
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
          <p id="signup-username-hint" class="hint">
            {t.usernameHint}
          </p>
          {fieldError("username", "signup-username-error")}
        </div>
        <div class="field">
          <label for="signup-name">{t.displayName}</label>
          <input
            id="signup-name"
            name="displayName"
            autocomplete="name"
            required
            value={displayName}
            aria-invalid={field === "displayName"}
            aria-describedby="signup-name-error"
            onInput={(e) => setDisplayName(e.currentTarget.value)}
          />
          {fieldError("displayName", "signup-name-error")}
        </div>
        <div class="field">
          <label for="signup-password">{t.password}</label>
          <input
            id="signup-password"
            name="password"
            type="password"
            autocomplete="new-password"
            required
            minLength={8}
            value={password}
            aria-invalid={field === "password"}
            aria-describedby="signup-password-hint signup-password-error"
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
          <p id="signup-password-hint" class="hint">
            {t.passwordHint}
          </p>
          {fieldError("password", "signup-password-error")}
        </div>
        {error && !field ? (
          <p class="notice error" role="alert">
            {message}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? t.working : t.signUp}
        </button>
      </form>
      <p>
        {t.haveAccount} <a href={href("signin")}>{t.signIn}</a>
      </p>
    </div>
  );
}
