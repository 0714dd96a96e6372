export { type PGliteLike, type PgliteSourceOptions, pgliteSource } from './source.js';
