import { measureFail } from "../errors.js";

/**
 * CPUID Fn0000_0001_EAX (family, model, stepping) as AMD's CPUID specification (#25481) packs it. QEMU puts
 * it in the boot vCPU's RDX, so it is part of the measured VMSA.
 */
export function cpuSignature(family: number, model: number, stepping: number): number {
  const [familyLow, familyHigh] = family > 0xf ? [0xf, (family - 0xf) & 0xff] : [family, 0];
  return (
    ((familyHigh << 20) |
      (((model >> 4) & 0xf) << 16) |
      (familyLow << 8) |
      ((model & 0xf) << 4) |
      (stepping & 0xf)) >>>
    0
  );
}

/** Family, model and stepping of QEMU's built-in EPYC CPU models (target/i386/cpu.c builtin_x86_defs). */
const MODELS: Record<string, [family: number, model: number, stepping: number]> = {
  EPYC: [23, 1, 2],
  "EPYC-v1": [23, 1, 2],
  "EPYC-v2": [23, 1, 2],
  "EPYC-IBPB": [23, 1, 2],
  "EPYC-v3": [23, 1, 2],
  "EPYC-v4": [23, 1, 2],
  "EPYC-Rome": [23, 49, 0],
  "EPYC-Rome-v1": [23, 49, 0],
  "EPYC-Rome-v2": [23, 49, 0],
  "EPYC-Rome-v3": [23, 49, 0],
  "EPYC-Milan": [25, 1, 1],
  "EPYC-Milan-v1": [25, 1, 1],
  "EPYC-Milan-v2": [25, 1, 1],
  "EPYC-Genoa": [25, 17, 0],
  "EPYC-Genoa-v1": [25, 17, 0],
  "EPYC-Turin": [26, 0, 0],
};

export const VCPU_TYPES: readonly string[] = Object.keys(MODELS);

export function vcpuSignature(vcpuType: string): number {
  // hasOwn: "toString" and friends are not CPU models.
  const fms = Object.hasOwn(MODELS, vcpuType) ? MODELS[vcpuType] : undefined;
  if (!fms) {
    measureFail(
      "UNKNOWN_VCPU_TYPE",
      `unknown vCPU type ${JSON.stringify(vcpuType)}; known types: ${VCPU_TYPES.join(", ")}`,
    );
  }
  return cpuSignature(...fms);
}
