// What every page gets from the shell (app.tsx), in its own module so pages do not import the shell back.
import type { P2PNode } from "@trustedpods/p2p/browser";
import type { WebAppConfig, WebConnection } from "@trustedpods/publisher";

export interface PageProps {
  config: WebAppConfig;
  conn: WebConnection;
  getNode: () => Promise<P2PNode>;
}

/** sessionStorage key of the manifest being written on the deploy page ("Deploy this" on a listing sets it). */
export const DRAFT_KEY = "tpod.deploy.draft";
