// Starts a real plexhub for the generator and the tests: the binary from PLEXHUB_BIN (default
// <repo>/target/debug/plexhub), SQLite in a data directory, a free port, ready when /healthz
// answers.
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

export const ADMIN_TOKEN = "sdk-test-admin-token-0123456789";

export function hubBinary() {
  return process.env.PLEXHUB_BIN ?? resolve(here, "../../../target/debug/plexhub");
}

export function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

async function waitHealthy(url, child, output) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`plexhub exited with ${child.exitCode}:\n${output.join("")}`);
    }
    try {
      const answer = await fetch(`${url}/healthz`);
      if (answer.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error(`plexhub did not become healthy at ${url}:\n${output.join("")}`);
}

/**
 * Starts a hub. `options.dataDir` and `options.port` reuse a previous hub's (a restart);
 * `options.args` adds flags.
 */
export async function startHub(options = {}) {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "plexhub-sdk-"));
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const args = ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, ...(options.args ?? [])];
  const child = spawn(hubBinary(), args, {
    env: { ...process.env, PLEXHUB_ADMIN_TOKEN: ADMIN_TOKEN, PLEXHUB_LOG_LEVEL: "warn", RUST_LOG: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = [];
  const keep = (chunk) => {
    output.push(chunk.toString());
    if (process.env.HUB_LOG) process.stderr.write(chunk);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  await waitHealthy(url, child, output);
  return {
    url,
    port,
    dataDir,
    adminToken: ADMIN_TOKEN,
    output,
    /** Stops the process (SIGTERM, then SIGKILL after 5 s) and waits for it. */
    stop() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((done) => {
        const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
        child.once("exit", () => {
          clearTimeout(kill);
          done();
        });
        child.kill("SIGTERM");
      });
    },
  };
}
