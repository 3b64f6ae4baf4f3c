// What a publisher learns when a provision fails: the class of the failure as a wire code, and the reason with
// the pod's secrets, its env values and the provider's paths removed.
import { RpcError } from "@trustedpods/p2p";
import { ErrorCode } from "@trustedpods/protocol";
import { describe, expect, it } from "vitest";
import { EngineError } from "../src/engine/errors.js";
import { GatewayError } from "../src/gateway/errors.js";
import { HOST_PATH, provisionFailure, REDACTED, Redactor } from "../src/provision/failure.js";

/** A Docker-API error as dockerode throws it: status in the message, the engine's words in the JSON body. */
function dockerError(status: number, message: string): Error {
  return Object.assign(new Error(`(HTTP code ${status}) server error - ${message} `), {
    statusCode: status,
    json: { cause: message, message, response: status },
  });
}

const RUNC_NOT_FOUND =
  'runc: runc create failed: unable to start container process: exec: "/no/such/entrypoint": stat /no/such/entrypoint: no such file or directory: OCI runtime attempted to invoke a command that was not found';

describe("Redactor", () => {
  it("removes a secret's whole value and each of its lines, longest first", () => {
    const r = new Redactor();
    r.addValue(new TextEncoder().encode("requirepass hunter2-very-secret\nuser admin on >pw-line-two\n"));
    r.addValue("hunter2"); // an env value contained in the secret: the secret's line still goes whole
    const out = r.clean(
      "config error near 'requirepass hunter2-very-secret' and 'user admin on >pw-line-two'; hunter2 again",
    );
    expect(out).not.toContain("hunter2");
    expect(out).not.toContain("pw-line-two");
    expect(out).toBe(`config error near '${REDACTED}' and '${REDACTED}'; ${REDACTED} again`);
  });

  it("keeps values too short to redact without mangling the message", () => {
    const r = new Redactor();
    r.addValue("1");
    r.addValue("yes");
    expect(r.clean("exit code 1: yes")).toBe("exit code 1: yes");
  });

  it("removes the provider's directories and the engine's storage paths, keeps paths inside the container", () => {
    const r = new Redactor();
    r.addPath("/srv/tpod/data/");
    r.addPath("relative/ignored");
    const out = r.clean(
      `open /srv/tpod/data/staging/p123/web/blobs/sha256/ab: no space; mount /var/lib/containers/storage/overlay/x/merged:/data failed; ${RUNC_NOT_FOUND}; /dev/shm/tpod-secrets-default/p1/s0 missing; /srv/tpod/database stays`,
    );
    expect(out).not.toContain("/srv/tpod/data/");
    expect(out).not.toContain("/var/lib/containers");
    expect(out).not.toContain("/dev/shm");
    expect(out).toContain(`open ${HOST_PATH}: no space`);
    expect(out).toContain(`mount ${HOST_PATH}:/data failed`);
    // The tenant's own path is what the publisher must fix: it stays.
    expect(out).toContain('exec: "/no/such/entrypoint": stat /no/such/entrypoint');
    // A sibling whose name only starts like the data dir is not the data dir.
    expect(out).toContain("/srv/tpod/database stays");
  });

  it("drops control characters and bounds the length", () => {
    const r = new Redactor();
    expect(r.clean("line one\n\u001b[31mred\u001b[0m\tend")).toBe("line one [31mred [0m end");
    const long = r.clean("x".repeat(5000));
    expect(long.length).toBeLessThanOrEqual(600);
    expect(long.endsWith("…")).toBe(true);
  });
});

describe("provisionFailure", () => {
  const redactor = () => {
    const r = new Redactor();
    r.addPath("/srv/tpod/data");
    r.addValue("s3cret-password-value");
    return r;
  };

  it("an engine failure is ENGINE_FAILED with the engine's reason, not a bare INTERNAL", () => {
    const e = provisionFailure(
      new EngineError("ENGINE_FAILURE", `container web could not start: ${RUNC_NOT_FOUND}`),
      "engine",
      redactor(),
    );
    expect(e).toBeInstanceOf(RpcError);
    expect(e.code).toBe(ErrorCode.ENGINE_FAILED);
    expect(e.codeName).toBe("ENGINE_FAILED");
    expect(e.message).toContain("container web could not start");
    expect(e.message).toContain("/no/such/entrypoint");
  });

  it("a raw Docker-API error gets the code of its stage and the engine's own words", () => {
    const e = provisionFailure(
      dockerError(
        500,
        "container-init binary not found on the host: stat /usr/libexec/podman/catatonit: no such file",
      ),
      "engine",
      redactor(),
    );
    expect(e.code).toBe(ErrorCode.ENGINE_FAILED);
    expect(e.message).toBe(
      `the container engine could not start the pod: container-init binary not found on the host: stat ${HOST_PATH}: no such file`,
    );
    const img = provisionFailure(
      new Error("unexpected end of tar in /srv/tpod/data/staging/x"),
      "image",
      redactor(),
    );
    expect(img.code).toBe(ErrorCode.IMAGE_FAILED);
    expect(img.message).toBe(`the image could not be prepared: unexpected end of tar in ${HOST_PATH}`);
    expect(
      provisionFailure(new EngineError("IMAGE_LOAD_FAILED", "bad layer"), "engine", redactor()).code,
    ).toBe(ErrorCode.IMAGE_FAILED);
  });

  it("secret values never reach the message, whatever class the error has", () => {
    const leaky = "env PASSWORD=s3cret-password-value rejected";
    for (const err of [
      new EngineError("ENGINE_FAILURE", leaky),
      dockerError(500, leaky),
      new RpcError(ErrorCode.UNAVAILABLE, leaky, { details: { field: "secret" } }),
      new GatewayError("POD_START_FAILED", leaky),
    ]) {
      const e = provisionFailure(err, "engine", redactor());
      expect(e.message).not.toContain("s3cret-password-value");
      expect(e.message).toContain(REDACTED);
    }
  });

  it("keeps the codes of typed errors; gateway failures are GATEWAY_FAILED, route conflicts stay as they were", () => {
    const typed = new RpcError(ErrorCode.UNAVAILABLE, "cannot pull image bafy: timeout", {
      details: { cid: "bafy" },
    });
    expect(provisionFailure(typed, "image", redactor())).toBe(typed);
    expect(provisionFailure(new GatewayError("HOST_CONFLICT", "taken"), "gateway", redactor()).code).toBe(
      ErrorCode.ALREADY_EXISTS,
    );
    const gw = provisionFailure(
      new GatewayError("GATEWAY_CLOSING", "the gateway is closing"),
      "gateway",
      redactor(),
    );
    expect(gw.code).toBe(ErrorCode.GATEWAY_FAILED);
    expect(gw.message).toBe("the gateway could not route the pod: the gateway is closing");
    const late = provisionFailure(
      Object.assign(new Error("x"), { name: "TimeoutError" }),
      "engine",
      redactor(),
    );
    expect(late.code).toBe(ErrorCode.DEADLINE_EXCEEDED);
    const unknown = provisionFailure(
      new Error("disk I/O error at /srv/tpod/data/state.db"),
      null,
      redactor(),
    );
    expect(unknown.code).toBe(ErrorCode.INTERNAL);
    expect(unknown.message).toBe(`provisioning failed: disk I/O error at ${HOST_PATH}`);
  });
});
