// Credentials reach check outputs through driver error messages and URLs (pg echoes connection strings,
// fetch errors echo the URL). Health bodies are often served unauthenticated, so scrub before storing.
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]*)(:[^\s/@]*)?@/gi;
// The key may carry a prefix or suffix (`client_secret`, `AWS_SECRET_ACCESS_KEY`, `x-api-key`) and may be
// quoted as in JSON (`"password":"…"`); `\b` would miss both because `_` is a word character.
const KEY_VALUE =
  /(?<![a-z0-9])([a-z0-9_.-]*?(?:password|passwd|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credentials?|auth|authorization|sslkey|sslpassword)(?:[_-][a-z0-9_-]*)?)(["']?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&;,'"}]+)/gi;
const BEARER = /\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}/gi;
// Past this, the text is cut before scrubbing (regex cost); the caller keeps far less than this, so a
// secret split by the cut lies beyond what is kept.
const MAX_SCAN = 64 * 1024;

/**
 * Removes credentials from free text: URL user-info passwords (`postgres://u:***@h`), `password=…`-style
 * pairs (libpq key/value strings, query parameters, JSON, env-style `AWS_SECRET_ACCESS_KEY=…`) and
 * bearer/basic tokens.
 *
 * @example
 * redactSecrets('connect postgres://app:hunter2@db:5432/orders failed');
 * // 'connect postgres://app:***@db:5432/orders failed'
 */
export function redactSecrets(text: string): string {
  const s = String(text);
  return (
    (s.length > MAX_SCAN ? s.slice(0, MAX_SCAN) : s)
      .replace(URL_USERINFO, (_m, scheme: string, user: string, pass?: string) =>
        pass ? `${scheme}${user}:***@` : `${scheme}***@`,
      )
      // before KEY_VALUE: in `authorization: Bearer x` the pair's value would otherwise be just `Bearer`
      .replace(BEARER, (_m, kind: string) => `${kind} ***`)
      .replace(KEY_VALUE, (_m, key: string, sep: string, value: string) => {
        const q = value[0] === '"' || value[0] === "'" ? value[0] : '';
        return `${key}${sep}${q}***${q}`;
      })
  );
}
