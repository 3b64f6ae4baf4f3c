import { balanceOf } from "@trustedpods/chain";
import { connectNetwork, formatAmount, tokenInfo } from "@trustedpods/publisher";
import { type Address, erc20Abi, getAddress, isAddress } from "viem";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { BalanceOpts } from "../options/pods.js";
import { printJson } from "../output.js";
import { accountFromFlags, cliError, keyRefFromFlags, networkFromFlags } from "./network.js";

/** The address to report: the one given, or the signing key's (read without unlocking it when the ref says it). */
async function whose(
  address: string | undefined,
  network: Awaited<ReturnType<typeof networkFromFlags>>,
  opts: BalanceOpts,
): Promise<Address> {
  if (address !== undefined) {
    if (!isAddress(address, { strict: false }))
      throw new CliError(`ADDRESS must be an address (0x and 40 hex digits), got ${address}`, ExitCode.usage);
    return getAddress(address);
  }
  const ref = await keyRefFromFlags(network, opts);
  if ("address" in ref && ref.address) return getAddress(ref.address);
  return (await accountFromFlags(network, opts)).address;
}

/** `tpod balance [ADDRESS]`: the payment token, the gas (native coin) and what Payments holds for the account. */
export async function balanceAction({ io }: CommandContext, address: string | undefined, opts: BalanceOpts) {
  if (opts.token !== undefined && !isAddress(opts.token, { strict: false }))
    throw new CliError(`--token must be an address, got ${opts.token}`, ExitCode.usage);
  const network = await networkFromFlags(opts);
  const token = opts.token ? getAddress(opts.token) : network.contracts.token;
  if (!token)
    throw new CliError("no payment token known for this network: pass --token ADDRESS", ExitCode.usage);
  const who = await whose(address, network, opts);
  try {
    const clients = await connectNetwork(network);
    const [info, held, gas, withdrawable] = await Promise.all([
      tokenInfo(clients.publicClient, token),
      clients.publicClient.readContract({
        address: token,
        abi: erc20Abi,
        functionName: "balanceOf",
        args: [who],
      }),
      clients.publicClient.getBalance({ address: who }),
      balanceOf(clients.context, who, token),
    ]);
    const native = clients.chain.nativeCurrency;
    if (opts.json)
      return printJson(io, {
        address: who,
        token: { address: token, symbol: info.symbol, decimals: info.decimals, balance: held },
        gas: { symbol: native.symbol, decimals: native.decimals, balance: gas },
        // Earnings (royalties, provider claims) credited inside Payments, withdrawable to the wallet.
        withdrawable,
      });
    io.out(`account      ${who}`);
    io.out(`token        ${formatAmount(held, info)}  (${token})`);
    io.out(`gas          ${formatAmount(gas, native)}`);
    if (withdrawable > 0n) io.out(`withdrawable ${formatAmount(withdrawable, info)} in Payments (earnings)`);
    if (gas === 0n)
      io.err(`warning: no ${native.symbol} for gas: every transaction (deploy, fund, close) will fail`);
  } catch (err) {
    throw cliError(err);
  }
}
