export { type PgListenClient, pgListen } from './pg-listen.js';
