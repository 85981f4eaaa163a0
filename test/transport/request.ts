import type { TransportRequest } from '../../src/transport/transport.js';

/** A request for a transport under test: JSON `{"hello":"world"}` as `msg_1`, 5 s to answer; `extra` overrides. */
export function transportRequest(url: string, extra: Partial<TransportRequest> = {}): TransportRequest {
  return { url, headers: { 'content-type': 'application/json', 'webhook-id': 'msg_1' }, body: Buffer.from('{"hello":"world"}'), timeoutMs: 5_000, ...extra };
}
