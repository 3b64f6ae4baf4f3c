/**
 * Keeps Marketplace listing metadata on an IPFS node that stays up. A developer's own node is gone once its
 * command ends, so without this a publisher could not read a listing's name and description. The pinner follows
 * the Marketplace's events and, for each listing they touch, fetches its metadata document (from whichever
 * connected peer has it: the developer's node while it is up), checks that it is a listing document and pins it.
 *
 * A provider daemon pins the listings it is authorized for; the devnet's IPFS node pins every listing.
 */
import { type ChainContext, getListing, marketplaceAbi } from "@trustedpods/chain";
import { type ContentStore, getSecret, parseCid } from "@trustedpods/ipfs";
import type { Address } from "viem";
import { ListingDocError, MAX_LISTING_DOC, parseListingMetadata } from "./listing.js";

export interface ListingPinnerOptions {
  /** Resolved on first use (a daemon's Marketplace address may come from the Payments contract). */
  chain: ChainContext | (() => Promise<ChainContext>);
  store: ContentStore;
  /** Only listings this provider is authorized for; absent: every listing. */
  provider?: Address;
  /** Between two looks at the chain (default 1000 ms). */
  pollMs?: number;
  /** One metadata fetch (default 10 s); a failed one is tried again later. */
  fetchTimeoutMs?: number;
  /** Longest wait before a failed listing is tried again (default 60 s). */
  maxRetryMs?: number;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/** Listings waiting for their metadata are capped: a flood of listings with unreachable metadata stays bounded. */
const MAX_PENDING = 1000;

interface Pending {
  attempts: number;
  nextTryAt: number;
}

export class ListingMetadataPinner {
  private ctx: Promise<ChainContext> | undefined;
  private nextBlock = 0n;
  private readonly pending = new Map<bigint, Pending>();
  /** listing id → the metadata CID pinned for it. */
  readonly pinned = new Map<bigint, string>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private failing = false;

  constructor(private readonly o: ListingPinnerOptions) {}

  private chain(): Promise<ChainContext> {
    const c = this.o.chain;
    this.ctx ??= typeof c === "function" ? c() : Promise.resolve(c);
    return this.ctx;
  }

  start(): void {
    if (this.timer || this.stopped) return;
    const loop = () => {
      this.running = this.tick()
        .then(() => {
          this.failing = false;
        })
        .catch((err) => {
          // Once per outage, not once per poll.
          if (!this.failing)
            this.o.log?.warn({ err: (err as Error).message }, "listing pinner: cannot read the Marketplace");
          this.failing = true;
        })
        .finally(() => {
          this.running = null;
          if (!this.stopped) this.timer = setTimeout(loop, this.o.pollMs ?? 1000);
        });
    };
    this.timer = setTimeout(loop, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass: new events since the last pass, then every listing whose metadata is due to be (re)fetched. */
  async tick(): Promise<void> {
    const ctx = await this.chain();
    const head = await ctx.publicClient.getBlockNumber();
    if (head >= this.nextBlock) {
      for (const id of await this.touchedListings(ctx, this.nextBlock, head)) this.enqueue(id);
      this.nextBlock = head + 1n;
    }
    const now = Date.now();
    for (const [id, p] of [...this.pending]) {
      if (this.stopped) return;
      if (p.nextTryAt > now) continue;
      await this.pinListing(ctx, id, p);
    }
  }

  private enqueue(id: bigint): void {
    if (this.pending.has(id)) this.pending.get(id)!.nextTryAt = 0;
    else if (this.pending.size < MAX_PENDING) this.pending.set(id, { attempts: 0, nextTryAt: 0 });
  }

  private async touchedListings(ctx: ChainContext, fromBlock: bigint, toBlock: bigint): Promise<bigint[]> {
    const base = { address: ctx.addresses.marketplace, abi: marketplaceAbi, fromBlock, toBlock } as const;
    const ids = (logs: readonly { args: unknown }[]) =>
      logs.map((l) => (l.args as { listingId?: bigint }).listingId).filter((x) => x !== undefined);
    const authorized = await ctx.publicClient.getContractEvents({
      ...base,
      eventName: "ProviderAuthorized",
      ...(this.o.provider ? { args: { provider: this.o.provider } } : {}),
    });
    if (this.o.provider) return ids(authorized);
    const [created, updated] = await Promise.all([
      ctx.publicClient.getContractEvents({ ...base, eventName: "ListingCreated" }),
      ctx.publicClient.getContractEvents({ ...base, eventName: "MetadataUpdated" }),
    ]);
    return [...ids(created), ...ids(updated), ...ids(authorized)];
  }

  private async pinListing(ctx: ChainContext, id: bigint, p: Pending): Promise<void> {
    try {
      const { metadataCid } = await getListing(ctx, id);
      if (this.pinned.get(id) !== metadataCid) {
        const cid = parseCid(metadataCid);
        const bytes = await getSecret(this.o.store, cid, {
          maxSize: MAX_LISTING_DOC,
          signal: AbortSignal.timeout(this.o.fetchTimeoutMs ?? 10_000),
        });
        // Only listing documents are kept: a listing cannot make this node pin arbitrary data.
        parseListingMetadata(bytes);
        await this.o.store.pin(cid);
        this.pinned.set(id, metadataCid);
        this.o.log?.info({ listing: id.toString(), cid: metadataCid }, "listing metadata pinned");
      }
      this.pending.delete(id);
    } catch (err) {
      if (err instanceof ListingDocError) {
        // Fetched, but not a listing document: asking again returns the same bytes.
        this.pending.delete(id);
        this.o.log?.warn(
          { listing: id.toString(), err: err.message },
          "listing metadata refused, not pinned",
        );
        return;
      }
      p.attempts++;
      p.nextTryAt = Date.now() + Math.min(this.o.maxRetryMs ?? 60_000, 1000 * 2 ** Math.min(p.attempts, 16));
      if (p.attempts === 1 || p.attempts % 10 === 0)
        this.o.log?.warn(
          { listing: id.toString(), attempts: p.attempts, err: (err as Error).message },
          "listing metadata not fetched yet; trying again later",
        );
    }
  }
}
