import { formatDiagnostic, ManifestError, type Pod } from "@trustedpods/protocol";
import { loadManifest } from "@trustedpods/protocol/node";
import {
  connectNetwork,
  declaredReleases,
  formatAmount,
  listOffers,
  type PricedOffer,
  type ProviderFilter,
  parseTokenAmount,
  perHour,
  priceOffers,
  releaseLabel,
  type TokenInfo,
  tokenInfo,
} from "@trustedpods/publisher";
import { type Address, getAddress, isAddress } from "viem";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { ProvidersOpts } from "../options/providers.js";
import { printJson } from "../output.js";
import { cliError, networkFromFlags } from "./network.js";

function loadPod(path: string): Pod {
  try {
    return loadManifest(path);
  } catch (err) {
    if (err instanceof ManifestError)
      throw new CliError(err.diagnostics.map(formatDiagnostic).join("\n"), ExitCode.failure);
    throw err;
  }
}

function offerJson(o: PricedOffer, token: TokenInfo, release: string): Record<string, unknown> {
  return {
    address: o.address,
    name: o.name,
    release: { id: o.release, declared: release },
    regions: o.regions,
    teeTypes: o.teeTypes,
    multiaddrs: o.multiaddrs,
    minNoticeSeconds: o.minNoticeSeconds,
    token,
    prices: o.pricing.prices,
    fits: o.fits,
    ...(o.reason ? { reason: o.reason } : {}),
    ...(o.price
      ? {
          price: {
            perSecond: o.price.perSecond,
            perHour: perHour(o.price),
            perHourFormatted: formatAmount(perHour(o.price), token),
            lines: o.price.lines,
          },
        }
      : {}),
  };
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
}

/** `tpod providers` */
export async function providersAction({ io }: CommandContext, opts: ProvidersOpts) {
  if (opts.token !== undefined && !isAddress(opts.token, { strict: false }))
    throw new CliError(`--token must be an address, got ${opts.token}`, ExitCode.usage);
  if (opts.maxPrice !== undefined && !opts.for)
    throw new CliError("--max-price needs --for MANIFEST (it limits the pod's price)", ExitCode.usage);
  if (opts.maxPrice !== undefined && !/^\d+(\.\d+)?$/.test(opts.maxPrice))
    throw new CliError(`--max-price must be a decimal amount, got ${opts.maxPrice}`, ExitCode.usage);
  const pod = opts.for ? loadPod(opts.for) : undefined;
  const network = await networkFromFlags(opts);
  try {
    const { context, publicClient } = await connectNetwork(network);
    const filter: ProviderFilter = {
      ...(opts.region ? { region: opts.region } : {}),
      ...(opts.tee ? { teeType: opts.tee } : {}),
      ...(opts.token ? { token: getAddress(opts.token) } : {}),
    };
    const offers = await listOffers(context, filter);
    const tokens = new Map<Address, TokenInfo>();
    for (const o of offers)
      if (!tokens.has(o.pricing.token))
        tokens.set(o.pricing.token, await tokenInfo(publicClient, o.pricing.token));
    // --max-price is in whole tokens: each provider's limit is in its own token's base units.
    const priced = priceOffers(
      offers,
      pod,
      opts.maxPrice === undefined
        ? {}
        : { maxPerHour: (token) => parseTokenAmount(opts.maxPrice!, tokens.get(token)!.decimals) },
    );
    // What each provider declares; its evidence decides at deploy and verify time.
    const releases = await declaredReleases(
      context,
      offers.map((o) => o.release),
    );
    const label = (o: PricedOffer) => releaseLabel(o.release, releases.get(o.release));
    const fitting = priced.filter((o) => o.fits && o.price);
    const tokenSet = new Set(fitting.map((o) => o.pricing.token));
    const cheapest =
      pod && fitting.length > 0 && tokenSet.size === 1
        ? fitting.reduce((b, o) => (o.price!.perSecond < b.price!.perSecond ? o : b))
        : undefined;
    if (opts.json) {
      printJson(io, {
        network: { name: network.name, rpcUrl: network.rpcUrl, chainId: network.chainId ?? null },
        manifest: opts.for ?? null,
        providers: priced.map((o) => offerJson(o, tokens.get(o.pricing.token)!, label(o))),
        cheapest: cheapest?.address ?? null,
      });
      return;
    }
    if (priced.length === 0) {
      io.err("no registered provider matches");
      return;
    }
    const header = ["", "PROVIDER", "NAME", "REGIONS", "TEE", "RELEASE", pod ? "PRICE/HOUR" : "TOKEN"];
    const rows = priced.map((o) => {
      const t = tokens.get(o.pricing.token)!;
      const last = pod
        ? o.price && o.fits
          ? formatAmount(perHour(o.price), t)
          : `- (${o.reason})`
        : t.symbol;
      return [
        o === cheapest ? "*" : "",
        o.address,
        o.name,
        o.regions.join(","),
        o.teeTypes.join(","),
        label(o),
        last,
      ];
    });
    for (const line of table([header, ...rows])) io.out(line);
    if (pod && !cheapest) {
      io.err(
        fitting.length === 0
          ? "no provider fits this pod"
          : "fitting providers price in different tokens: choose one with --token",
      );
    }
  } catch (err) {
    throw cliError(err);
  }
}
