/** The flags every command that talks to the chain takes. */
export interface NetworkFlags {
  rpc?: string;
  contracts?: string;
  network?: string;
}

/** The flags every command that signs takes. */
export interface KeyFlags {
  key?: string;
  passwordFile?: string;
}

export interface NetworkAddOpts {
  rpc: string;
  contracts: string;
  chainId?: string;
  policy?: string;
  json?: boolean;
}
