import type { IpfsCliOpts } from "./image-ipfs.js";

export interface CommonOpts {
  json?: boolean;
  ref?: string;
  quiet?: boolean;
}

export type InspectOpts = CommonOpts & IpfsCliOpts;
