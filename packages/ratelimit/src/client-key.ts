import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';
import { invalidOption } from './errors.js';

/**
 * Which proxies may set X-Forwarded-For.
 *
 * @example
 * import type { IncomingMessage } from 'node:http';
 * import { clientKey, type TrustProxy } from '@oms/ratelimit';
 * declare const req: IncomingMessage;
 * const trustProxy: TrustProxy = ['10.0.0.0/8'];
 * const key = clientKey({ ip: req.socket.remoteAddress, headers: req.headers }, { trustProxy });
 */
export type TrustProxy = boolean | number | readonly string[];

/**
 * Options of `clientKey`: which proxies to believe, and how IPv6 clients are grouped.
 *
 * @example
 * import type { IncomingMessage } from 'node:http';
 * import { type ClientKeyOptions, clientKey } from '@oms/ratelimit';
 * declare const req: IncomingMessage;
 * const o: ClientKeyOptions = { trustProxy: 1, ipv6Prefix: 56 };
 * const key = clientKey({ ip: req.socket.remoteAddress, headers: req.headers }, o);
 */
export interface ClientKeyOptions {
  /**
   * `false` (default): use the socket address, ignore X-Forwarded-For. A number n: trust the n nearest hops
   * (the socket peer and the n − 1 addresses before it). A list of addresses and CIDRs: trust hops in it.
   * `true`: trust every hop, so the left-most address wins; only behind a proxy that overwrites the header.
   */
  trustProxy?: TrustProxy;
  /** Prefix length that groups IPv6 clients. Default 64 (one customer's subnet). */
  ipv6Prefix?: number;
}

/**
 * The parts of a request `clientKey` reads: the socket peer and the headers.
 *
 * @example
 * import type { IncomingMessage } from 'node:http';
 * import { type ClientKeyRequest, clientKey } from '@oms/ratelimit';
 * declare const req: IncomingMessage;
 * const parts: ClientKeyRequest = { ip: req.socket.remoteAddress, headers: req.headers };
 * const key = clientKey(parts);
 */
export interface ClientKeyRequest {
  ip: string | undefined;
  headers: Record<string, string | readonly string[] | undefined>;
}

/** The eight 16-bit words of an address `isIPv6` accepted (a zone, if any, is ignored). */
function expand6(ip: string): number[] | undefined {
  const zone = ip.indexOf('%');
  let s = zone >= 0 ? ip.slice(0, zone) : ip;
  const w = [0, 0, 0, 0, 0, 0, 0, 0];
  let n = 8; // words written as hex groups
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    // an embedded IPv4 tail (::ffff:a.b.c.d): its two words go last
    const v4 = s.slice(lastColon + 1).split('.');
    w[6] = (Number(v4[0]) << 8) | Number(v4[1]);
    w[7] = (Number(v4[2]) << 8) | Number(v4[3]);
    s = s.slice(0, lastColon + 1);
    // drop the separator before the tail, unless it is half of a '::'
    if (!s.endsWith('::')) s = s.slice(0, -1);
    n = 6;
  }
  const gap = s.indexOf('::');
  const head = gap < 0 ? s : s.slice(0, gap);
  const tail = gap < 0 ? '' : s.slice(gap + 2);
  const a = head === '' ? [] : head.split(':');
  const b = tail === '' ? [] : tail.split(':');
  if (a.length + b.length > n || (gap < 0 && a.length !== n)) return undefined;
  for (let i = 0; i < a.length; i++) w[i] = Number.parseInt(a[i]!, 16);
  for (let i = 0; i < b.length; i++) w[n - b.length + i] = Number.parseInt(b[i]!, 16);
  for (const x of w) if (Number.isNaN(x)) return undefined;
  return w;
}

const PORT4 = /^\d+\.\d+\.\d+\.\d+:\d+$/;

/** Normalises an address: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 grouped to its prefix. */
function normalise(raw: string, prefix: number): string | undefined {
  // what a socket reports most of the time, already in normal form
  if (isIPv4(raw)) return raw;
  let ip = raw.trim();
  if (ip.startsWith('[')) ip = ip.slice(1, ip.indexOf(']'));
  else if (PORT4.test(ip)) ip = ip.slice(0, ip.lastIndexOf(':'));
  const zone = ip.indexOf('%');
  const bare = zone >= 0 ? ip.slice(0, zone) : ip;
  if (isIPv4(bare)) return ip;
  // a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
  if (bare.length > 7 && bare.slice(0, 7).toLowerCase() === '::ffff:' && isIPv4(bare.slice(7))) {
    return bare.slice(7);
  }
  if (!isIPv6(bare)) return undefined;
  const w = expand6(ip);
  if (!w) return undefined;
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff) {
    return `${w[6]! >> 8}.${w[6]! & 0xff}.${w[7]! >> 8}.${w[7]! & 0xff}`;
  }
  let bits = prefix;
  let out = '';
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, bits));
    bits -= 16;
    const word = keep === 0 ? 0 : w[i]! & (0xffff << (16 - keep)) & 0xffff;
    out += i === 0 ? word.toString(16) : `:${word.toString(16)}`;
  }
  return `${out}/${prefix}`;
}

function trustList(list: readonly string[]): BlockList {
  const bl = new BlockList();
  for (const entry of list) {
    const [addr = '', len] = entry.split('/');
    const type = isIP(addr) === 6 ? 'ipv6' : isIP(addr) === 4 ? 'ipv4' : undefined;
    if (!type) throw invalidOption(`trustProxy entry ${JSON.stringify(entry)} is not an IP address or CIDR`);
    if (len === undefined) bl.addAddress(addr, type);
    else {
      const n = Number(len);
      if (!Number.isInteger(n) || n < 0 || n > (type === 'ipv4' ? 32 : 128)) {
        throw invalidOption(`trustProxy entry ${JSON.stringify(entry)} has an invalid prefix length`);
      }
      bl.addSubnet(addr, n, type);
    }
  }
  return bl;
}

const cache = new WeakMap<readonly string[], BlockList>();

function trusted(list: readonly string[], ip: string): boolean {
  let bl = cache.get(list);
  if (!bl) {
    bl = trustList(list);
    cache.set(list, bl);
  }
  const bare = ip.split('%')[0]!;
  const v = isIP(bare);
  return v !== 0 && bl.check(bare, v === 6 ? 'ipv6' : 'ipv4');
}

/**
 * Derives a rate-limit key for the client of a request: `ip:<address>`, with IPv6 grouped by /64 (one
 * customer usually holds a whole /64, so per-address limits would be trivial to dodge) and X-Forwarded-For
 * read only as far as the hops you trust (a client can put anything in the left of that header).
 *
 * @example
 * import type { IncomingMessage } from 'node:http';
 * import { clientKey, type RateLimiter } from '@oms/ratelimit';
 * declare const req: IncomingMessage;
 * declare const limiter: RateLimiter;
 * // behind one load balancer that appends to X-Forwarded-For
 * const key = clientKey({ ip: req.socket.remoteAddress, headers: req.headers }, { trustProxy: 1 });
 * await limiter.consume(key);
 */
export function clientKey(req: ClientKeyRequest, opts: ClientKeyOptions = {}): string {
  const trust = opts.trustProxy ?? false;
  const prefix = opts.ipv6Prefix ?? 64;
  if (!Number.isInteger(prefix) || prefix < 1 || prefix > 128) {
    throw invalidOption(`ipv6Prefix must be an integer in [1, 128] (got ${String(prefix)})`);
  }
  if (typeof trust === 'number' && (!Number.isInteger(trust) || trust < 0)) {
    throw invalidOption(`trustProxy must be a boolean, an integer >= 0 or a list of CIDRs (got ${trust})`);
  }
  if (typeof trust === 'object' && Array.isArray(trust))
    cache.get(trust) ?? cache.set(trust, trustList(trust));
  const peer = req?.ip ?? '';
  let chosen = peer;
  if (trust !== false && trust !== 0) {
    const raw = req.headers?.['x-forwarded-for'];
    const header = Array.isArray(raw) ? raw.join(',') : typeof raw === 'string' ? raw : '';
    // the chain as seen from here: nearest hop (the socket peer) last
    const chain = [
      ...header
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      peer,
    ];
    if (trust === true) chosen = chain[0]!;
    else if (typeof trust === 'number') chosen = chain[Math.max(0, chain.length - 1 - trust)]!;
    else {
      let i = chain.length - 1;
      while (i > 0 && trusted(trust as readonly string[], normaliseBare(chain[i]!))) i--;
      chosen = chain[i]!;
    }
  }
  const n = normalise(chosen, prefix) ?? normalise(peer, prefix);
  return n === undefined ? 'ip:unknown' : `ip:${n}`;
}

const normaliseBare = (ip: string): string => {
  const t = ip.trim();
  if (t.startsWith('[')) return t.slice(1, t.indexOf(']'));
  if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(t)) return t.slice(0, t.lastIndexOf(':'));
  return t;
};
