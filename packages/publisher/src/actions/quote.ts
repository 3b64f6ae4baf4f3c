import {
  paymentsDomain,
  type Quote,
  type Royalty,
  recoverQuoteSigner,
  royaltiesHash,
  specHash,
} from "@trustedpods/chain";
import { type CallOptions, callUnary } from "@trustedpods/p2p/browser";
import {
  billedUnits,
  type Pod,
  podToWire,
  QuoteRequestSchema,
  QuoteResponseSchema,
  type Quote as WireQuote,
} from "@trustedpods/protocol";
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes, isAddress } from "viem";
import { type PodConnection, signed } from "../connection.js";
import { type QuotedTerms, quotedTerms } from "../deposit.js";
import { PublisherError } from "../errors.js";

/** A provider's quote in the contract's shape, with what it was bound to and its unsigned billing terms. */
export interface CheckedQuote {
  quote: Quote;
  signature: Hex;
  wire: WireQuote;
  terms: QuotedTerms;
  /** The royalty list the quote signed: the channel must be opened with exactly this list. */
  royalties: Royalty[];
}

/** Listings a pod runs, ascending (the order of the royalty list a quote signs). */
export function podListings(pod: Pod): bigint[] {
  const ids = new Set<bigint>();
  for (const c of pod.containers) if (c.image.kind === "listing") ids.add(c.image.listingId);
  return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Asks the provider for a signed quote bound to this publisher and pod, and checks it: signed by the provider
 * in our Payments contract's domain, for our chain, publisher and pod id, echoing our nonce, not expired, pricing
 * exactly our pod's resources (spec hash), with one royalty entry per listing the pod runs and nothing else.
 */
export async function requestQuote(
  conn: PodConnection,
  o: {
    pod: Pod;
    podId: Hex;
    publisher: Address;
    payments: Address;
    options?: CallOptions;
    /** The minimum paid run time to assume when the quote carries none (older daemons). */
    fallbackMinDepositSeconds?: number;
  },
): Promise<CheckedQuote> {
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  const res = await signed("quote", () =>
    callUnary(
      conn.node,
      conn.target,
      "quote",
      QuoteRequestSchema,
      { pod: podToWire(o.pod), nonce, publisher: hexToBytes(o.publisher), podId: hexToBytes(o.podId) },
      QuoteResponseSchema,
      o.options ?? {},
    ),
  );
  const w = res.quote;
  const bad = (m: string): never => {
    throw new PublisherError("QUOTE_INVALID", `the provider's quote ${m}`);
  };
  if (!w) return bad("is missing");
  if (!isAddress(w.provider) || getAddress(w.provider) !== getAddress(conn.provider))
    bad(`names provider ${w.provider}, not ${conn.provider}`);
  if (Number(w.chainId) !== conn.chainId) bad(`is for chain ${w.chainId}, not ${conn.chainId}`);
  if (!isAddress(w.paymentsContract) || getAddress(w.paymentsContract) !== getAddress(o.payments))
    bad(`is for Payments contract ${w.paymentsContract}, not ${o.payments}`);
  if (bytesToHex(w.publisher).toLowerCase() !== o.publisher.toLowerCase())
    bad("is bound to another publisher");
  if (bytesToHex(w.podId) !== o.podId.toLowerCase()) bad("is bound to another pod id");
  if (bytesToHex(w.nonce) !== bytesToHex(nonce)) bad("does not echo our nonce (a replayed quote)");
  if (!/^\d{1,78}$/.test(w.pricePerSecond)) bad(`has a malformed price "${w.pricePerSecond}"`);
  if (!w.pricing || !isAddress(w.pricing.token)) bad("has no pricing token");
  if (w.expiresAt <= BigInt(Math.floor(Date.now() / 1000))) bad("has already expired");
  if (w.signature.length !== 65) bad("signature is not 65 bytes");
  const spec = specHash(billedUnits(o.pod));
  if (bytesToHex(w.specHash) !== spec) bad("prices other resources than this pod's (spec hash differs)");
  const royalties: Royalty[] = w.royalties.map((r) => {
    if (!isAddress(r.recipient)) bad(`has a royalty to "${r.recipient}", not an address`);
    return { recipient: getAddress(r.recipient), bps: r.bps, listingId: r.listingId };
  });
  const runs = podListings(o.pod);
  // An entry for a listing the pod does not run would make us pay that listing's fixed fee for nothing.
  if (royalties.map((r) => r.listingId).join(",") !== runs.join(","))
    bad(
      `asks for royalties to listings [${royalties.map((r) => r.listingId).join(", ")}], but the pod runs [${runs.join(", ")}]`,
    );
  if (bytesToHex(w.royaltiesHash) !== royaltiesHash(royalties))
    bad("royalties hash does not match its royalties");
  const quote: Quote = {
    provider: getAddress(w.provider),
    publisher: getAddress(o.publisher),
    podId: o.podId.toLowerCase() as Hex,
    token: getAddress(w.pricing!.token),
    ratePerSecond: BigInt(w.pricePerSecond),
    minNoticeSeconds: Number(w.minNoticeSeconds),
    expiry: w.expiresAt,
    specHash: spec,
    royaltiesHash: royaltiesHash(royalties),
  };
  const signature = bytesToHex(w.signature);
  const signer = await recoverQuoteSigner(paymentsDomain(conn.chainId, o.payments), quote, signature).catch(
    () => bad("signature does not recover"),
  );
  if (getAddress(signer) !== quote.provider) bad(`is signed by ${signer}, not by the provider`);
  return { quote, signature, wire: w, terms: quotedTerms(w, o.fallbackMinDepositSeconds), royalties };
}
