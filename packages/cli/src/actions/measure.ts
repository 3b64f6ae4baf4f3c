import { readFile, stat } from "node:fs/promises";
import {
  type DirectBoot,
  KVM_INITS,
  type KvmInit,
  MeasureError,
  measureSev,
  SEV_MODES,
  type SevMeasurement,
  type SevMode,
  snpOvmfHash,
  TDX_PAGE_ORDERS,
  type TdxMeasurement,
  type TdxPageOrder,
  measureTdx as tdxMeasure,
  toHex,
  VMM_TYPES,
  type VmmType,
} from "@trustedpods/attestation";
import type { CommandContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import type { MeasureSnpOpts, MeasureTdxOpts } from "../options/measure.js";
import { printJson } from "../output.js";

/** Firmware images are a few MiB; anything much larger is the wrong file. */
const MAX_OVMF_BYTES = 64 * 1024 * 1024;

const usage = (message: string) => new CliError(message, ExitCode.usage);

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  const v = value.toLowerCase();
  if (!(allowed as readonly string[]).includes(v)) {
    throw usage(`${flag} must be one of ${allowed.join(", ")}, got ${value}`);
  }
  return v as T;
}

function hexBigInt(flag: string, value: string): bigint {
  const digits = value.replace(/^0x/i, "");
  if (!/^[0-9a-fA-F]{1,16}$/.test(digits)) throw usage(`${flag} must be a hex number of at most 64 bits`);
  return BigInt(`0x${digits}`);
}

function hexBytes(flag: string, value: string, length: number): Uint8Array {
  const digits = value.replace(/^0x/i, "");
  if (!new RegExp(`^[0-9a-fA-F]{${2 * length}}$`).test(digits)) {
    throw usage(`${flag} must be ${length} bytes of hex (${2 * length} digits)`);
  }
  return Uint8Array.from({ length }, (_, i) => Number.parseInt(digits.slice(2 * i, 2 * i + 2), 16));
}

function positiveInt(flag: string, value: string | undefined): number {
  if (value === undefined) throw usage(`${flag} is required`);
  if (!/^[1-9][0-9]*$/.test(value)) throw usage(`${flag} must be a positive integer, got ${value}`);
  return Number(value);
}

/** Reads a whole file; character devices are allowed so that /dev/null stands for an empty kernel or initrd. */
async function readInput(path: string, what: string, maxBytes?: number): Promise<Uint8Array> {
  const st = await stat(path).catch(() => {
    throw new CliError(`${what} ${path} cannot be read`);
  });
  if (st.isDirectory()) throw new CliError(`${what} ${path} is a directory`);
  if (maxBytes !== undefined && st.size > maxBytes) {
    throw new CliError(`${what} ${path} is larger than ${maxBytes} bytes`);
  }
  try {
    return new Uint8Array(await readFile(path));
  } catch (err) {
    throw new CliError(`${what} ${path} cannot be read: ${(err as Error).message}`);
  }
}

const ONLY_WITH_FULL_MEASUREMENT = [
  "ovmfHash",
  "kernel",
  "initrd",
  "append",
  "vcpus",
  "vcpuType",
  "vcpuSig",
  "guestFeatures",
] as const;

/** `tpod measure snp` */
export async function measureSnp({ io, setExitCode }: CommandContext, opts: MeasureSnpOpts): Promise<void> {
  const mode = oneOf<SevMode>("--mode", opts.mode, SEV_MODES);
  if (opts.ovmfHashOnly) {
    const extra = ONLY_WITH_FULL_MEASUREMENT.filter((k) => opts[k] !== undefined);
    if (extra.length > 0 || mode !== "snp") {
      throw usage("--ovmf-hash-only takes --ovmf (and --json) only; it hashes the SNP firmware pages");
    }
  }
  if ((opts.initrd !== undefined || opts.append !== undefined) && opts.kernel === undefined) {
    throw usage("--initrd and --append need --kernel (measured direct boot)");
  }
  const vmmType = oneOf<VmmType>("--vmm-type", opts.vmmType, VMM_TYPES);
  const kvmInit = oneOf<KvmInit>("--kvm-init", opts.kvmInit, KVM_INITS);
  const vcpus = opts.ovmfHashOnly ? 0 : positiveInt("--vcpus", opts.vcpus);
  const ovmfHash = opts.ovmfHash === undefined ? undefined : hexBytes("--ovmf-hash", opts.ovmfHash, 48);
  const guestFeatures =
    opts.guestFeatures === undefined ? undefined : hexBigInt("--guest-features", opts.guestFeatures);
  const vcpuSig = opts.vcpuSig === undefined ? undefined : Number(hexBigInt("--vcpu-sig", opts.vcpuSig));

  const ovmf = await readInput(opts.ovmf, "OVMF image", MAX_OVMF_BYTES);
  try {
    if (opts.ovmfHashOnly) {
      const hash = toHex(await snpOvmfHash(ovmf));
      if (opts.json) printJson(io, { ovmfHash: hash });
      else io.out(hash);
      return;
    }
    const boot = opts.kernel === undefined ? undefined : await readBoot(opts);
    const m = await measureSev({
      mode,
      ovmf,
      vcpus,
      vmmType,
      kvmInit,
      ...(ovmfHash ? { ovmfHash } : {}),
      ...(boot ? { boot } : {}),
      ...(opts.vcpuType !== undefined ? { vcpuType: opts.vcpuType } : {}),
      ...(vcpuSig !== undefined ? { vcpuSig } : {}),
      ...(guestFeatures !== undefined ? { guestFeatures } : {}),
    });
    if (opts.json) printJson(io, measurementJson(m, opts.vcpuType));
    else io.out(toHex(m.digest));
    if (!opts.json && m.kernelHashes === "unsupported") {
      io.err(
        "note: this OVMF has no kernel hashes table: a kernel, initrd and command line are not measured",
      );
    }
  } catch (err) {
    if (!(err instanceof MeasureError)) throw err;
    // Bad arguments are usage errors (exit 2); firmware that cannot be measured is a failure (exit 1).
    const isUsage = err.code === "INVALID_ARGUMENT" || err.code === "UNKNOWN_VCPU_TYPE";
    io.err(`error: ${err.code}: ${err.message}`);
    if (opts.json) printJson(io, { error: err.code, message: err.message });
    setExitCode(isUsage ? ExitCode.usage : ExitCode.failure);
  }
}

async function readBoot(opts: MeasureSnpOpts | MeasureTdxOpts): Promise<DirectBoot> {
  return {
    kernel: await readInput(opts.kernel!, "kernel"),
    ...(opts.initrd !== undefined ? { initrd: await readInput(opts.initrd, "initrd") } : {}),
    ...(opts.append !== undefined ? { append: opts.append } : {}),
  };
}

const hex = (n: number | bigint) => `0x${n.toString(16)}`;

function measurementJson(m: SevMeasurement, vcpuType: string | undefined) {
  return {
    digest: toHex(m.digest),
    mode: m.mode,
    ...(m.ovmfHash ? { ovmfHash: toHex(m.ovmfHash) } : {}),
    vcpus: m.vcpus,
    ...(vcpuType !== undefined ? { vcpuType } : {}),
    ...(m.vcpuSig !== undefined ? { vcpuSig: hex(m.vcpuSig) } : {}),
    vmmType: m.vmmType,
    kvmInit: m.kvmInit,
    guestFeatures: hex(m.guestFeatures),
    kernelHashes: m.kernelHashes,
    sections: m.sections.map((s) => ({ type: s.type, gpa: hex(s.gpa), size: hex(s.size) })),
  };
}

/** `tpod measure tdx` */
export async function measureTdx({ io, setExitCode }: CommandContext, opts: MeasureTdxOpts): Promise<void> {
  if ((opts.initrd !== undefined || opts.append !== undefined) && opts.kernel === undefined) {
    throw usage("--initrd and --append need --kernel (direct boot)");
  }
  const pageOrder = oneOf<TdxPageOrder>("--page-order", opts.pageOrder, TDX_PAGE_ORDERS);
  const firmware = await readInput(opts.firmware, "TDVF firmware", MAX_OVMF_BYTES);
  try {
    const boot = opts.kernel === undefined ? undefined : await readBoot(opts);
    const m = await tdxMeasure({ firmware, pageOrder, ...(boot ? { boot } : {}) });
    if (opts.json) printJson(io, tdxMeasurementJson(m));
    else
      io.out(
        tdxRegisters(m)
          .map(([name, value]) => `${name} ${value}`)
          .join("\n"),
      );
    if (!opts.json && boot) {
      io.err(
        "note: RTMR1/RTMR2 assume a recent edk2 kernel loader (not Debian's 2025.02 OVMF); RTMR0 is not computed (docs/measure.md)",
      );
    }
  } catch (err) {
    if (!(err instanceof MeasureError)) throw err;
    io.err(`error: ${err.code}: ${err.message}`);
    if (opts.json) printJson(io, { error: err.code, message: err.message });
    setExitCode(err.code === "INVALID_ARGUMENT" ? ExitCode.usage : ExitCode.failure);
  }
}

function tdxRegisters(m: TdxMeasurement): [string, string][] {
  const registers: [string, string][] = [["mrtd", toHex(m.mrtd)]];
  if (m.rtmr1) registers.push(["rtmr1", toHex(m.rtmr1.value)]);
  if (m.rtmr2) registers.push(["rtmr2", toHex(m.rtmr2.value)]);
  return registers;
}

function tdxMeasurementJson(m: TdxMeasurement) {
  return {
    ...Object.fromEntries(tdxRegisters(m)),
    pageOrder: m.pageOrder,
    ...(m.rtmr1 ? { rtmr1Events: m.rtmr1.events.map(toHex) } : {}),
    ...(m.rtmr2 ? { rtmr2Events: m.rtmr2.events.map(toHex) } : {}),
    sections: m.sections.map((s) => ({
      type: s.type,
      gpa: hex(s.gpa),
      size: hex(s.memorySize),
      pageAdd: s.pageAdd,
      extend: s.extend,
    })),
  };
}
