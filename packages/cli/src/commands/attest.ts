import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import type { AttestVerifyOpts } from "../options/attest.js";

export type { AttestVerifyOpts } from "../options/attest.js";

// Definitions only; the verifiers (ASN.1, X.509) load on use from ../actions/attest.js.

const actions = () => import("../actions/attest.js");

export function registerAttest(program: Command, ctx: CommandContext): void {
  const attest = program.command("attest").description("TEE attestation evidence");
  attest
    .command("verify")
    .description(
      "verify SEV-SNP reports and TDX/SGX quotes against pinned AMD/Intel roots (exit 0 valid, 1 rejected)",
    )
    .argument("<file>", "raw report (SEV-SNP) or quote (TDX, SGX)")
    .requiredOption("--type <type>", "snp, tdx or sgx")
    .option(
      "--cert <file>",
      "SEV-SNP certificates, DER or PEM, one or several per file (VCEK/VLEK, ASK/ASVK, ARK); repeatable",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option("--collateral <file>", "TDX/SGX DCAP collateral (dcap-qvl JSON) for TCB status")
    .option("--now <iso8601>", "verification time for certificate and collateral validity")
    .option(
      "--policy <file>",
      "policy (YAML or JSON): accepted measurements, minimum TCB, debug, report data",
    )
    .option("--json", "print the result as JSON")
    .action(async (file: string, opts: AttestVerifyOpts) => (await actions()).attestVerify(ctx, file, opts));
}
