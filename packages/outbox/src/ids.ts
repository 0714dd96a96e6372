/**
 * Orders ids as the database does: decimal bigint strings numerically, and UUIDv7 strings (one length,
 * lowercase hex) byte by byte, which is their time order.
 */
export const byId = (a: string, b: string): number => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
