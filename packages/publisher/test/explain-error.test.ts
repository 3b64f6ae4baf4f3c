// What the web app shows when a provider refuses a provision: the SDK's error, explained. The deploy page and
// the pods page show explainError() of what the SDK threw, so this is the text a browser user reads.
import { RpcError } from "@trustedpods/p2p";
import { ErrorCode } from "@trustedpods/protocol";
import { describe, expect, it } from "vitest";
import { explainError, PublisherError, providerError } from "../src/index.js";

const REASON =
  'the container engine could not start the pod: container web could not start: runc: exec: "/no/such/entrypoint": stat /no/such/entrypoint: no such file or directory';

describe("explainError for a provider's provision failure", () => {
  it("keeps the class code and the provider's reason, and says what to do", () => {
    const err = providerError("provision", new RpcError(ErrorCode.ENGINE_FAILED, REASON, { remote: true }));
    expect(err).toBeInstanceOf(PublisherError);
    expect((err as PublisherError).message).toBe(
      `provision: the provider refused (ENGINE_FAILED): ${REASON}`,
    );
    const shown = explainError(err);
    expect(shown).toContain("(ENGINE_FAILED)");
    expect(shown).toContain("/no/such/entrypoint");
    expect(shown).toContain("fix the image or the manifest and deploy again");
    expect(shown).not.toMatch(/INTERNAL|provisioning failed$/);
  });

  it("an image failure and a gateway failure say theirs", () => {
    const image = explainError(
      providerError(
        "provision",
        new RpcError(ErrorCode.IMAGE_FAILED, "the image could not be prepared: bad layer"),
      ),
    );
    expect(image).toContain("(IMAGE_FAILED): the image could not be prepared: bad layer");
    const gateway = explainError(
      providerError(
        "update",
        new RpcError(ErrorCode.GATEWAY_FAILED, "the gateway could not route the pod: closing"),
      ),
    );
    expect(gateway).toContain("(GATEWAY_FAILED)");
    expect(gateway).toContain("choose another provider");
  });
});
