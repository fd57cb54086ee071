/**
 * What the local HTTP servers (`pocketlm dashboard`, `pocketlm web`) share: which hosts count as
 * this machine, and listening with one clear line for each way it can fail.
 */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { UserError } from './errors.js';

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * Starts `server` on host:port (0 = a free port). Resolves with the port it got and the URL to
 * open (a wildcard host is opened as 127.0.0.1); a port in use, a host that does not exist here
 * or a privileged port is a UserError naming the flag to change.
 */
export async function listenOn(server: http.Server, host: string, port: number | undefined): Promise<{ port: number; url: string }> {
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') reject(new UserError(`port ${port} on ${host} is in use; choose another --port (0 picks a free one)`));
      else if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') reject(new UserError(`cannot listen on --host ${host}: ${e.code}`));
      else if (e.code === 'EACCES') reject(new UserError(`not allowed to listen on port ${port} (ports below 1024 need privileges); choose another --port`));
      else reject(e);
    };
    server.once('error', onError);
    server.listen(port ?? 0, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const got = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { port: got, url: `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : shown}:${got}/` };
}
