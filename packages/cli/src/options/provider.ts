export interface RegistryOpts {
  config: string;
  json?: boolean;
  name?: string;
  region?: string[];
  teeType?: string[];
  multiaddr?: string[];
  metadataCid?: string;
  release?: string;
}
