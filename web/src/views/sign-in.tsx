// Sign in (the OAuth2 password grant) and sign up (`POST /api/users`, then signed in).

import { useState } from "preact/hooks";
import { ApiError, api } from "../api";
import { useAction } from "../hooks";
import { useI18n } from "../i18n";
import { errorField, humanError } from "../problems";
import { href, navigate } from "../route";
import { isAdmin, type Session, sessionEnded, signIn } from "../session";
import { useStore } from "../store";
import { ErrorNotice, FormPage, TextField } from "./parts";

function afterSignIn(session: Session): void {
  navigate(isAdmin(session) ? "admin" : "seats");
}

export function SignInPage() {
  const { t, locale } = useI18n();
  const ended = useStore(sessionEnded);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const submit = useAction(async () => afterSignIn(await signIn(username, password)));

  return (
    <FormPage
      title={t.signInTitle}
      submitLabel={t.signIn}
      busy={submit.busy}
      onSubmit={() => void submit.run()}
      notice={ended ? <p class="notice">{t.sessionExpired}</p> : null}
      footer={
        <>
          {t.noAccount} <a href={href("signup")}>{t.signUp}</a>
        </>
      }
    >
      <TextField
        id="signin-username"
        label={t.username}
        name="username"
        autocomplete="username"
        value={username}
        onValue={setUsername}
      />
      <TextField
        id="signin-password"
        label={t.password}
        name="password"
        type="password"
        autocomplete="current-password"
        value={password}
        onValue={setPassword}
        error={submit.error ? humanError(t, locale, submit.error) : undefined}
      />
    </FormPage>
  );
}

export function SignUpPage() {
  const { t, locale } = useI18n();
  const [username, setUsername] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [password, setPassword] = useState("");
  const submit = useAction(async () => {
    await api.signUp(username, password, displayName);
    afterSignIn(await signIn(username, password));
  });
  const error = submit.error;

  // A problem about one field is shown under it; anything else under the button.
  const field =
    errorField(error) ??
    (error instanceof ApiError && error.kind === "username-taken" ? "username" : undefined);
  const message = error ? humanError(t, locale, error) : "";
  const fieldError = (name: string) => (field === name ? message : undefined);

  return (
    <FormPage
      title={t.signUpTitle}
      submitLabel={t.signUp}
      busy={submit.busy}
      onSubmit={() => void submit.run()}
      footer={
        <>
          {t.haveAccount} <a href={href("signin")}>{t.signIn}</a>
        </>
      }
    >
      <TextField
        id="signup-username"
        label={t.username}
        name="username"
        autocomplete="username"
        minLength={3}
        maxLength={32}
        value={username}
        onValue={setUsername}
        hint={t.usernameHint}
        error={fieldError("username")}
      />
      <TextField
        id="signup-name"
        label={t.displayName}
        name="displayName"
        autocomplete="name"
        value={displayName}
        onValue={setDisplayName}
        error={fieldError("displayName")}
      />
      <TextField
        id="signup-password"
        label={t.password}
        name="password"
        type="password"
        autocomplete="new-password"
        minLength={8}
        value={password}
        onValue={setPassword}
        hint={t.passwordHint}
        error={fieldError("password")}
      />
      {field ? null : <ErrorNotice error={error} />}
    </FormPage>
  );
}
