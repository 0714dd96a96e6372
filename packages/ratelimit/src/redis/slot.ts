// CRC16/XMODEM as Redis Cluster uses it for key slots (CLUSTER KEYSLOT), so limitAll can group keys by slot.
const TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
  TABLE[i] = c;
}

/** The cluster slot of `key`, honouring the `{hash tag}` rule. */
export function keySlot(key: string): number {
  let buf = Buffer.from(key);
  const open = buf.indexOf(0x7b);
  if (open >= 0) {
    const close = buf.indexOf(0x7d, open + 1);
    if (close > open + 1) buf = buf.subarray(open + 1, close);
  }
  let crc = 0;
  for (const b of buf) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ b) & 0xff]!;
  return crc & 0x3fff;
}
