// See image/build-agent.sh: require() leaves node:buffer's lazy exports unloaded; an ESM import loads them all.
module.exports = require('buffer');
