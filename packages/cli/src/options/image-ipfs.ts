export interface IpfsCliOpts {
  ipfsRepo?: string;
  kuboApi?: string;
  peer?: string[];
  listen?: string[];
  network?: string;
  timeout?: string;
  json?: boolean;
  quiet?: boolean;
  ref?: string;
}
