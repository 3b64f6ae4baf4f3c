/**
 * The one contract between the daemon and whatever decides a pod is paid for. The billing module (src/billing)
 * implements it against the Payments contract (ChannelGate); the daemon calls it at these points only.
 */
import type { Pod } from "@trustedpods/protocol";
import type { Address, Hex } from "viem";

/** Where the channel lives, as the provision request names it (protocol ChannelRef). */
export interface PaymentChannelRef {
  chainId: bigint;
  paymentsContract: string;
}

export interface ProvisionPaymentRequest {
  /** The daemon's name for the pod (engine pod id); absent (callers without a daemon): the gate derives it. */
  id?: string;
  publisher: Address;
  /** bytes32 pod id that keys the channel. */
  podId: Hex;
  pod: Pod;
  /** The rate the provider quoted; default: the pod's price under the provider's pricing. */
  quotedRatePerSecond?: bigint;
  /** The channel reference from the request; absent on an update (the pod keeps the channel it started with). */
  channel: PaymentChannelRef | undefined;
}

/** A pod that now runs: the admitted request without its channel terms, under the daemon's name. */
export type ProvisionedPod = Pick<ProvisionPaymentRequest, "publisher" | "podId" | "pod"> & { id: string };

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
