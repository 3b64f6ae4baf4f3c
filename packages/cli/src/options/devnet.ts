export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export type LogLevel = (typeof LOG_LEVELS)[number];

export interface DevnetUpOpts {
  json?: boolean;
  gatewayPort: string;
  chainPort: string;
  webPort: string;
  dir?: string;
  engineOwner: string;
  logLevel: string;
  providerVm?: string;
  vmMemory: string;
  vmCpus: string;
}
