// Small pieces the screens share.

import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { useI18n } from "../i18n";
import { humanError } from "../problems";

/** An API failure as a sentence, announced to screen readers; nothing without one. */
export function ErrorNotice(props: { error: unknown; id?: string }) {
  const { t, locale } = useI18n();
  if (!props.error) return null;
  return (
    <p id={props.id} class="notice error" role="alert">
      {humanError(t, locale, props.error)}
    </p>
  );
}

/** Cancelling a reservation, asked twice: the first press only asks to be sure. */
export function CancelButton(props: { busy: boolean; onCancel(): void }) {
  const { t } = useI18n();
  const [confirming, setConfirming] = useState(false);
  if (confirming) {
    return (
      <>
        <span>{t.confirmCancel}</span>
        <button
          type="button"
          class="danger"
          onClick={() => {
            setConfirming(false);
            props.onCancel();
          }}
        >
          {t.cancel}
        </button>
        <button type="button" onClick={() => setConfirming(false)}>
          {t.back}
        </button>
      </>
    );
  }
  return (
    <button type="button" class="danger" disabled={props.busy} onClick={() => setConfirming(true)}>
      {props.busy ? t.cancelling : t.cancel}
    </button>
  );
}

/** A labelled text input with an optional hint and the error about it, both tied to it. */
export function TextField(props: {
  id: string;
  label: string;
  name: string;
  type?: "text" | "password";
  autocomplete: string;
  minLength?: number;
  maxLength?: number;
  value: string;
  onValue(value: string): void;
  hint?: string;
  /** The message, when the last problem was about this field. */
  error?: string | undefined;
}) {
  const { id, hint, error } = props;
  const described = [hint ? `${id}-hint` : "", error ? `${id}-error` : ""].filter(Boolean);
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        {...(props.type === "password" ? { type: "password" as const } : {})}
        autocomplete={props.autocomplete}
        required
        minLength={props.minLength}
        maxLength={props.maxLength}
        value={props.value}
        aria-invalid={!!error}
        aria-describedby={described.length ? described.join(" ") : undefined}
        onInput={(e) => props.onValue(e.currentTarget.value)}
      />
      {hint ? (
        <p id={`${id}-hint`} class="hint">
          {hint}
        </p>
      ) : null}
      {error ? (
        <p id={`${id}-error`} class="field-error" role="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
}

/** A page with one form: a heading, the fields, the button, and a line under the form. */
export function FormPage(props: {
  title: string;
  submitLabel: string;
  busy: boolean;
  onSubmit(): void;
  notice?: ComponentChildren;
  footer: ComponentChildren;
  children: ComponentChildren;
}) {
  const { t } = useI18n();
  return (
    <div class="narrow">
      <h1>{props.title}</h1>
      {props.notice}
      <form
        class="card"
        onSubmit={(e) => {
          e.preventDefault();
          props.onSubmit();
        }}
      >
        {props.children}
        <button type="submit" class="primary" disabled={props.busy}>
          {props.busy ? t.working : props.submitLabel}
        </button>
      </form>
      <p>{props.footer}</p>
    </div>
  );
}
