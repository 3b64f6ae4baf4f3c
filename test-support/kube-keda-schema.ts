// JSON schema for KEDA HTTP add-on's HTTPScaledObject (http.keda.sh/v1alpha1), written for these tests from
// the add-on's CRD (config/crd/bases/http.keda.sh_httpscaledobjects.yaml) and its reference documentation
// (keda.sh/http-add-on/.../reference/httpscaledobject). No cluster ran this CRD here. Unknown fields are
// rejected (additionalProperties: false) where the API server would silently prune them: stricter on purpose,
// so a misspelt field fails the test instead of disappearing.
import { Ajv } from "ajv";

const int32 = { type: "integer", minimum: -2147483648, maximum: 2147483647 };
const nonNegInt32 = { ...int32, minimum: 0 };

export const HTTP_SCALED_OBJECT_SCHEMA = {
  type: "object",
  required: ["apiVersion", "kind", "metadata", "spec"],
  additionalProperties: false,
  properties: {
    apiVersion: { const: "http.keda.sh/v1alpha1" },
    kind: { const: "HTTPScaledObject" },
    metadata: {
      type: "object",
      required: ["name"],
      properties: {
        name: { type: "string", pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", maxLength: 253 },
        namespace: { type: "string", pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", maxLength: 63 },
        labels: { type: "object", additionalProperties: { type: "string" } },
        annotations: { type: "object", additionalProperties: { type: "string" } },
      },
    },
    spec: {
      type: "object",
      required: ["scaleTargetRef"],
      additionalProperties: false,
      properties: {
        hosts: { type: "array", items: { type: "string", minLength: 1 } },
        pathPrefixes: { type: "array", items: { type: "string" } },
        scaleTargetRef: {
          type: "object",
          required: ["service", "port"],
          additionalProperties: false,
          properties: {
            name: { type: "string" },
            kind: { type: "string" },
            apiVersion: { type: "string" },
            deployment: { type: "string" },
            service: { type: "string", minLength: 1 },
            port: { ...int32, minimum: 1, maximum: 65535 },
            portName: { type: "string" },
          },
        },
        replicas: {
          type: "object",
          additionalProperties: false,
          properties: { min: nonNegInt32, max: nonNegInt32 },
        },
        scaledownPeriod: nonNegInt32,
        targetPendingRequests: nonNegInt32,
        scalingMetric: {
          type: "object",
          additionalProperties: false,
          properties: {
            concurrency: { type: "object", properties: { targetValue: int32 } },
            requestRate: {
              type: "object",
              properties: { targetValue: int32, window: { type: "string" }, granularity: { type: "string" } },
            },
          },
        },
        coldStartTimeoutFailoverRef: { type: "object" },
        timeouts: { type: "object" },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true });
const validateFn = ajv.compile(HTTP_SCALED_OBJECT_SCHEMA);

export function validateHTTPScaledObject(obj: unknown): void {
  if (!validateFn(obj)) {
    throw new Error(`HTTPScaledObject invalid: ${ajv.errorsText(validateFn.errors)}`);
  }
}
