// Stands in for ssh2, @grpc/grpc-js, @grpc/proto-loader and protobufjs in the agent bundle (image/build-agent.sh):
// dockerode loads them for ssh:// hosts and BuildKit sessions, which the agent never uses (it talks to its inner
// daemon on a unix socket), and loading them costs the idle agent ~6 MiB. Any use fails loudly instead.
'use strict';
const unused = () => {
  throw new Error('not in the session agent bundle: ssh:// docker hosts and BuildKit sessions are unsupported (image/agent-stubs)');
};
module.exports = new Proxy({}, { get: (_, key) => (key === '__esModule' ? false : unused) });
