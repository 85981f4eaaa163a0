/**
 * Server-side request forgery protection: when the endpoint URLs come from your customers, a URL that names
 * (or resolves to) a loopback, private, link-local or otherwise non-public address would let them make this
 * service call its own network (cloud metadata at 169.254.169.254, an admin port on localhost). The check
 * runs where the connection is made, on every address the name resolved to, so a name that resolves to a
 * public address at enqueue and to a private one at send time (DNS rebinding) is caught too.
 */
import dns from 'node:dns';
import type { LookupAddress, LookupAllOptions, LookupOneOptions } from 'node:dns';
import net from 'node:net';

/** The errno of a connection refused by the guard (the attempt is not retried; the event becomes a dead letter). */
export const PRIVATE_ADDRESS_ERRNO = 'EPRIVATEADDRESS';

/**
 * IPv4 ranges that are not globally reachable (IANA special-purpose registry) or are multicast. IPv4-mapped
 * IPv6 addresses (`::ffff:10.0.0.1`) are checked against these too.
 */
const IPV4_BLOCKED: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8], // "this network"; 0.0.0.0 reaches the local host on Linux
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata services
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24], // 6to4 relays (deprecated)
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and the broadcast address
];

/**
 * IPv6: only global unicast (2000::/3) is public, except these parts of it. Addresses outside 2000::/3
 * (loopback, unique-local fc00::/7, link-local fe80::/10, multicast...) are blocked, except NAT64
 * (64:ff9b::/96), whose embedded IPv4 address decides, as it does for 6to4 (2002::/16).
 */
const IPV6_BLOCKED_GLOBAL: ReadonlyArray<readonly [string, number]> = [
  ['2001::', 23], // IETF protocol assignments: Teredo, benchmarking, ORCHID
  ['2001:db8::', 32], // documentation
];

function blockList(ranges: ReadonlyArray<readonly [string, number]>, family: 'ipv4' | 'ipv6'): net.BlockList {
  const list = new net.BlockList();
  for (const [network, prefix] of ranges) list.addSubnet(network, prefix, family);
  return list;
}

const ipv4Blocked = blockList(IPV4_BLOCKED, 'ipv4');
const ipv6Blocked = blockList(IPV6_BLOCKED_GLOBAL, 'ipv6');
const ipv6Global = blockList([['2000::', 3]], 'ipv6');
const nat64 = blockList([['64:ff9b::', 96]], 'ipv6');
const sixToFour = blockList([['2002::', 16]], 'ipv6');

/** The eight 16-bit groups of a valid IPv6 address (an embedded dotted IPv4 tail included). */
function ipv6Groups(address: string): number[] {
  let text = address;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

function ipv4Of(high: number, low: number): string {
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

function embeddedIpv4(address: string): string | undefined {
  const inNat64 = nat64.check(address, 'ipv6');
  if (!inNat64 && !sixToFour.check(address, 'ipv6') && !address.toLowerCase().includes('ffff')) return undefined;
  const groups = ipv6Groups(address);
  const at = (i: number): number => groups[i] ?? 0;
  if (inNat64) return ipv4Of(at(6), at(7));
  if (at(0) === 0x2002) return ipv4Of(at(1), at(2));
  const mapped = at(0) === 0 && at(1) === 0 && at(2) === 0 && at(3) === 0 && at(4) === 0 && at(5) === 0xffff;
  return mapped ? ipv4Of(at(6), at(7)) : undefined;
}

/** True when `address` (an IP address without brackets) is not a public unicast address. */
export function isPrivateAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return ipv4Blocked.check(address, 'ipv4');
  if (family !== 6) return true;
  // An IPv4 address inside an IPv6 one (mapped ::ffff:a.b.c.d, NAT64, 6to4) is judged by that IPv4 address.
  const embedded = embeddedIpv4(address);
  if (embedded !== undefined) return isPrivateAddress(embedded);
  return !ipv6Global.check(address, 'ipv6') || ipv6Blocked.check(address, 'ipv6');
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `dns.lookup`-compatible function: what `net.connect`, http agents and got call to resolve a host. */
export type LookupFunction = (hostname: string, options: LookupOneOptions | LookupAllOptions, callback: LookupCallback) => void;

/** Checks addresses and URLs against the policy; made once per transport and per outbox. */
export interface AddressGuard {
  /** True when a connection to `address` is refused. */
  blocks(address: string): boolean;
  /**
   * Why `url` may not be sent to, when its host alone says so (an IP literal or `localhost`), or
   * `undefined`. Names resolve later, at connection time, through {@link AddressGuard.lookup}.
   */
  urlProblem(url: string): string | undefined;
  /** `dns.lookup` that leaves out refused addresses and fails with `EPRIVATEADDRESS` when none is left. */
  lookup: LookupFunction;
}

/**
 * The error of a refused connection. A name's addresses are not told: the message may reach whoever typed
 * the URL (a customer testing an endpoint), who must not learn what internal names resolve to.
 */
function refusal(host: string): NodeJS.ErrnoException {
  const what = net.isIP(host) === 0 ? `${host} resolves only to private or non-public addresses` : `${host} is a private or non-public address`;
  return Object.assign(new Error(`${what}; blockPrivateAddresses refuses it`), { code: PRIVATE_ADDRESS_ERRNO });
}

/** The host of a URL as an address or name: brackets of an IPv6 literal removed. */
export function hostOf(url: string): string {
  const { hostname } = new URL(url);
  return hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
}

/** What the guard resolves names with: `dns.lookup` with `all: true`. */
export type HostResolver = (hostname: string, options: LookupAllOptions, callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

/**
 * The guard of the `blockPrivateAddresses` option (see `checkPrivateAddressPolicy` in options.ts, which
 * validates it): every non-public address is refused except those in `allowed`. Tests pass a `resolve`
 * that answers names of their own.
 */
export function createAddressGuard(allowed: net.BlockList | undefined, resolve: HostResolver = dns.lookup): AddressGuard {
  const blocks = (address: string): boolean => isPrivateAddress(address) && allowed?.check(address, net.isIP(address) === 6 ? 'ipv6' : 'ipv4') !== true;
  const lookup: LookupFunction = (hostname, options, callback) => {
    resolve(hostname, { family: options.family ?? 0, hints: options.hints ?? 0, all: true }, (error, addresses) => {
      if (error !== null) return callback(error, []);
      const open = addresses.filter((entry) => !blocks(entry.address));
      const first = open[0];
      if (first === undefined) return callback(refusal(hostname), []);
      if (options.all === true) return callback(null, open);
      callback(null, first.address, first.family);
    });
  };
  // Most messages go to the URL the one before went to.
  let lastAllowed: string | undefined;
  return {
    blocks,
    lookup,
    urlProblem(url) {
      if (url === lastAllowed) return undefined;
      const problem = hostProblem(hostOf(url));
      if (problem === undefined) lastAllowed = url;
      return problem;
    },
  };

  function hostProblem(host: string): string | undefined {
    if (net.isIP(host) !== 0) return blocks(host) ? refusal(host).message : undefined;
    const name = host.toLowerCase().replace(/\.$/, '');
    // Resolves to loopback whatever DNS says (RFC 6761), so it is refused by name.
    if ((name === 'localhost' || name.endsWith('.localhost')) && blocks('127.0.0.1')) return `${host} is the local host; blockPrivateAddresses refuses it`;
    return undefined;
  }
}
