import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { HAVE_TESTDATA as HAVE, TESTDATA as T } from "../../../test-support/attestation-samples.js";
import { run } from "../src/main.js";

const tmp = mkdtempSync(join(tmpdir(), "tpod-attest-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function tpod(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join(""), err: err.join("") };
}

async function json(args: string[]) {
  const r = await tpod([...args, "--json"]);
  return { ...r, body: JSON.parse(r.out) as Record<string, unknown> };
}

const snp = (f: string) => join(T, "sev-snp", f);
const tdx = (f: string) => join(T, "tdx/go-tdx-guest", f);
const qvl = (f: string) => join(T, "dcap-qvl", f);

describe.skipIf(!HAVE)("tpod attest verify on every real sample", () => {
  it("SEV-SNP go-sev-guest attestation.bin (DER VCEK + PEM ASK/ARK)", async () => {
    const r = await json([
      "attest",
      "verify",
      snp("go-sev-guest/attestation.bin"),
      "--type",
      "snp",
      "--cert",
      snp("go-sev-guest/vcek.testcer"),
      "--cert",
      snp("go-sev-guest/ask_ark_milan.pem"),
      "--now",
      "2024-01-01",
    ]);
    expect(r.code).toBe(0);
    expect(r.body).toMatchObject({
      valid: true,
      tee: "snp",
      version: 2,
      tcbStatus: "Unknown",
      product: "Milan",
      debug: true,
    });
    expect(r.body.reportData).toBe(`0102030405${"00".repeat(59)}`);
    expect(r.body.measurement).toMatch(/^[0-9a-f]{96}$/);
    expect(r.body.tcb).toMatchObject({ bootloader: 2, tee: 0, snp: 5, microcode: 68 });
  });

  it("SEV-SNP virtee report_milan.bin (DER VCEK + DER chain file)", async () => {
    const r = await json([
      "attest",
      "verify",
      snp("virtee/report_milan.bin"),
      "--type",
      "snp",
      "--cert",
      snp("virtee/vcek_milan.der"),
      "--cert",
      snp("virtee/cert_chain_milan"),
    ]);
    expect(r.code).toBe(0);
    expect(r.body).toMatchObject({ valid: true, tee: "snp", tcb: { bootloader: 3, snp: 8, microcode: 115 } });
  });

  it("SGX quote v3 with collateral: ConfigurationAndSWHardeningNeeded", async () => {
    const r = await json([
      "attest",
      "verify",
      qvl("sgx_quote"),
      "--type",
      "sgx",
      "--collateral",
      qvl("sgx_quote_collateral.json"),
      "--now",
      "2025-07-01T00:00:00Z",
    ]);
    expect(r.code).toBe(0);
    expect(r.body).toMatchObject({
      valid: true,
      tee: "sgx",
      version: 3,
      tcbStatus: "ConfigurationAndSWHardeningNeeded",
      advisoryIds: ["INTEL-SA-00289", "INTEL-SA-00615"],
    });
    expect(r.body.measurement).toBe(r.body.mrenclave);
  });

  it("TDX quote v4 with collateral: UpToDate", async () => {
    const r = await json([
      "attest",
      "verify",
      qvl("tdx_quote"),
      "--type",
      "tdx",
      "--collateral",
      qvl("tdx_quote_collateral.json"),
      "--now",
      "2025-07-01",
    ]);
    expect(r.code).toBe(0);
    expect(r.body).toMatchObject({ valid: true, tee: "tdx", version: 4, tcbStatus: "UpToDate" });
    expect(r.body.measurement).toBe(r.body.mrtd);
    expect(r.body.rtmrs).toHaveLength(4);
  });

  for (const [file, version, now] of [
    ["tdx_prod_quote_SPR_E4.dat", 4, "2023-07-01"],
    ["quote_v5_sample.dat", 5, "2026-06-01"],
    ["ccel_cos-113-tdx-quote.dat", 4, "2025-01-01"],
  ] as const) {
    it(`TDX ${file} without collateral: valid, tcbStatus Unknown`, async () => {
      const r = await json(["attest", "verify", tdx(file), "--type", "tdx", "--now", now]);
      expect(r.code).toBe(0);
      expect(r.body).toMatchObject({ valid: true, tee: "tdx", version, tcbStatus: "Unknown" });
    });
  }

  it("rejects report.dat (a TDREPORT) with exit 1 and the reason on stderr", async () => {
    const r = await json(["attest", "verify", tdx("report.dat"), "--type", "tdx"]);
    expect(r.code).toBe(1);
    expect(r.body).toMatchObject({ valid: false, code: "MALFORMED" });
    expect(r.err).toMatch(/rejected: MALFORMED.*TDREPORT/);
  });

  it("rejects expired certificates (--now), swapped certificates and the wrong type", async () => {
    const late = await tpod([
      "attest",
      "verify",
      snp("virtee/report_milan.bin"),
      "--type",
      "snp",
      "--cert",
      snp("virtee/vcek_milan.der"),
      "--now",
      "2031-01-01",
    ]);
    expect(late.code).toBe(1);
    expect(late.err).toMatch(/EXPIRED \(vcek\)/);
    const swapped = await tpod([
      "attest",
      "verify",
      snp("virtee/report_milan.bin"),
      "--type",
      "snp",
      "--cert",
      snp("go-sev-guest/vcek.testcer"),
    ]);
    expect(swapped.code).toBe(1);
    expect(swapped.err).toMatch(/SIGNATURE_INVALID/);
    const wrong = await tpod(["attest", "verify", qvl("sgx_quote"), "--type", "tdx"]);
    expect(wrong.code).toBe(1);
    const snpAsTdx = await tpod(["attest", "verify", snp("virtee/report_milan.bin"), "--type", "tdx"]);
    expect(snpAsTdx.code).toBe(1);
  });

  it("applies a policy file and names the failed rule", async () => {
    const strict = join(tmp, "strict.yaml");
    writeFileSync(strict, "snp:\n  minTcb:\n    microcode: 200\n");
    const r = await json([
      "attest",
      "verify",
      snp("virtee/report_milan.bin"),
      "--type",
      "snp",
      "--cert",
      snp("virtee/vcek_milan.der"),
      "--policy",
      strict,
    ]);
    expect(r.code).toBe(1);
    expect(r.body).toMatchObject({
      valid: false,
      code: "POLICY_VIOLATION",
      field: "policy.snp.minTcb.microcode",
    });
    const debug = join(tmp, "nodebug.json");
    writeFileSync(debug, "{}");
    const d = await tpod([
      "attest",
      "verify",
      snp("go-sev-guest/attestation.bin"),
      "--type",
      "snp",
      "--cert",
      snp("go-sev-guest/vcek.testcer"),
      "--now",
      "2024-01-01",
      "--policy",
      debug,
    ]);
    expect(d.code).toBe(1);
    expect(d.err).toMatch(/policy.allowDebug/);
    const ok = join(tmp, "ok.yaml");
    writeFileSync(ok, "tdx:\n  acceptedTcbStatus: [UpToDate]\n");
    const t = await tpod([
      "attest",
      "verify",
      qvl("tdx_quote"),
      "--type",
      "tdx",
      "--collateral",
      qvl("tdx_quote_collateral.json"),
      "--now",
      "2025-07-01",
      "--policy",
      ok,
    ]);
    expect(t.code).toBe(0);
  });

  it("usage errors exit 2", async () => {
    expect((await tpod(["attest", "verify", qvl("sgx_quote")])).code).toBe(2);
    expect((await tpod(["attest", "verify", qvl("sgx_quote"), "--type", "tpm"])).code).toBe(2);
    expect(
      (await tpod(["attest", "verify", qvl("sgx_quote"), "--type", "sgx", "--now", "yesterday"])).code,
    ).toBe(2);
    expect(
      (
        await tpod([
          "attest",
          "verify",
          qvl("sgx_quote"),
          "--type",
          "sgx",
          "--cert",
          snp("virtee/vcek_milan.der"),
        ])
      ).code,
    ).toBe(2);
    expect((await tpod(["attest", "verify", "--type", "sgx"])).code).toBe(2);
  });

  it("the built bin verifies a sample in a separate process", async () => {
    const bin = resolve(import.meta.dirname, "../bin/tpod");
    const { stdout } = await promisify(execFile)(bin, [
      "attest",
      "verify",
      qvl("tdx_quote"),
      "--type",
      "tdx",
      "--collateral",
      qvl("tdx_quote_collateral.json"),
      "--now",
      "2025-07-01",
      "--json",
    ]);
    expect(JSON.parse(stdout)).toMatchObject({ valid: true, tcbStatus: "UpToDate" });
    const failed = await promisify(execFile)(bin, [
      "attest",
      "verify",
      tdx("report.dat"),
      "--type",
      "tdx",
    ]).catch((e: { code: number; stderr: string }) => e);
    expect(failed).toMatchObject({ code: 1 });
  });
});
