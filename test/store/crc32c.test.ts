import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/store/file/crc32c.js';

/** Bit-by-bit CRC-32C: slow and obviously right. */
function reference(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i] as number;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe('crc32c', () => {
  it('matches the published CRC-32C check values (RFC 3720 B.4 and "123456789")', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  });

  it('agrees with a bitwise CRC for every length 0-70 at every start 0-17, and on a 4 KiB range', () => {
    const bytes = Uint8Array.from({ length: 4200 }, (_, i) => (Math.imul(i + 1, 2654435761) >>> 23) & 0xff);
    for (let start = 0; start < 18; start++) {
      for (let length = 0; length <= 70; length++) expect(crc32c(bytes, start, start + length)).toBe(reference(bytes, start, start + length));
    }
    expect(crc32c(bytes, 3, 4099)).toBe(reference(bytes, 3, 4099));
  });

  it('continues a checksum from a seed: the CRC of the concatenation', () => {
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 131) & 0xff);
    for (const cut of [0, 1, 7, 8, 9, 150, 299, 300]) expect(crc32c(bytes, cut, 300, crc32c(bytes, 0, cut))).toBe(crc32c(bytes));
  });
});
