// Gas used by every Trusted Pods contract action on a fresh anvil dev chain, against the Apocryph reference
// measured on this machine kind (solc 0.8.37, optimizer 200 runs, anvil). Run: node bench/gas/run.ts [--json]
import {
  authorizeProvider,
  type ChainContext,
  changeRate,
  claim,
  claimBatch,
  claimWaiving,
  claimWithVoucher,
  createListing,
  deployReleases,
  openChannel,
  publishRelease,
  type Quote,
  type ReleaseInput,
  ReleaseTee,
  Resource,
  type Royalty,
  refund,
  registerProvider,
  requestClose,
  revokeRelease,
  royaltiesHash,
  signQuoteFor,
  signVoucherFor,
  specHash,
  topUp,
  waive,
  withdraw,
} from "@trustedpods/chain";
import { type DevChain, startDevChain } from "@trustedpods/chain/node";
import { createWalletClient, type Hex, http, keccak256, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const REFERENCE = {
  create: 112_219,
  firstClaim: 86_853,
  steadyClaim: 52_653,
  unlock: 51_836,
  refund: 47_902,
};
const REFERENCE_TOTAL =
  REFERENCE.create + REFERENCE.firstClaim + 9 * REFERENCE.steadyClaim + REFERENCE.unlock + REFERENCE.refund;
const TARGET_STEADY_CLAIM = 45_000;
/** claimBatch of 50 channels against 50 separate steady claims. */
const TARGET_BATCH_RATIO_50 = 0.6;
const TARGET_TOTAL = 618_000;

let podCounter = 0;
const newPod = (): Hex => keccak256(toHex(`bench-pod-${podCounter++}-${Date.now()}`));

async function increaseTime(chain: DevChain, seconds: number): Promise<void> {
  await chain.publicClient.request({
    method: "evm_increaseTime" as never,
    params: [toHex(seconds)] as never,
  });
  await chain.publicClient.request({ method: "evm_mine" as never, params: [] as never });
}

/** A release with `snp` SEV-SNP and `tdx` TDX measured configurations, each with a firmware hash. */
function releaseInput(tag: string, snp: number, tdx: number): ReleaseInput {
  const bytes = (n: number, seed: string) => {
    const h = keccak256(toHex(seed)).slice(2);
    return `0x${h.repeat(Math.ceil((2 * n) / h.length)).slice(0, 2 * n)}` as Hex;
  };
  const m = (tee: number, n: number, i: number) => ({
    tee,
    config: `${tee === ReleaseTee.snp ? "milan" : "sapphire rapids"}, ${4 << i} vCPU`,
    value: bytes(n, `${tag}-${tee}-${i}`),
    firmware: keccak256(toHex(`ovmf-${tag}`)),
  });
  return {
    version: `1.${tag}.0`,
    imageDigest: keccak256(toHex(`image-${tag}`)),
    source: "git+https://github.com/example/tpod-provider-image@0123456789abcdef0123456789abcdef01234567",
    measurements: [
      ...Array.from({ length: snp }, (_, i) => m(ReleaseTee.snp, 48, i)),
      ...Array.from({ length: tdx }, (_, i) => m(ReleaseTee.tdx, 192, i)),
    ],
  };
}

/** The release registry: publication at 1-of-1 and 2-of-3, revocation, a provider declaring its release. */
async function releaseRows(chain: DevChain, record: (action: string, gas: bigint) => void): Promise<void> {
  const signer = chain.context(0);
  record(
    "release publish, 1 of 1 (1 SNP config)",
    (await publishRelease(signer, releaseInput("a", 1, 0))).receipt.gasUsed,
  );
  const big = await publishRelease(signer, releaseInput("b", 2, 2));
  record("release publish, 1 of 1 (2 SNP + 2 TDX configs)", big.receipt.gasUsed);
  record(
    "release revoke (reason of 35 bytes)",
    (await revokeRelease(signer, big.id, "CVE-2099-0001 in the image's kernel")).receipt.gasUsed,
  );
  const wallet = createWalletClient({
    chain: { ...signer.walletClient!.chain!, id: chain.chainId },
    transport: http(chain.rpcUrl),
    account: privateKeyToAccount(chain.accounts[0]!.privateKey),
  });
  const address = await deployReleases(
    chain.publicClient,
    wallet,
    [0, 6, 7].map((i) => chain.accounts[i]!.address),
    2,
  );
  const at = (i: number): ChainContext => ({
    ...chain.context(i),
    addresses: { ...chain.context(i).addresses, releases: address },
  });
  const input = releaseInput("c", 2, 2);
  record(
    "release approve, 2 of 3: first signer (stores a bit)",
    (await publishRelease(at(0), input)).receipt.gasUsed,
  );
  record(
    "release approve, 2 of 3: second signer publishes (2+2)",
    (await publishRelease(at(6), input)).receipt.gasUsed,
  );
  // Two registrations in the same position (neither is the Registry's first): without and with a release.
  const entry = (release?: Hex) => ({
    name: "bench provider",
    regions: ["eu-west"],
    multiaddrs: ["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWBench"],
    metadataCid: "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
    teeTypes: ["sev-snp", "tdx"],
    token: chain.contracts.token,
    minNoticeSeconds: 3600,
    prices: [
      { resource: Resource.cpu, pricePerUnitSecond: 10n },
      { resource: Resource.memory, pricePerUnitSecond: 2n },
      { resource: Resource.storage, pricePerUnitSecond: 1n },
      { resource: Resource.gpu, pricePerUnitSecond: 1000n },
    ],
    ...(release ? { release } : {}),
  });
  const plain = await registerProvider(chain.context(9), entry());
  record("register provider (as above, not the first; no release)", plain.receipt.gasUsed);
  const reg = await registerProvider(chain.context(8), entry(big.id));
  record("register provider (as above, not the first; declaring a release)", reg.receipt.gasUsed);
}

async function main(): Promise<void> {
  const json = process.argv.includes("--json");
  const chain = await startDevChain();
  const rows: { action: string; gas: bigint; reference?: number; target?: number }[] = [];
  const record = (action: string, gas: bigint, reference?: number, target?: number) => {
    rows.push({ action, gas, ...(reference ? { reference } : {}), ...(target ? { target } : {}) });
  };
  try {
    const provider = chain.context(1);
    const publisher = chain.context(2);
    const providerAddr = chain.accounts[1]!.address;
    const publisherAddr = chain.accounts[2]!.address;
    const devs = [3, 4, 5].map((i) => chain.accounts[i]!.address);
    const token = chain.contracts.token;

    const reg = await registerProvider(provider, {
      name: "bench provider",
      regions: ["eu-west"],
      multiaddrs: ["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWBench"],
      metadataCid: "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
      teeTypes: ["sev-snp", "tdx"],
      token,
      minNoticeSeconds: 3600,
      prices: [
        { resource: Resource.cpu, pricePerUnitSecond: 10n },
        { resource: Resource.memory, pricePerUnitSecond: 2n },
        { resource: Resource.storage, pricePerUnitSecond: 1n },
        { resource: Resource.gpu, pricePerUnitSecond: 1000n },
      ],
    });
    record("register provider (4 prices, 2 TEE types)", reg.receipt.gasUsed);
    await releaseRows(chain, record);

    // Royalties pay Marketplace listings only (exactly at their terms): one listing per developer.
    const listingOf = async (i: number): Promise<Royalty> => {
      const dev = chain.context(3 + i);
      const { listingId } = await createListing(dev, {
        manifestDigest: keccak256(toHex(`bench-listing-${i}`)),
        metadataCid: "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
        royaltyBps: i === 0 ? 500 : 300,
      });
      await authorizeProvider(dev, listingId, providerAddr, "bafywrappedkey");
      return { recipient: devs[i]!, bps: i === 0 ? 500 : 300, listingId };
    };
    const listed = [await listingOf(0), await listingOf(1), await listingOf(2)];

    const rate = 10n ** 12n;
    const quoteFor = async (
      podId: Hex,
      royalties: Royalty[] = [],
      ratePerSecond = rate,
    ): Promise<{ quote: Quote; sig: Hex }> => {
      const quote: Quote = {
        provider: providerAddr,
        publisher: publisherAddr,
        podId,
        token,
        ratePerSecond,
        minNoticeSeconds: 3600,
        expiry: BigInt(Math.floor(Date.now() / 1000) + 86_400 * 365),
        specHash: specHash({ cpu: 1000n, memory: 512n, storage: 1n, gpu: 0n }),
        royaltiesHash: royaltiesHash(royalties),
      };
      return { quote, sig: await signQuoteFor(provider, provider.walletClient!, quote) };
    };
    const open = async (royalties: Royalty[]) => {
      const podId = newPod();
      const { quote, sig } = await quoteFor(podId, royalties);
      const sent = await openChannel(publisher, {
        quote,
        quoteSignature: sig,
        podId,
        deposit: 10n ** 20n,
        noticeSeconds: 3600,
        royalties,
      });
      return { podId, gas: sent.receipt.gasUsed };
    };
    // Warm the token's allowance and the contract's token balance once, as on any live chain.
    await open([]);

    const r0 = await open([]);
    record("open (0 royalty recipients)", r0.gas, REFERENCE.create);
    const r1 = await open([listed[0]!]);
    record("open (1 listing royalty)", r1.gas, REFERENCE.create);
    const r3 = await open(listed);
    record("open (3 listing royalties)", r3.gas, REFERENCE.create);

    await increaseTime(chain, 60);
    let cumulative = 0n;
    const claimOn = async (ctx: ChainContext, podId: Hex) => {
      cumulative += rate * 10n;
      return (await claim(ctx, publisherAddr, podId, cumulative)).receipt.gasUsed;
    };
    const firstClaim = await claimOn(provider, r0.podId);
    record("claim, first (provider had no balance)", firstClaim, REFERENCE.firstClaim);
    const steady = await claimOn(provider, r0.podId);
    record("claim, steady (0 royalties)", steady, REFERENCE.steadyClaim, TARGET_STEADY_CLAIM);
    cumulative = 0n;
    await claimOn(provider, r1.podId);
    record("claim, steady (1 royalty)", await claimOn(provider, r1.podId), REFERENCE.steadyClaim);
    cumulative = 0n;
    await claimOn(provider, r3.podId);
    record("claim, steady (3 royalties)", await claimOn(provider, r3.podId), REFERENCE.steadyClaim);

    const voucherAmount = rate * 100_000n;
    const voucherSig = await signVoucherFor(
      publisher,
      publisher.walletClient!,
      { publisher: publisherAddr, provider: providerAddr, podId: r0.podId },
      voucherAmount,
    );
    const v = await claimWithVoucher(
      provider,
      publisherAddr,
      r0.podId,
      voucherAmount,
      voucherAmount,
      voucherSig,
    );
    record("claim with voucher (0 royalties)", v.receipt.gasUsed, REFERENCE.steadyClaim);

    const t = await topUp(publisher, providerAddr, r0.podId, 10n ** 18n);
    record("top-up", t.receipt.gasUsed);
    // A deposit that ran out: the top-up freezes what is owed and restarts accrual (one more storage slot).
    const dry = newPod();
    const dryQuote = await quoteFor(dry);
    await openChannel(publisher, {
      quote: dryQuote.quote,
      quoteSignature: dryQuote.sig,
      podId: dry,
      deposit: rate * 10n,
      noticeSeconds: 3600,
    });
    await increaseTime(chain, 60);
    const tr = await topUp(publisher, providerAddr, dry, 10n ** 18n);
    record("top-up after run-out (accrual restarts)", tr.receipt.gasUsed);
    await increaseTime(chain, 30);
    const wv = await waive(provider, publisherAddr, dry, 20n);
    record("waive (provider gives up unserved seconds)", wv.receipt.gasUsed);
    const cr = await quoteFor(r0.podId, [], rate * 2n);
    const rc0 = await changeRate(publisher, cr.quote, cr.sig, r0.podId);
    record("change rate (0 royalties)", rc0.receipt.gasUsed);
    const cr3 = await quoteFor(r3.podId, listed, rate * 2n);
    const rc3 = await changeRate(publisher, cr3.quote, cr3.sig, r3.podId);
    record("change rate (3 royalties, re-hashed)", rc3.receipt.gasUsed);
    const rc = await requestClose(publisher, providerAddr, r1.podId);
    record("request close", rc.receipt.gasUsed, REFERENCE.unlock);
    await increaseTime(chain, 3600);
    const rf = await refund(publisher, providerAddr, r1.podId);
    record("refund after notice (settles provider)", rf.receipt.gasUsed, REFERENCE.refund);
    const w = await withdraw(provider, token);
    record("withdraw provider balance", w.receipt.gasUsed);
    const wd = await withdraw(chain.context(3), token);
    record("withdraw royalty balance", wd.receipt.gasUsed);

    // The lifecycle the reference was measured on: open + 10 claims + close (request + refund).
    const life = await open([]);
    let total = life.gas;
    cumulative = 0n;
    for (let i = 0; i < 10; i++) {
      await increaseTime(chain, 30);
      total += await claimOn(provider, life.podId);
    }
    total += (await requestClose(publisher, providerAddr, life.podId)).receipt.gasUsed;
    await increaseTime(chain, 3600);
    total += (await refund(publisher, providerAddr, life.podId)).receipt.gasUsed;
    record("open + 10 claims + close (request + refund)", total, REFERENCE_TOTAL, TARGET_TOTAL);
    const withWithdraw = total + (await withdraw(provider, token)).receipt.gasUsed;
    record("  ... + provider withdraw", withWithdraw, REFERENCE_TOTAL);

    // What the daemon sends: its first claim gives back the provisioning delay (claimWaiving), then 9 claims.
    const daemonLife = await open([]);
    let daemonTotal = daemonLife.gas;
    cumulative = 0n;
    await increaseTime(chain, 30);
    cumulative += rate * 10n;
    const firstWaiving = (await claimWaiving(provider, publisherAddr, daemonLife.podId, cumulative, 5n))
      .receipt.gasUsed;
    record("claim waiving (first claim, gives back 5 s)", firstWaiving, REFERENCE.steadyClaim);
    daemonTotal += firstWaiving;
    for (let i = 0; i < 9; i++) {
      await increaseTime(chain, 30);
      daemonTotal += await claimOn(provider, daemonLife.podId);
    }
    daemonTotal += (await requestClose(publisher, providerAddr, daemonLife.podId)).receipt.gasUsed;
    await increaseTime(chain, 3600);
    daemonTotal += (await refund(publisher, providerAddr, daemonLife.podId)).receipt.gasUsed;
    record("open + claimWaiving + 9 claims + close", daemonTotal, REFERENCE_TOTAL, TARGET_TOTAL);

    // Batched claims: k steady channels (each claimed before) in one claimBatch against k separate claims.
    const batchPods: Hex[] = [];
    for (let i = 0; i < 50; i++) batchPods.push((await open([])).podId);
    const batchRoyaltyPods: Hex[] = [];
    for (let i = 0; i < 10; i++) batchRoyaltyPods.push((await open([listed[0]!])).podId);
    const cumulativeOf = new Map<Hex, bigint>();
    const next = (podId: Hex) => {
      const c = (cumulativeOf.get(podId) ?? 0n) + rate * 5n;
      cumulativeOf.set(podId, c);
      return c;
    };
    await increaseTime(chain, 60);
    for (const podId of [...batchPods, ...batchRoyaltyPods])
      await claim(provider, publisherAddr, podId, next(podId));
    const separately = async (pods: Hex[]) => {
      await increaseTime(chain, 30);
      let gas = 0n;
      for (const podId of pods)
        gas += (await claim(provider, publisherAddr, podId, next(podId))).receipt.gasUsed;
      return gas;
    };
    const batched = async (pods: Hex[]) => {
      await increaseTime(chain, 30);
      const entries = pods.map((podId) => ({
        publisher: publisherAddr,
        podId,
        cumulative: next(podId),
        waiveSeconds: 0n,
      }));
      const sent = await claimBatch(provider, entries);
      if (sent.result !== BigInt(pods.length))
        throw new Error(`batch claimed ${sent.result} of ${pods.length}`);
      return sent.receipt.gasUsed;
    };
    for (const [k, pods, label] of [
      [1, batchPods, "0 royalties"],
      [10, batchPods, "0 royalties"],
      [50, batchPods, "0 royalties"],
      [10, batchRoyaltyPods, "1 royalty each"],
    ] as const) {
      const subset = pods.slice(0, k);
      const apart = await separately(subset);
      const together = await batched(subset);
      record(`${k} steady claims, separate txs (${label})`, apart);
      record(
        `claimBatch of ${k} (${label}), per channel ${(Number(together) / k) | 0}`,
        together,
        Number(apart),
        k === 50 && label === "0 royalties" ? Math.floor(Number(apart) * TARGET_BATCH_RATIO_50) : undefined,
      );
    }
  } finally {
    await chain.stop();
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(rows, (_k, v) => (typeof v === "bigint" ? Number(v) : v))}\n`);
    return;
  }
  console.log(
    `${"action".padEnd(46)} ${"gas".padStart(9)} ${"reference".padStart(10)} ${"ratio".padStart(6)}  target`,
  );
  for (const r of rows) {
    const ratio = r.reference ? (Number(r.gas) / r.reference).toFixed(2) : "";
    const target = r.target ? `${Number(r.gas) <= r.target ? "ok" : "MISSED"} <= ${r.target}` : "";
    console.log(
      `${r.action.padEnd(46)} ${r.gas.toString().padStart(9)} ${(r.reference?.toString() ?? "").padStart(10)} ${ratio.padStart(6)}  ${target}`,
    );
  }
}

await main();
