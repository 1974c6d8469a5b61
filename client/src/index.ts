// The browser-safe entry: fetch, ReadableStream and WebSocket only. The Node terminal duplex is `runner-client/node`.
export { RunnerClient, type RunnerClientOptions } from './runner-client.js';
export { SessionClient, type StreamOptions, type TerminalOptions } from './session-client.js';
export { RunnerError } from './runner-error.js';
export type * from './types.js';
