/**
 * Checking an endpoint URL when it is registered (a customer types it into your settings page), with the
 * rules the outbox applies when it sends: a bad URL, or one that `blockPrivateAddresses` would refuse, is
 * better refused there, with a message for the customer, than found out as a dead letter later.
 */
import dns from 'node:dns';
import type { LookupAddress } from 'node:dns';
import net from 'node:net';
import { urlProblem } from './message.js';
import { checkPrivateAddressPolicy } from './options.js';
import { hostOf, PRIVATE_ADDRESS_ERRNO } from './transport/private-addresses.js';
import type { LookupFunction, HostResolver } from './transport/private-addresses.js';

/** Options of {@link checkEndpointUrl}. */
export interface EndpointCheckOptions {
  /**
   * The outbox's `blockPrivateAddresses`: refuse a URL whose host is, or resolves only to, addresses it
   * refuses.
   * @default false
   */
  blockPrivateAddresses?: boolean | { allow: readonly string[] };
  /** Resolves host names (tests answer names of their own). @default dns.lookup */
  resolve?: HostResolver;
}

/** What {@link checkEndpointUrl} found. */
export type EndpointCheck =
  | { ok: true; /** What the host resolves to now, refused addresses left out. */ addresses: string[] }
  | {
      ok: false;
      /**
       * `invalid-url`: not an absolute http(s) URL; `private-address`: refused by `blockPrivateAddresses`;
       * `unresolvable`: the host name does not resolve (now).
       */
      reason: 'invalid-url' | 'private-address' | 'unresolvable';
      /** Says why, for the person who typed the URL (never quotes credentials in it). */
      message: string;
    };

/**
 * Checks `url` as the outbox would send to it: its form, and (resolving its host now) whether
 * `blockPrivateAddresses` lets it through. Passing is no promise for later (DNS can change: the outbox
 * checks again at every connection); failing means sending would fail now. Throws `ERR_INVALID_OPTION`
 * only for bad options.
 */
export async function checkEndpointUrl(url: string, options: EndpointCheckOptions = {}): Promise<EndpointCheck> {
  const resolveName = options.resolve ?? dns.lookup;
  const guard = checkPrivateAddressPolicy(options.blockPrivateAddresses, 'blockPrivateAddresses', resolveName);
  const problem = urlProblem(url);
  if (problem !== undefined) return { ok: false, reason: 'invalid-url', message: `Not an endpoint URL: ${problem}` };
  const refused = guard?.urlProblem(url);
  if (refused !== undefined) return { ok: false, reason: 'private-address', message: refused };
  const host = hostOf(url);
  if (net.isIP(host) !== 0) return { ok: true, addresses: [host] };
  const lookup: LookupFunction = guard?.lookup ?? ((name, _options, callback) => resolveName(name, { all: true }, callback));
  return new Promise((resolve) => {
    lookup(host, { all: true }, (error, addresses) => {
      if (error === null) resolve({ ok: true, addresses: (addresses as LookupAddress[]).map((entry) => entry.address) });
      else if (error.code === PRIVATE_ADDRESS_ERRNO) resolve({ ok: false, reason: 'private-address', message: error.message });
      else resolve({ ok: false, reason: 'unresolvable', message: `${host} does not resolve (${error.code ?? error.message})` });
    });
  });
}
