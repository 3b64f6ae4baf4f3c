// Small shared pieces: an async loader with progress and actionable errors, and a button that runs a long step.
import { explainError } from "@trustedpods/publisher";
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";

export type Loaded<T> =
  | { state: "loading" }
  | { state: "error"; message: string }
  | { state: "done"; value: T };

/** Runs `load` when `deps` change; `reload()` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): [Loaded<T>, () => void] {
  const [result, setResult] = useState<Loaded<T>>({ state: "loading" });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setResult({ state: "loading" });
    load().then(
      (value) => live && setResult({ state: "done", value }),
      (err) => live && setResult({ state: "error", message: explainError(err) }),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return [result, useCallback(() => setN((x) => x + 1), [])];
}

export function Show<T>(props: { loaded: Loaded<T>; what: string; children: (v: T) => ComponentChildren }) {
  const l = props.loaded;
  if (l.state === "loading") return <p class="progress">Loading {props.what}…</p>;
  if (l.state === "error")
    return (
      <p class="error" role="alert">
        Could not load {props.what}: {l.message}
      </p>
    );
  return <>{props.children(l.value)}</>;
}

/** A button for a long step: disabled while running, shows progress text, then the result or an error. */
export function ActionButton(props: {
  label: string;
  busyLabel: string;
  run: () => Promise<string | undefined>;
  disabled?: boolean;
  testid?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string }>();
  const onClick = async () => {
    setBusy(true);
    setOutcome(undefined);
    try {
      const text = await props.run();
      setOutcome(text ? { ok: true, text } : undefined);
    } catch (err) {
      setOutcome({ ok: false, text: explainError(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="action">
      <button type="button" disabled={busy || props.disabled} onClick={onClick} data-testid={props.testid}>
        {busy ? props.busyLabel : props.label}
      </button>
      {busy ? <span class="progress"> {props.busyLabel}</span> : null}
      {outcome ? (
        <span class={outcome.ok ? "ok" : "error"} role={outcome.ok ? "status" : "alert"}>
          {" "}
          {outcome.text}
        </span>
      ) : null}
    </span>
  );
}

export function short(hex: string, n = 6): string {
  return hex.length > 2 * n + 2 ? `${hex.slice(0, n + 2)}…${hex.slice(-n)}` : hex;
}
