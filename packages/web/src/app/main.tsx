// Entry: loads config.json (served next to the app), then renders the app.
import { explainError, parseWebAppConfig } from "@trustedpods/publisher";
import { render } from "preact";
import { App } from "./app.js";
import "./style.css";

async function start(root: HTMLElement): Promise<void> {
  try {
    const res = await fetch("./config.json", { cache: "no-store" });
    if (!res.ok)
      throw new Error(
        `config.json answered HTTP ${res.status}: serve the app with serveWebApp or tpod devnet up`,
      );
    const config = parseWebAppConfig(await res.text());
    root.textContent = ""; // Preact keeps unknown children: drop the loading text
    render(<App config={config} />, root);
  } catch (err) {
    root.textContent = "";
    render(
      <main class="page">
        <h1>Trusted Pods</h1>
        <p class="error" role="alert">
          Cannot start: {explainError(err)}
        </p>
      </main>,
      root,
    );
  }
}

void start(document.getElementById("app")!);
