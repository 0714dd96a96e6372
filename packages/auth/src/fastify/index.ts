export { type AuthPluginOptions, assertEveryRouteMapped, authPlugin } from './plugin.js';
