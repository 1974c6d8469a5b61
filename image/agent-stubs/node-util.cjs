// See image/build-agent.sh: require() leaves node:util's lazy exports unloaded; an ESM import loads them all.
module.exports = require('util');
