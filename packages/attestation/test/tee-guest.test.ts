// The attester's choice of report interface, against FAKE kernel trees in a temp directory (no SEV-SNP or TDX
// guest, no configfs-tsm on this machine): a fake configfs with tsm/report served by FakeConfigfsTsm (a real
// SEV-SNP report from hardware as outblob), fake /dev entries, and trees where the kernel features are missing.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { bytes, certs, describeWithSamples, SNP_SAMPLES } from "../../../test-support/attestation-samples.js";
import { computeReportData, newNonce, toHex, verifyEvidence } from "../src/index.js";
import { detectTeeGuestInterface, TeeUnavailableError, teeGuestAttester } from "../src/node/index.js";
import { FakeConfigfsTsm, snpCertTable } from "./fake-configfs-tsm.js";

const base = mkdtempSync(join(tmpdir(), "tpod-fake-kernel-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** A fake machine: its configfs mount point and /dev, with only the entries listed. */
function fakeMachine(name: string, o: { configfsMounted: boolean; devices?: string[] }) {
  const configRoot = join(base, name, "sys/kernel/config");
  const devDir = join(base, name, "dev");
  mkdirSync(configRoot, { recursive: true });
  mkdirSync(devDir, { recursive: true });
  // A mounted configfs lists its subsystems; an unmounted mount point is an empty directory.
  if (o.configfsMounted) mkdirSync(join(configRoot, "pci_ep"));
  for (const d of o.devices ?? []) writeFileSync(join(devDir, d), "");
  return { configRoot, devDir };
}

const attestFails = async (p: { configRoot: string; devDir: string }) => {
  const err = await teeGuestAttester(p)
    .attest(new Uint8Array(64))
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(TeeUnavailableError);
  expect(err).toMatchObject({ code: "TEE_UNAVAILABLE" });
  return err as TeeUnavailableError;
};

describeWithSamples(
  "TEE guest attester: picks configfs-tsm, names the missing kernel feature otherwise",
  () => {
    const sample = SNP_SAMPLES[1]!;
    const [vcek, ask, ark] = certs(...sample.certs);

    it("picks configfs-tsm when present (even beside /dev/sev-guest) and runs its report protocol", async () => {
      const machine = fakeMachine("snp", { configfsMounted: true, devices: ["sev-guest"] });
      const fake = new FakeConfigfsTsm({
        root: join(machine.configRoot, "tsm/report"),
        provider: "sev_guest",
        outblob: bytes(sample.report),
        auxblob: snpCertTable([
          { guid: "63da758d-e664-4564-adc5-f4b93be8accd", der: vcek! },
          { guid: "4ab7b379-bbac-4fe4-a02f-05aef327c782", der: ask! },
          { guid: "c0b406a4-a803-4952-9743-3fb6014cd0ae", der: ark! },
        ]),
      });
      await fake.init();
      expect(await detectTeeGuestInterface(machine)).toEqual({
        kind: "configfs-tsm",
        reportRoot: join(machine.configRoot, "tsm/report"),
      });

      const reportData = await computeReportData({
        nonce: newNonce(),
        libp2pPublicKey: new Uint8Array(36).fill(1),
        encryptionPublicKey: new Uint8Array(65).fill(2),
      });
      const env = await teeGuestAttester({ ...machine, fs: fake }).attest(reportData);
      // inblob carried exactly the binding; outblob (the real report) and the certificate table came back.
      expect(fake.inblobs.map(toHex)).toEqual([toHex(reportData)]);
      expect(env).toMatchObject({ tee: "snp", provider: "configfs-tsm:sev_guest" });
      expect(toHex(env.raw)).toBe(toHex(bytes(sample.report)));
      const ev = await verifyEvidence(env, { now: new Date(sample.now) });
      expect(ev.snp?.product).toBe("Milan");
    });

    it("a kernel with /dev/sev-guest but no configfs-tsm: names CONFIG_TSM_REPORTS", async () => {
      const err = await attestFails(
        fakeMachine("old-snp", { configfsMounted: true, devices: ["sev-guest"] }),
      );
      expect(err.missing).toBe("CONFIG_TSM_REPORTS");
      expect(err.field).toBe("CONFIG_TSM_REPORTS");
      expect(err.message).toMatch(
        /SEV-SNP guest .*sev-guest.*no configfs-tsm .*CONFIG_TSM_REPORTS, Linux >= 6\.7/,
      );
    });

    it("a TDX guest kernel with /dev/tdx_guest only: names CONFIG_TSM_REPORTS", async () => {
      const err = await attestFails(
        fakeMachine("old-tdx", { configfsMounted: true, devices: ["tdx_guest"] }),
      );
      expect(err.missing).toBe("CONFIG_TSM_REPORTS");
      expect(err.message).toMatch(/TDX guest .*tdx_guest/);
    });

    it("neither configfs-tsm nor a guest device: names both kernel features", async () => {
      const err = await attestFails(fakeMachine("plain", { configfsMounted: true }));
      expect(err.missing).toBe("CONFIG_TSM_REPORTS");
      expect(err.message).toMatch(/CONFIG_TSM_REPORTS.*CONFIG_SEV_GUEST.*CONFIG_TDX_GUEST_DRIVER/);
    });

    it("configfs not mounted: says so", async () => {
      const err = await attestFails(fakeMachine("nomount", { configfsMounted: false }));
      expect(err.missing).toBe("configfs");
      expect(err.message).toMatch(/configfs is not mounted on .*sys\/kernel\/config/);
    });

    it("configfs-tsm without a TEE driver registered (ENXIO on mkdir): names the guest driver", async () => {
      const machine = fakeMachine("no-driver", { configfsMounted: true });
      const fake = new FakeConfigfsTsm({
        root: join(machine.configRoot, "tsm/report"),
        provider: null,
        outblob: new Uint8Array(0),
      });
      await fake.init();
      const err = await teeGuestAttester({ ...machine, fs: fake })
        .attest(new Uint8Array(64))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TeeUnavailableError);
      expect((err as TeeUnavailableError).missing).toBe("tee-guest-driver");
      expect((err as Error).message).toMatch(
        /sev-guest \(CONFIG_SEV_GUEST\).*tdx-guest \(CONFIG_TDX_GUEST_DRIVER\)/,
      );
    });

    it("this machine (no TEE guest): a typed refusal, not a crash", async () => {
      await expect(teeGuestAttester().attest(new Uint8Array(64))).rejects.toBeInstanceOf(TeeUnavailableError);
    });
  },
);
