// Deploy: edit or upload a manifest (or start from a listing), check it, and see its price on every provider,
// split into the provider's and the developers' parts, with the marketplace warning.

import type { Diagnostic } from "@trustedpods/protocol";
import { importCompose, looksLikeCompose } from "@trustedpods/protocol/compose";
import {
  type DeployProgress,
  deployFromBrowser,
  explainError,
  type ManifestQuote,
  podForBrowserDeploy,
  quoteManifest,
  type WebDeployResult,
  webPodSigner,
  webPolicy,
} from "@trustedpods/publisher";
import { useState } from "preact/hooks";
import { DRAFT_KEY, type PageProps } from "./page.js";
import { ActionButton, short } from "./ui.js";

const MAX_UPLOAD = 1024 * 1024;

export const EXAMPLE = `apiVersion: trustedpods/v1
kind: Pod
metadata:
  name: hello
spec:
  containers:
    - name: web
      image:
        ipfs: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi
        digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
      command: [/bin/busybox, httpd, -f, -p, "8080", -h, /www]
      ports:
        - name: web
          containerPort: 8080
          http: {}
      resources:
        cpu: 100m
        memory: 32Mi
`;

/** What importing a Compose file said: the same located warnings and errors as `tpod manifest import`. */
interface ComposeNotes {
  file: string;
  diagnostics: Diagnostic[];
  /** Services with build: (a browser cannot build their images). */
  builds: string[];
  imported: boolean;
}

export function DeployPage({ config, conn, getNode }: PageProps) {
  const [text, setText] = useState(() => sessionStorage.getItem(DRAFT_KEY) ?? EXAMPLE);
  const [quote, setQuote] = useState<ManifestQuote>();
  const [uploadError, setUploadError] = useState<string>();
  const [compose, setCompose] = useState<ComposeNotes>();
  const edit = (t: string) => {
    setText(t);
    setQuote(undefined);
    sessionStorage.setItem(DRAFT_KEY, t);
  };
  /** A Compose file becomes its manifest in the editor (with the import's notes); a manifest goes in as it is. */
  const accept = (t: string, file: string): string => {
    if (!looksLikeCompose(t)) {
      setCompose(undefined);
      edit(t);
      return t;
    }
    const r = importCompose(t, file);
    setCompose({
      file,
      diagnostics: r.diagnostics,
      builds: r.builds.map((b) => b.service),
      imported: r.manifest !== undefined,
    });
    edit(r.manifest ?? t);
    return r.manifest ?? t;
  };
  const upload = async (file: File | undefined) => {
    setUploadError(undefined);
    if (!file) return;
    if (file.size > MAX_UPLOAD) {
      setUploadError(`${file.name} is ${file.size} bytes; a manifest may be at most 1 MiB.`);
      return;
    }
    accept(await file.text(), file.name);
  };
  return (
    <section>
      <p class="lead">
        Write or upload a pod manifest (see docs/manifest.md) or a docker-compose file (imported into a
        manifest), then check it and compare prices. Prices come from the Registry and are computed here with
        the same math providers bill with.
      </p>
      <label class="field">
        <span>Manifest (YAML)</span>
        <textarea
          data-testid="manifest"
          rows={14}
          spellcheck={false}
          value={text}
          onInput={(e) => edit((e.target as HTMLTextAreaElement).value)}
        />
      </label>
      <label class="field">
        <span>or upload a file</span>
        <input
          type="file"
          accept=".yaml,.yml,.json"
          onChange={(e) => upload((e.target as HTMLInputElement).files?.[0])}
        />
      </label>
      {compose ? <ComposeView notes={compose} /> : null}
      {uploadError ? (
        <p class="error" role="alert">
          {uploadError}
        </p>
      ) : null}
      <ActionButton
        label="Check and price"
        busyLabel="Checking the manifest and reading provider prices…"
        testid="price"
        run={async () => {
          // Compose text pasted into the editor is imported first, as an uploaded Compose file is.
          const manifest = looksLikeCompose(text) ? accept(text, "compose.yaml") : text;
          const q = await quoteManifest(conn.context, manifest);
          setQuote(q);
          return undefined;
        }}
      />
      {quote ? <QuoteView quote={quote} /> : null}
      <DeployBox text={text} config={config} conn={conn} getNode={getNode} />
    </section>
  );
}

function ComposeView({ notes }: { notes: ComposeNotes }) {
  const errors = notes.diagnostics.filter((d) => d.severity === "error");
  const warnings = notes.diagnostics.filter((d) => d.severity !== "error");
  return (
    <div class="quote" data-testid="compose-import">
      <p>
        {notes.imported
          ? `Imported ${notes.file} into the manifest above (${warnings.length} warning(s)).`
          : `${notes.file} could not be imported: ${errors.length} problem(s).`}
      </p>
      {errors.length ? (
        <ul class="error" role="alert">
          {errors.map((d) => (
            <li key={`${d.line}:${d.col}:${d.message}`}>
              line {d.line}, column {d.col}: {d.message}
            </li>
          ))}
        </ul>
      ) : null}
      {warnings.length ? (
        <ul class="warnings">
          {warnings.map((d) => (
            <li key={`${d.line}:${d.col}:${d.message}`}>
              line {d.line}: {d.message}
            </li>
          ))}
        </ul>
      ) : null}
      {notes.imported && notes.builds.length ? (
        <p class="warn-box" role="note" data-testid="compose-builds">
          {`Services ${notes.builds.join(", ")} build their images: a browser cannot build or push them. Deploy this project with \`tpod deploy ${notes.file}\`, or push the images and name them as ipfs: images here.`}
        </p>
      ) : null}
    </div>
  );
}

function QuoteView({ quote }: { quote: ManifestQuote }) {
  const errors = quote.check.diagnostics.filter((d) => d.severity === "error");
  const warnings = quote.check.diagnostics.filter((d) => d.severity !== "error");
  return (
    <div class="quote" data-testid="quote">
      {errors.length ? (
        <div class="error" role="alert">
          <p>The manifest has {errors.length} problem(s); fix them and check again:</p>
          <ul>
            {errors.map((d) => (
              <li key={`${d.line}:${d.col}:${d.message}`}>
                line {d.line}, column {d.col}: {d.message}
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      {warnings.length ? (
        <ul class="warnings">
          {warnings.map((d) => (
            <li key={`${d.line}:${d.col}:${d.message}`}>
              line {d.line}: {d.message}
            </li>
          ))}
        </ul>
      ) : null}
      {quote.marketplaceWarning ? (
        <p class="warn-box" role="note" data-testid="market-warning">
          {quote.marketplaceWarning}
        </p>
      ) : null}
      {quote.pod ? (
        quote.rows.length === 0 ? (
          <p class="empty">No provider is registered on this chain.</p>
        ) : (
          <div class="table-wrap">
            <table class="stack">
              <thead>
                <tr>
                  <th>Provider</th>
                  <th>Per hour</th>
                  <th>Provider gets</th>
                  <th>Developer gets</th>
                </tr>
              </thead>
              <tbody>
                {quote.rows.map((r) => (
                  <tr key={r.offer.address} data-testid="quote-row">
                    <td data-label="Provider">
                      {r.offer.name || short(r.offer.address)}
                      {r.offer.fits ? null : <div class="muted">cannot take this pod: {r.offer.reason}</div>}
                    </td>
                    <td data-label="Per hour">{r.perHour ?? "—"}</td>
                    <td data-label="Provider gets">{r.providerPerHour ?? "—"}</td>
                    <td data-label="Developer gets">{r.developerPerHour ?? "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : null}
    </div>
  );
}

/** A warning or a price line the deploy flow reports along the way (not a step). */
const isNote = (p: DeployProgress) => /^(warning|price): /.test(p.message);

/** Fund and deploy with a progress list; the result links the pod's endpoints and My pods. */
function DeployBox({ text, config, conn, getNode }: PageProps & { text: string }) {
  const [funds, setFunds] = useState("");
  const [steps, setSteps] = useState<DeployProgress[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [done, setDone] = useState<WebDeployResult>();
  const run = async () => {
    setBusy(true);
    setSteps([]);
    setError(undefined);
    setDone(undefined);
    try {
      const result = await deployFromBrowser({
        pod: podForBrowserDeploy(text),
        clients: conn,
        signer: webPodSigner(conn.walletClient),
        node: await getNode(),
        policy: webPolicy(config),
        networkName: config.name,
        ...(funds.trim() ? { funds } : {}),
        onProgress: (p) =>
          // A step's "done" replaces its "start"; warnings and price lines stay.
          setSteps((prev) => [
            ...prev.filter((x) => isNote(x) || !(x.step === p.step && p.phase === "done")),
            p,
          ]),
      });
      setDone(result);
    } catch (err) {
      setError(explainError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="notice" data-testid="deploy-box">
      <h2>Fund and deploy</h2>
      <p class="muted">
        From the browser: images must already be on IPFS (ipfs: CID with its digest) or be marketplace
        listings, and secrets must not come from files. For local images use <code>tpod deploy pod.yaml</code>
        .
      </p>
      <label class="inline">
        Funds{" "}
        <input
          data-testid="funds"
          inputMode="decimal"
          size={10}
          placeholder="provider's minimum"
          value={funds}
          onInput={(e) => setFunds((e.target as HTMLInputElement).value)}
        />
      </label>{" "}
      <button type="button" data-testid="deploy" disabled={busy || !conn.walletClient} onClick={run}>
        {busy ? "Deploying…" : "Fund and deploy"}
      </button>
      {steps.length ? (
        <ol class="steps" data-testid="deploy-steps">
          {steps.map((p) => (
            <li key={`${p.step}:${p.message}`} class={isNote(p) ? "note" : p.phase}>
              {isNote(p) ? "" : p.phase === "done" ? "✓ " : "… "}
              {p.message}
            </li>
          ))}
        </ol>
      ) : null}
      {error ? (
        <p class="error" role="alert" data-testid="deploy-error">
          {error}
        </p>
      ) : null}
      {done ? (
        <div class="ok" role="status" data-testid="deploy-done" data-pod={done.podId}>
          <p>
            Deployed <span class="mono">{short(done.podId, 8)}</span>. See it under{" "}
            <a href="#/pods">My pods</a>.
          </p>
          {done.marketplace ? (
            <ul class="warnings" data-testid="deploy-breakdown">
              {done.marketplace.breakdown.map((line) => (
                <li key={line}>{line}</li>
              ))}
            </ul>
          ) : null}
          {done.endpoints.http.map((u) => (
            <div key={u}>
              <a href={u} target="_blank" rel="noreferrer">
                {u}
              </a>
            </div>
          ))}
        </div>
      ) : null}
    </div>
  );
}
