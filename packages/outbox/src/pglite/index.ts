export { type PGliteListenLike, pgliteListen } from './pglite-listen.js';
