import type { BackupHealth, BackupStatus, Manifest } from './types.js';

/** Derives the status from the manifests in storage, so every instance reports the same thing. */
export function statusOf(
  list: Manifest[],
  now: number,
  rpoMs: number | undefined,
  lastError: BackupStatus['lastError'],
): BackupStatus {
  const newest = list[0];
  const verifications = list
    .filter((m) => m.verification)
    .sort((a, b) => Date.parse(b.verification?.at ?? '') - Date.parse(a.verification?.at ?? ''));
  const latest = verifications[0];
  const verified = verifications.find((m) => m.verification?.ok);
  const ageMs = newest ? Math.max(0, now - Date.parse(newest.time)) : Number.POSITIVE_INFINITY;
  const s: BackupStatus = {
    backups: list.length,
    ageMs,
    rpoBreached: rpoMs !== undefined && ageMs > rpoMs,
  };
  if (newest) s.lastSuccess = { id: newest.id, time: newest.time, bytes: newest.bytes };
  if (verified?.verification) {
    s.lastVerified = {
      id: verified.id,
      at: verified.verification.at,
      restoreMs: verified.verification.restoreMs,
    };
    s.rtoMs = verified.verification.restoreMs;
  }
  if (latest?.verification && !latest.verification.ok) {
    s.lastVerifyFailed = { id: latest.id, at: latest.verification.at };
    if (latest.verification.code) s.lastVerifyFailed.code = latest.verification.code;
  }
  if (rpoMs !== undefined) s.rpoMs = rpoMs;
  if (lastError) s.lastError = lastError;
  return s;
}

/** warn past the RPO; fail past twice the RPO, without any backup, or when the latest verify failed. */
export function healthOf(s: BackupStatus, rpoMs: number): BackupHealth {
  const age = Number.isFinite(s.ageMs) ? Math.round(s.ageMs / 1000) : null;
  const details = {
    rpoSeconds: rpoMs / 1000,
    rtoSeconds: s.rtoMs === undefined ? null : s.rtoMs / 1000,
    lastBackup: s.lastSuccess?.time ?? null,
    lastVerified: s.lastVerified?.at ?? null,
  };
  const h = (status: BackupHealth['status'], output?: string): BackupHealth => ({
    status,
    observedValue: age,
    observedUnit: 's',
    ...(output === undefined ? {} : { output }),
    details,
  });
  if (!s.lastSuccess) return h('fail', 'no backup yet');
  if (s.lastVerifyFailed) {
    return h(
      'fail',
      `the latest verify of ${s.lastVerifyFailed.id} failed (${s.lastVerifyFailed.code ?? 'unknown'})`,
    );
  }
  if (s.ageMs > 2 * rpoMs)
    return h('fail', `newest backup is ${age} s old, more than twice the RPO of ${rpoMs / 1000} s`);
  if (s.ageMs > rpoMs) return h('warn', `newest backup is ${age} s old, past the RPO of ${rpoMs / 1000} s`);
  return h('pass');
}
