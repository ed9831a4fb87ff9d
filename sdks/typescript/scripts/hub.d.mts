export declare const ADMIN_TOKEN: string;
export declare function hubBinary(): string;
export declare function freePort(): Promise<number>;
export interface Hub {
  url: string;
  port: number;
  dataDir: string;
  adminToken: string;
  output: string[];
  stop(): Promise<void>;
}
export declare function startHub(options?: { dataDir?: string; port?: number; args?: string[] }): Promise<Hub>;
