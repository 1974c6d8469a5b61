// Stands in for packages the agent bundle leaves out (image/bundle-agent.mjs lists them and says why): dockerode's
// ssh:// transport and BuildKit session dependencies, Fastify's Ajv and fast-json-stringify compilers, its inject().
// The agent never loads them; loading them cost the idle agent memory. Any use fails loudly instead.
'use strict';
const unused = () => {
  throw new Error('not in the session agent bundle: ssh:// docker hosts, BuildKit sessions, Fastify\'s Ajv and '
    + 'fast-json-stringify compilers and inject() are left out (image/bundle-agent.mjs)');
};
module.exports = new Proxy({}, { get: (_, key) => (key === '__esModule' ? false : unused) });
