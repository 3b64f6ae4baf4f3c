/** `attest`: evidence binding the caller's nonce to this daemon's libp2p and encryption keys. Unsigned. */
import { publicKeyToProtobuf } from "@libp2p/crypto/keys";
import type { Ed25519PrivateKey } from "@libp2p/interface";
import {
  type Attester,
  computeReportData,
  envelopeToProto,
  MAX_NONCE_BYTES,
  MIN_NONCE_BYTES,
} from "@trustedpods/attestation";
import { RpcError } from "@trustedpods/p2p";
import { AttestRequestSchema, AttestResponseSchema, ErrorCode } from "@trustedpods/protocol";
import type { Logger } from "../log.js";
import { shortCall } from "./limits.js";
import { unary } from "./serve.js";

export interface AttestDeps {
  attester: Attester;
  peerKey: Ed25519PrivateKey;
  encryptionPublicKeyDer: Uint8Array;
  log: Logger;
}

export async function attest(d: AttestDeps, { nonce }: { nonce: Uint8Array }) {
  if (nonce.length < MIN_NONCE_BYTES || nonce.length > MAX_NONCE_BYTES)
    throw new RpcError(
      ErrorCode.INVALID_ARGUMENT,
      `nonce must be ${MIN_NONCE_BYTES} to ${MAX_NONCE_BYTES} bytes`,
      {
        details: { field: "nonce" },
      },
    );
  const libp2pPublicKey = publicKeyToProtobuf(d.peerKey.publicKey);
  const encryptionPublicKey = d.encryptionPublicKeyDer;
  let evidence: Awaited<ReturnType<Attester["attest"]>>;
  try {
    evidence = await d.attester.attest(
      await computeReportData({ nonce, libp2pPublicKey, encryptionPublicKey }),
    );
  } catch (err) {
    d.log.error({ err: (err as Error).message }, "attester failed");
    throw new RpcError(
      ErrorCode.ATTESTATION_FAILED,
      `the ${d.attester.kind} attester could not produce evidence`,
    );
  }
  return { evidence: envelopeToProto(evidence), libp2pPublicKey, encryptionPublicKey };
}

export const attestProtocol = unary("attest", AttestRequestSchema, AttestResponseSchema, attest, shortCall);
