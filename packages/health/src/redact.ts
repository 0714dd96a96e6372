// Credentials reach check outputs through driver error messages and URLs (pg echoes connection strings,
// fetch errors echo the URL). Health bodies are often served unauthenticated, so scrub before storing.
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]*)(:[^\s/@]*)?@/gi;
const KEY_VALUE =
  /\b(password|passwd|pwd|secret|token|api[-_]?key|access[-_]?key|auth|authorization|sslkey|sslpassword)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&;,'"]+)/gi;
const BEARER = /\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}/gi;

/**
 * Removes credentials from free text: URL user-info passwords (`postgres://u:***@h`), `password=…`-style
 * pairs (libpq key/value strings and query parameters) and bearer/basic tokens.
 *
 * @example
 * redactSecrets('connect postgres://app:hunter2@db:5432/orders failed');
 * // 'connect postgres://app:***@db:5432/orders failed'
 */
export function redactSecrets(text: string): string {
  return text
    .replace(URL_USERINFO, (_m, scheme: string, user: string, pass?: string) =>
      pass ? `${scheme}${user}:***@` : `${scheme}***@`,
    )
    .replace(KEY_VALUE, (_m, key: string, sep: string) => `${key}${sep}***`)
    .replace(BEARER, (_m, kind: string) => `${kind} ***`);
}
