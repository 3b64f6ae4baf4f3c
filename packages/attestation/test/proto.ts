// Wire types for tests, from the generated protocol package.
export { create } from "@bufbuild/protobuf";
export { AttestResponseSchema, EvidenceSchema, TeeType } from "@trustedpods/protocol";
