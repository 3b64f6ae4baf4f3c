import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { bytes, certs, describeWithSamples, SNP_SAMPLES } from "../../../test-support/attestation-samples.js";
import { computeReportData, newNonce, toHex, verifyEvidence } from "../src/index.js";
import { configfsTsmAttester, GenerationRaceError } from "../src/node/index.js";
import { FakeConfigfsTsm, snpCertTable } from "./fake-configfs-tsm.js";

const base = mkdtempSync(join(tmpdir(), "tpod-fake-tsm-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describeWithSamples("configfs-tsm attester against a fake kernel serving real reports", () => {
  const sample = SNP_SAMPLES[1]!;
  const [vcek, ask, ark] = certs(...sample.certs);
  const keys = {
    libp2pPublicKey: new Uint8Array(36).fill(1),
    encryptionPublicKey: new Uint8Array(65).fill(2),
  };

  it("SEV-SNP: writes the binding as inblob, reads outblob and the auxblob certificate table, cleans up", async () => {
    const root = join(base, "snp/report");
    const fake = new FakeConfigfsTsm({
      root,
      provider: "sev_guest",
      outblob: bytes(sample.report),
      auxblob: snpCertTable([
        { guid: "c0b406a4-a803-4952-9743-3fb6014cd0ae", der: ark! },
        { guid: "63da758d-e664-4564-adc5-f4b93be8accd", der: vcek! },
        { guid: "4ab7b379-bbac-4fe4-a02f-05aef327c782", der: ask! },
      ]),
    });
    await fake.init();
    const reportData = await computeReportData({ nonce: newNonce(), ...keys });
    const env = await configfsTsmAttester({ root, fs: fake }).attest(reportData);
    expect(toHex(fake.inblobs[0]!)).toBe(toHex(reportData));
    expect(env.tee).toBe("snp");
    expect(env.provider).toBe("configfs-tsm:sev_guest");
    expect(env.certificates.map((c) => c.length)).toEqual([vcek!.length, ask!.length, ark!.length]);
    // The certificates from the table verify the served (real) report.
    const ev = await verifyEvidence(env, { now: new Date(sample.now) });
    expect(ev.snp?.product).toBe("Milan");
    expect(fake.created).toHaveLength(1);
    expect(readdirSync(root)).toEqual([]);
  });

  it("TDX: the provider selects the TEE type and the quote verifies", async () => {
    const root = join(base, "tdx/report");
    const fake = new FakeConfigfsTsm({ root, provider: "tdx_guest", outblob: bytes("dcap-qvl/tdx_quote") });
    await fake.init();
    const env = await configfsTsmAttester({ root, fs: fake }).attest(new Uint8Array(64).fill(9));
    expect(env.tee).toBe("tdx");
    expect((await verifyEvidence(env, { now: new Date("2025-07-01") })).tee).toBe("tdx");
  });

  it("retries when another writer changes the generation, and gives up after the retry budget", async () => {
    const root = join(base, "race/report");
    const fake = new FakeConfigfsTsm({
      root,
      provider: "sev_guest",
      outblob: bytes(sample.report),
      races: 2,
    });
    await fake.init();
    const env = await configfsTsmAttester({ root, fs: fake, certificates: [vcek!], retries: 3 }).attest(
      new Uint8Array(64),
    );
    expect(env.certificates).toHaveLength(1);
    expect(fake.created).toHaveLength(3);

    const always = new FakeConfigfsTsm({
      root: join(base, "race2/report"),
      provider: "sev_guest",
      outblob: bytes(sample.report),
      races: 10,
    });
    await always.init();
    await expect(
      configfsTsmAttester({ root: join(base, "race2/report"), fs: always, retries: 1 }).attest(
        new Uint8Array(64),
      ),
    ).rejects.toBeInstanceOf(GenerationRaceError);
    expect(readdirSync(join(base, "race2/report"))).toEqual([]);
  });

  it("refuses report data that is not 64 bytes and an unknown provider", async () => {
    const root = join(base, "bad/report");
    const fake = new FakeConfigfsTsm({ root, provider: "sev_guest", outblob: bytes(sample.report) });
    await fake.init();
    await expect(configfsTsmAttester({ root, fs: fake }).attest(new Uint8Array(32))).rejects.toMatchObject({
      code: "MALFORMED",
    });
    const other = new FakeConfigfsTsm({
      root: join(base, "other/report"),
      provider: "arm_cca_guest" as "sev_guest",
      outblob: new Uint8Array(10),
    });
    await other.init();
    await expect(
      configfsTsmAttester({ root: join(base, "other/report"), fs: other }).attest(new Uint8Array(64)),
    ).rejects.toMatchObject({ code: "UNSUPPORTED" });
  });

  it("fails clearly where the machine has no configfs-tsm", async () => {
    expect(existsSync(join(base, "none"))).toBe(false);
    await expect(
      configfsTsmAttester({ root: join(base, "none/report") }).attest(new Uint8Array(64)),
    ).rejects.toMatchObject({
      code: "UNSUPPORTED",
      message: expect.stringMatching(/configfs-tsm is not available.*ENOENT/),
    });
  });
});
