export { type PostgresSourceOptions, postgresSource } from './source.js';
