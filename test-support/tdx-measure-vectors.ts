// TDX measurement reference values. Nothing here was produced by the code under test:
// - "oracle": aleph-im/aleph-vm's standard-library Python predictor (src/aleph/vm/vprogram/tdx_measurement.py
//   at 2496873), run locally with python3 on the named files (per-page SEAMCALL order only).
// - "aleph pinned": digests that repository's tests pin; the RTMR2 pair is stated there as read from
//   hardware (QEMU 10.2.4, edk2-stable202602 TDVF, Ubuntu 7.0.0-34 kernel), which we could not re-check.
// The multi-MB inputs are not in the repository: the gated tests look for them in TDX_TESTDATA (see
// measure-tdx.test.ts and docs/measure.md, "TDX measurement").

export interface FirmwareVector {
  /** File name in the TDX test-data directory. */
  file: string;
  /** Where the file comes from (deb.debian.org only). */
  source: string;
  sha256: string;
  /** MRTD, per-page order. */
  mrtd: string;
}

export const FIRMWARE_VECTORS: FirmwareVector[] = [
  {
    file: "ovmf_2025.02-8+deb13u1_OVMF.fd",
    source: "Debian trixie ovmf 2025.02-8+deb13u1, /usr/share/ovmf/OVMF.fd",
    sha256: "14954040cc754ade0c625ac3470ea46d4c14318b5b1396de4ef77090203d76db",
    mrtd: "bdc6fb145880f06f30c8b346b8dce2a99d9351b56892df22f80fcf6574caa9f9c31df8e8576d53b4d0cd1c3f28910e11",
  },
  {
    file: "ovmf_2022.11-6+deb12u2_OVMF.fd",
    source: "Debian bookworm ovmf 2022.11-6+deb12u2, /usr/share/ovmf/OVMF.fd",
    sha256: "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773",
    mrtd: "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47",
  },
];

/** Debian bookworm linux-image-6.1.0-57-cloud-amd64 6.1.192-3, /boot/vmlinuz-6.1.0-57-cloud-amd64 (oracle). */
export const KERNEL_VECTOR = {
  file: "vmlinuz-6.1.0-57-cloud-amd64",
  sha256: "1a7ac0c40b10b98353b6f85fa9a0d4f2703287979567e19629d35ad2d777d124",
  authenticode:
    "fafa6ba73c763f0f280fb429af0fb69dbf1634ce2fa2d3b67d8db715b39841145aaf6b9bc3f69c8dfa008be54bae74d8",
  rtmr1: "fe068c2a5d2e0516aa936146ca9ab6e3a055ab5b2f245e9d1b21b1c980ea360a95cc82844dc5e6855ac3ca428956e672",
};

/** Small inputs built in the test (oracle unless noted). */
export const SYNTHETIC = {
  /** aleph pinned (and reproduced by the oracle): their three-page TDVF, rebuilt by buildTdvf(). */
  alephTdvfMrtd:
    "168f5582b72265ed01aad1edd402f5d096c12d95385b5f38959b5cc8c128e6efe6e13e854e211a1ee4e4a4eeafa36fa6",
  /** aleph pinned: their synthetic PE32+ (sections out of file order, trailing data, 32-byte cert table). */
  alephPeAuthenticode:
    "27ca0b497c08dcf49e302a2dd4bbe74889b19d0d1af84364c8cad3472d5ba1bfda1e7cfe7fb94848d491cdfd2a163410",
  /** The same PE with only 4 data directories (no certificate-table entry). */
  alephPe4DirsAuthenticode:
    "2abd9c94535246364c6693ae16062cc580e12829bd724fcedc5b2228c71cd870905877799476ba85ba28ef18e782b492",
  /** RTMR1 with the synthetic PE as kernel. */
  alephPeRtmr1:
    "e6bbef7058681cf9e2d35d0f565dd11d62d3aa89738a3a3926d5b2905f0ce1b5dedd51e1be8d30d28f499c600a8a8e05",
  /** RTMR2 for append "console=ttyS0" and the 6-byte initrd "initrd". */
  rtmr2ConsoleInitrd:
    "641748e08e314a3641c5384d778c87ee2ffcc6e6cd4c5c7d79a04ca181ed17b9b52f1810dc533593e96a0dd98b9c5049",
  /** RTMR2 for an empty append and the initrd "initrd": the prefix alone. */
  rtmr2EmptyAppendInitrd:
    "a1d223e625bcefef4dd071737e616512ff0c390dddb7b0ae98953b23bc4d3690ff1c6c0bcc80dc473184cff469b19475",
};

/** aleph pinned, stated as read from a TDX guest: LoadOptions digest, initrd SHA-384 and the RTMR2 they give. */
export const HARDWARE_RTMR2 = {
  append: "root=LABEL=cloudimg-rootfs ro console=ttyS0",
  loadOptionsDigest:
    "b8c85d40a1d555a451571e24d7d7c4c331bc15721d6e4b2a5cb5093214c44174822a0916aa4d622d4309644de99cd59c",
  initrdSha384:
    "88de90bedcc560064688c74ccd6609a25ed9d48b0a0e13d8b2a558212724d8755b2c8114dcf04b8d51ea4cf7782e3091",
  rtmr2: "972547466cb6bcb8a23cd479e9258c3affbbc4f0ba2805d732477200d0dff8432447c7a775e70453cdb51f018a306ece",
};
