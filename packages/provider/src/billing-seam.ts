/**
 * Where the daemon asks the billing module whether a pod is paid for. The billing module (src/billing)
 * implements PaymentGate against the Payments contract; the daemon only calls it at these points.
 */
import type { Pod } from "@trustedpods/protocol";
import type { Address, Hex } from "viem";

export interface ProvisionPaymentRequest {
  /** Engine pod id (derived from publisher and pod id). */
  id: string;
  publisher: Address;
  podId: Hex;
  pod: Pod;
  /** The channel reference from the request. */
  channel: { chainId: bigint; paymentsContract: string } | undefined;
}

export interface ProvisionedPod {
  id: string;
  publisher: Address;
  podId: Hex;
  pod: Pod;
}

export interface PaymentGate {
  /**
   * Called BEFORE anything is pulled or started. Throws an RpcError with code PAYMENT_REQUIRED and
   * `details.field` naming what is wrong (deposit, rate, notice, royalties, channel) to refuse.
   */
  checkProvision(req: ProvisionPaymentRequest): Promise<void>;
  /** Also before an update: the new pod may cost more than the channel's rate. */
  checkUpdate?(req: ProvisionPaymentRequest): Promise<void>;
  /** The update runs: the channel must pay the updated pod's price from now on. */
  onUpdated?(req: ProvisionPaymentRequest): Promise<void> | void;
  /** The pod runs: start metering it. */
  onProvisioned(pod: ProvisionedPod): Promise<void> | void;
  /** The pod is gone: stop metering, settle what is owed. */
  onDeleted(id: string): Promise<void> | void;
}

/**
 * FOR TESTS ONLY: accepts every pod without looking at the chain. A daemon running it gives compute away;
 * `tpod provider serve` never uses it.
 */
export class AllowAllPaymentGate implements PaymentGate {
  readonly provisioned: string[] = [];
  readonly deleted: string[] = [];
  async checkProvision(): Promise<void> {}
  onProvisioned(pod: ProvisionedPod): void {
    this.provisioned.push(pod.id);
  }
  onDeleted(id: string): void {
    this.deleted.push(id);
  }
}
