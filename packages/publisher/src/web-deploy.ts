// Deploy from a browser: the same steps as the Node deploy() (provider, attestation, signed quote, deposit,
// channel, signed provision) for pods whose images are already on IPFS (by CID and digest) or marketplace
// listings. A browser has no Podman store to push from and no files to read: local images and file secrets are
// refused up front with what to do. Browser-safe.
import type { Libp2p } from "@libp2p/interface";
import type { Policy } from "@trustedpods/attestation";
import { ensureAllowance, openChannel } from "@trustedpods/chain";
import { callSignedUnary } from "@trustedpods/p2p/browser";
import {
  checkManifest,
  type Pod,
  ProvisionRequestSchema,
  ProvisionResponseSchema,
  podToWire,
} from "@trustedpods/protocol";
import { type Address, bytesToHex, type Hex, hexToBytes } from "viem";
import { PublisherError } from "./errors.js";
import { formatAmount } from "./format.js";
import type { NetworkClients } from "./network.js";
import {
  depositFor,
  describeTerms,
  endpointsFromWire,
  type PodConnection,
  type PodEndpoints,
  podConnection,
  providerError,
  type QuotedTerms,
  requestQuote,
  waitForConfirmations,
} from "./pod-ops.js";
import { whileProviderLags } from "./provider-lag.js";
import {
  cheapestOffer,
  getOffer,
  listOffers,
  parseTokenAmount,
  priceOffers,
  tokenInfo,
} from "./providers.js";
import { chainReleaseCheck } from "./releases.js";
import { verifyProvider } from "./verify.js";

export type WebDeployStep = "check" | "provider" | "attest" | "quote" | "channel" | "provision";

export interface WebDeployProgress {
  step: WebDeployStep;
  state: "start" | "done";
  message: string;
}

export interface WebDeployOptions {
  pod: Pod;
  clients: NetworkClients;
  signer: PodConnection["signer"];
  node: Libp2p;
  policy: Policy;
  /** A registered provider instead of the cheapest that fits. */
  provider?: Address;
  /**
   * Decimal amount in the provider's token; default: the provider's quoted minimum run time plus a margin.
   * Less than that minimum is refused (DEPOSIT_TOO_SMALL) before anything is approved or opened.
   */
  funds?: string;
  /** How the user sets `funds`, named in DEPOSIT_TOO_SMALL's fix; default "the Funds field". */
  fundsFlag?: string;
  /** How long to wait for the quoted confirmations of the channel before provisioning; default 60 s. */
  confirmationTimeoutMs?: number;
  onProgress?: (p: WebDeployProgress) => void;
}

export interface WebDeployResult {
  podId: Hex;
  provider: Address;
  channel: Hex;
  endpoints: PodEndpoints;
  deposit: bigint;
  /** The provider's terms from its quote (minimum paid time, confirmations, notice). */
  terms: QuotedTerms;
}

/** Why a pod cannot be deployed from a browser, or undefined when it can. */
export function browserDeployBlocker(pod: Pod): string | undefined {
  for (const c of pod.containers) {
    if (c.env.some((e) => e.kind === "secret"))
      return `container "${c.name}" takes a secret in its environment: the browser deploy does not upload secrets yet. Use \`tpod deploy\`.`;
    if (c.image.kind === "local")
      return `container "${c.name}" uses a local image: a browser cannot push it. Push it with \`tpod deploy\` (or reference it as ipfs: CID with its digest).`;
  }
  for (const v of pod.volumes) {
    if (v.kind === "secret" && v.source.kind === "file")
      return `volume "${v.name}" reads a secret from a file: a browser cannot. Use \`tpod deploy\` for this pod.`;
  }
  return undefined;
}

/** The manifest as a pod the browser can deploy, or a PublisherError saying what to fix (line by line). */
export function podForBrowserDeploy(text: string, file = "pod.yaml"): Pod {
  const check = checkManifest(text, file);
  if (!check.pod) {
    const first = check.diagnostics
      .filter((d) => d.severity === "error")
      .slice(0, 3)
      .map((d) => `line ${d.line}: ${d.message}`)
      .join("; ");
    throw new PublisherError("POD_RECORD", `the manifest has problems (${first}): fix them and retry`);
  }
  const blocker = browserDeployBlocker(check.pod);
  if (blocker) throw new PublisherError("NO_PROVIDER_FITS", blocker);
  return check.pod;
}

export async function deployFromBrowser(o: WebDeployOptions): Promise<WebDeployResult> {
  const say = (step: WebDeployStep, state: "start" | "done", message: string) =>
    o.onProgress?.({ step, state, message });
  const blocker = browserDeployBlocker(o.pod);
  if (blocker) throw new PublisherError("NO_PROVIDER_FITS", blocker);
  const ctx = o.clients.context;
  const publisher = o.signer.address;
  const podId = bytesToHex(crypto.getRandomValues(new Uint8Array(32)));

  say(
    "provider",
    "start",
    o.provider ? `reading provider ${o.provider}` : "choosing the cheapest provider that fits",
  );
  const offer = o.provider
    ? await getOffer(ctx, o.provider)
    : cheapestOffer(priceOffers(await listOffers(ctx), o.pod));
  const token = await tokenInfo(o.clients.publicClient, offer.pricing.token);
  say("provider", "done", `provider ${offer.name || offer.address}`);

  say("attest", "start", `verifying ${offer.name || offer.address}'s attestation in this browser`);
  const releases = chainReleaseCheck(ctx, "this network", offer.release);
  const att = await verifyProvider({
    node: o.node,
    multiaddrs: offer.multiaddrs,
    policy: o.policy,
    ...(releases ? { releases } : {}),
  });
  say(
    "attest",
    "done",
    `attested: ${att.evidence.tee}${att.insecure ? " (no TEE: accepted on the devnet only)" : ""}` +
      (att.release ? `, release ${att.release.release.version}` : ""),
  );

  const conn = podConnection(o.node, { provider: offer.address, chainId: o.clients.chainId }, o.signer, [
    ...offer.multiaddrs,
  ]);
  say("quote", "start", "asking the provider for a signed quote");
  const quote = await requestQuote(conn, { pod: o.pod, podId, publisher, payments: ctx.addresses.payments });
  say(
    "quote",
    "done",
    `price ${formatAmount(quote.quote.ratePerSecond * 3600n, token)} per hour; ${describeTerms(quote.terms, quote.quote.ratePerSecond, (a) => formatAmount(a, token))}`,
  );

  let funds: bigint | undefined;
  if (o.funds !== undefined && o.funds.trim() !== "") {
    try {
      funds = parseTokenAmount(o.funds, token.decimals);
    } catch (err) {
      throw new PublisherError("INVALID_AMOUNT", `funds: ${(err as Error).message}`, { field: "funds" });
    }
  }
  // Refused here, before the approval and the channel: a deposit the provider would refuse moves no money.
  const deposit = depositFor({
    ratePerSecond: quote.quote.ratePerSecond,
    ...(funds !== undefined ? { funds } : {}),
    minDepositSeconds: quote.terms.minDepositSeconds,
    decimals: token.decimals,
    symbol: token.symbol,
    fundsFlag: o.fundsFlag ?? "the Funds field",
  });
  say("channel", "start", `approving and opening the payment channel with ${formatAmount(deposit, token)}`);
  await ensureAllowance(ctx, token.address, deposit);
  const channel = await openChannel(ctx, {
    quote: quote.quote,
    quoteSignature: quote.signature,
    podId,
    deposit,
    noticeSeconds: quote.quote.minNoticeSeconds,
    // Exactly the list the provider signed (one entry per listing the pod runs; requestQuote checked the ids).
    royalties: quote.royalties,
    approve: false,
  });
  say("channel", "done", `channel open (${formatAmount(deposit, token)})`);
  const { confirmations } = quote.terms;
  const deadline = Date.now() + (o.confirmationTimeoutMs ?? 60_000);
  if (confirmations > 0) {
    // The provider reads the channel `confirmations` blocks below the head: asking earlier only races it.
    say("provision", "start", `waiting for ${confirmations} confirmation(s) of the channel`);
    await waitForConfirmations(ctx.publicClient, channel.receipt.blockNumber, confirmations, deadline);
  }

  say("provision", "start", "provider pulling images and starting the pod");
  let res: Awaited<ReturnType<typeof provision>>;
  try {
    // A provider that still does not see the channel says so before doing anything: ask again until the deadline.
    res = await whileProviderLags("channel", deadline, () => provision(o, conn, podId));
  } catch (err) {
    const e = providerError("provision", err);
    throw e instanceof PublisherError
      ? new PublisherError(
          e.code,
          `${e.message} (the payment channel is open: close it under My pods to get the deposit back)`,
          { cause: err },
        )
      : e;
  }
  say("provision", "done", "pod running");
  return {
    podId,
    provider: offer.address,
    channel: channel.channelId,
    endpoints: endpointsFromWire(res.endpoints),
    deposit,
    terms: quote.terms,
  };
}

function provision(o: WebDeployOptions, conn: PodConnection, podId: Hex) {
  return callSignedUnary(
    o.node,
    conn.target,
    "provision",
    ProvisionRequestSchema,
    {
      podId: hexToBytes(podId),
      pod: podToWire(o.pod),
      channel: { chainId: BigInt(o.clients.chainId), paymentsContract: o.clients.context.addresses.payments },
    },
    ProvisionResponseSchema,
    { signer: o.signer, chainId: o.clients.chainId, provider: conn.provider, podId },
    { timeoutMs: 600_000 },
  );
}
