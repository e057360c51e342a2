/**
 * Green's way to Rails (the strangler pattern): the very request, same method, path, query and
 * body, to blue over pooled keep-alive connections; blue's status and body come back unchanged.
 * An idle pooled connection is dropped after FREE_SOCKET_MS, well before Puma or the Python blue
 * would close it under us; a GET that still meets a connection closed by blue is retried once on a
 * fresh one (a POST never is: it may have reached blue).
 */
import http from 'node:http';

import { HttpError } from './errors';

export const FORWARD_TIMEOUT_MS = 33_000; // above blue's maximum injected latency (30 s), below HAProxy's 35 s
export const FREE_SOCKET_MS = 10_000;
export const FORWARD_POOL_SIZE = 16; // HAProxy sends at most 16 requests at once per server
const FORWARDED_RESPONSE_HEADERS = ['content-type', 'x-fault-injected'];
const RETRYABLE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

export interface ForwardedAnswer {
  status: number;
  body: Buffer;
  headers: Record<string, string>;
}

export class RailsForwarder {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: FORWARD_POOL_SIZE,
                                           timeout: FREE_SOCKET_MS, scheduling: 'lifo' });
  connectionsOpened = 0; // tests check that connections are reused

  constructor(readonly base: URL) {}

  async forward(method: string, path: string, body: Buffer, headers: Record<string, string>): Promise<ForwardedAnswer> {
    try {
      return await this.once(method, path, body, headers);
    } catch (error) {
      const reused = (error as { reusedSocket?: boolean }).reusedSocket;
      if (method === 'GET' && reused && RETRYABLE.has((error as NodeJS.ErrnoException).code ?? '')) {
        return this.once(method, path, body, headers).catch((again) => { throw unavailable(again); });
      }
      throw unavailable(error);
    }
  }

  private once(method: string, path: string, body: Buffer, headers: Record<string, string>): Promise<ForwardedAnswer> {
    return new Promise((resolve, reject) => {
      const request = http.request({
        host: this.base.hostname, port: Number(this.base.port), method, path, agent: this.agent,
        headers: { ...headers, ...(body.length ? { 'content-length': String(body.length) } : {}) },
      }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const kept: Record<string, string> = {};
          for (const name of FORWARDED_RESPONSE_HEADERS) {
            const value = response.headers[name];
            if (typeof value === 'string' && value) kept[name] = value;
          }
          resolve({ status: response.statusCode ?? 502, body: Buffer.concat(chunks), headers: kept });
        });
      });
      request.on('socket', () => {
        if (!request.reusedSocket) this.connectionsOpened++;
      });
      request.setTimeout(FORWARD_TIMEOUT_MS, () => request.destroy(Object.assign(new Error(`no answer within ${FORWARD_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })));
      request.on('error', (error) => reject(Object.assign(error, { reusedSocket: request.reusedSocket })));
      request.end(body.length ? body : undefined);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function unavailable(error: unknown): HttpError {
  const err = error as NodeJS.ErrnoException;
  return new HttpError(502, `Rails (blue) unavailable: ${err.code ?? err.name}: ${err.message}`);
}
