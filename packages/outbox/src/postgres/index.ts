export { type PgListenClient, type PgListenOptions, pgListen } from './pg-listen.js';
