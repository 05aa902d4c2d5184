/** Start an express app on an ephemeral loopback port for a test; returns its base URL and a closer. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type express from 'express';

export async function listen(app: express.Application): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
