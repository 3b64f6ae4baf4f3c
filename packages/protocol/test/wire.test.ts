import { fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PodSchema } from "../src/gen/trustedpods/v1/pod_pb.js";
import { formatManifest, parseManifest } from "../src/manifest.js";
import { validatePod } from "../src/pod.js";
import { podFromWire, podToWire, WireError } from "../src/wire.js";
import { validPod } from "./arbitraries.js";

describe("wire conversion", () => {
  it("generated pods are valid (the generator itself is checked)", () => {
    fc.assert(
      fc.property(validPod(), (pod) => {
        expect(validatePod(pod)).toEqual([]);
      }),
    );
  });

  it("Pod → wire → binary → wire → Pod is the identity", () => {
    fc.assert(
      fc.property(validPod({ uploaded: true }), (pod) => {
        const bytes = toBinary(PodSchema, podToWire(pod));
        expect(podFromWire(fromBinary(PodSchema, bytes))).toEqual(pod);
      }),
      { numRuns: 300 },
    );
  });

  it("Pod → manifest YAML → Pod is the identity", () => {
    fc.assert(
      fc.property(validPod(), (pod) => {
        expect(parseManifest(formatManifest(pod), "gen.yaml")).toEqual(pod);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses to send a secret that is still a local file", () => {
    const pod = parseManifest(
      `apiVersion: trustedpods/v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox}]
  volumes: [{name: s, secret: {file: ./s.txt}}]
`,
      "p.yaml",
    );
    expect(() => podToWire(pod)).toThrow(WireError);
    expect(() => podToWire(pod)).toThrow(
      /spec\.volumes\[0\]\.secret\.file: secret "s" is still a local file/,
    );
  });

  it("rejects invalid wire pods with typed errors naming each field", () => {
    const msg = fromBinary(PodSchema, new Uint8Array());
    try {
      podFromWire(msg);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(WireError);
      expect((e as WireError).issues.map((i) => i.message)).toEqual([
        "replicas is missing",
        "pod name must not be empty",
        "a pod needs at least one container",
      ]);
    }
  });

  it("decoding arbitrary bytes fails only with protobuf errors or WireError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        let msg: ReturnType<typeof fromBinary<typeof PodSchema>>;
        try {
          msg = fromBinary(PodSchema, bytes);
        } catch {
          return; // not protobuf at all
        }
        try {
          podFromWire(msg);
        } catch (e) {
          expect(e).toBeInstanceOf(WireError);
        }
      }),
    );
  });
});
