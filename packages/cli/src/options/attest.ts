export interface AttestVerifyOpts {
  type: string;
  cert: string[];
  collateral?: string;
  now?: string;
  policy?: string;
  json?: boolean;
}
