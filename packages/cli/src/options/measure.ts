export interface MeasureSnpOpts {
  ovmf: string;
  ovmfHash?: string;
  ovmfHashOnly?: boolean;
  kernel?: string;
  initrd?: string;
  append?: string;
  vcpus?: string;
  vcpuType?: string;
  vcpuSig?: string;
  vmmType: string;
  kvmInit: string;
  mode: string;
  guestFeatures?: string;
  json?: boolean;
}

export interface MeasureTdxOpts {
  firmware: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  pageOrder: string;
  json?: boolean;
}
