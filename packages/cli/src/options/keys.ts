export interface PassOpts {
  passwordFile?: string;
  label?: string;
  json?: boolean;
}
