export interface ImageBuildOpts {
  out: string;
  workDir?: string;
  /** A file, true (the default lock) or false (--no-lock). */
  lock?: string | boolean;
  updateLock?: boolean;
  mirror?: string;
  expect?: string;
  ovmf?: string;
  ovmfHash?: string;
  json?: boolean;
}

export interface ImageMeasureOpts {
  image: string;
  ovmf: string;
  ovmfHash?: string;
  vcpus: string;
  vcpuType?: string[];
  vmmType?: string[];
  writeNotes?: boolean;
  guestFeatures?: string;
  kvmInit: string;
  json?: boolean;
}
