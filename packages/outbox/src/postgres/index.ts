export { type Notification, type PgListenClient, type PgListenOptions, pgListen } from './pg-listen.js';
