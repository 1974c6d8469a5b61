// Stands in for zod's locales index in the agent bundle (image/bundle-agent.mjs): zod imports all ~40 of its locales
// (a sixth of the bundle), the agent's messages are English only. `z.locales.en` stays; any other locale is absent.
export { default as en } from 'zod/v4/locales/en.js';
