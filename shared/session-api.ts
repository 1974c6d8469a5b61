import type { z } from 'zod';
import type { ErrorCode } from './errors.js';
import { AgentRoute } from './routes.js';
import {
  BuildFrame,
  BuildRequest,
  BuildResult,
  ContainerList,
  ContainerLogs,
  ContainerLogsParams,
  ContainerLogsQuery,
  ImageList,
  RunRequest,
  RunResult,
  StopRequest,
  StopResult,
} from './schemas/docker.js';
import { ExecFrame, ExecRequest, ExecResult } from './schemas/exec.js';
import {
  DeleteFileResult,
  FileContent,
  FileList,
  ListFilesQuery,
  MkdirRequest,
  MkdirResult,
  MoveRequest,
  MoveResult,
  WriteFileRequest,
  WriteFileResult,
} from './schemas/files.js';
import { AgentHealth, AgentHealthQuery } from './schemas/health.js';
import { ArchiveExtractResult, ArchiveQuery } from './schemas/archive.js';
import { TerminalInfo, TerminalList, TerminalParams, TerminalResizeBody, TerminalWsQuery } from './schemas/terminal.js';
import { WatchFrame } from './schemas/watch.js';

/** Media types of the streamed answers. */
export const NDJSON = 'application/x-ndjson';
export const EVENT_STREAM = 'text/event-stream';
export const OCTET_STREAM = 'application/octet-stream';

/**
 * One route of a session's agent, as the controller serves it below `/sessions/{id}`: what it takes, what it answers
 * and which error codes it may answer with (besides those every session route may answer).
 */
export interface SessionRouteSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** The agent's path (Fastify syntax, from AgentRoute). */
  path: string;
  summary: string;
  description?: string;
  tag: 'files' | 'exec' | 'docker' | 'terminal' | 'watch' | 'agent';
  params?: z.ZodObject;
  querystring?: z.ZodType;
  /** A JSON body; `rawBody` adds an `application/octet-stream` alternative. */
  body?: z.ZodType;
  rawBody?: boolean;
  /** JSON answers by status. */
  responses?: Record<number, z.ZodType>;
  /** The answer is raw bytes when the client sends `Accept: application/octet-stream`. */
  rawResponse?: boolean;
  /** The answer is a stream: one frame per NDJSON line, or per Server-Sent Event's `data:`. */
  stream?: { mediaType: typeof NDJSON | typeof EVENT_STREAM; frame: z.ZodType };
  /** A WebSocket route: what travels over it. */
  websocket?: { frames: string; frame?: z.ZodType };
  /** The body is raw bytes of this media type (no JSON). */
  binaryBody?: string;
  /** The answer is raw bytes of this media type. */
  binaryResponse?: string;
  /** Answered with no body (204). */
  noContent?: boolean;
  errors: readonly ErrorCode[];
}

/** What any route below `/sessions/{id}` may answer: the session is unknown, not ready, or its agent is unreachable. */
export const SESSION_ROUTE_ERRORS = [
  'UNAUTHORIZED',
  'SESSION_NOT_FOUND',
  'SESSION_NOT_READY',
  'AGENT_UNAVAILABLE',
  'AGENT_TIMEOUT',
  'INTERNAL',
] as const satisfies readonly ErrorCode[];

const PATH_ERRORS = ['VALIDATION', 'INVALID_PATH', 'PATH_OUTSIDE_WORKSPACE', 'PERMISSION_DENIED'] as const satisfies readonly ErrorCode[];
const DOCKER_ERRORS = ['DOCKER_ERROR', 'DOCKER_UNAVAILABLE'] as const satisfies readonly ErrorCode[];

/** Every route of a session's agent; the controller serves each one below `/sessions/{id}` and documents it. */
export const SESSION_ROUTES: readonly SessionRouteSpec[] = [
  {
    method: 'GET',
    path: AgentRoute.health,
    tag: 'agent',
    summary: "The session agent's health and its inner Docker daemon",
    querystring: AgentHealthQuery,
    responses: { 200: AgentHealth },
    errors: ['VALIDATION'],
  },
  {
    method: 'GET',
    path: AgentRoute.files,
    tag: 'files',
    summary: 'List a folder of the workspace',
    querystring: ListFilesQuery,
    responses: { 200: FileList },
    errors: [...PATH_ERRORS, 'FILE_NOT_FOUND', 'NOT_A_DIRECTORY'],
  },
  {
    method: 'GET',
    path: AgentRoute.file,
    tag: 'files',
    summary: 'Read a file of the workspace',
    description: 'JSON (text, or base64 when the bytes are not UTF-8) by default; the raw bytes with `Accept: application/octet-stream`.',
    responses: { 200: FileContent },
    rawResponse: true,
    errors: [...PATH_ERRORS, 'FILE_NOT_FOUND', 'IS_A_DIRECTORY', 'PAYLOAD_TOO_LARGE'],
  },
  {
    method: 'PUT',
    path: AgentRoute.file,
    tag: 'files',
    summary: 'Write a file of the workspace (its folders are created)',
    description: '201 when the file was created, 200 when it was replaced.',
    body: WriteFileRequest,
    rawBody: true,
    responses: { 200: WriteFileResult, 201: WriteFileResult },
    errors: [...PATH_ERRORS, 'INVALID_JSON', 'IS_A_DIRECTORY', 'NOT_A_DIRECTORY', 'HARD_LINK_REFUSED', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'NO_SPACE'],
  },
  {
    method: 'DELETE',
    path: AgentRoute.file,
    tag: 'files',
    summary: 'Delete a file, or a folder with everything in it',
    responses: { 200: DeleteFileResult },
    errors: [...PATH_ERRORS, 'FILE_NOT_FOUND'],
  },
  {
    method: 'POST',
    path: AgentRoute.filesMkdir,
    tag: 'files',
    summary: 'Create a folder and its missing parents',
    description: '201 when created, 200 when it already existed.',
    body: MkdirRequest,
    responses: { 200: MkdirResult, 201: MkdirResult },
    errors: [...PATH_ERRORS, 'INVALID_JSON', 'ALREADY_EXISTS', 'NOT_A_DIRECTORY', 'NO_SPACE'],
  },
  {
    method: 'POST',
    path: AgentRoute.filesMove,
    tag: 'files',
    summary: 'Rename or move a file, folder or symbolic link',
    body: MoveRequest,
    responses: { 200: MoveResult },
    errors: [...PATH_ERRORS, 'INVALID_JSON', 'FILE_NOT_FOUND', 'ALREADY_EXISTS', 'NOT_A_DIRECTORY', 'DIRECTORY_NOT_EMPTY'],
  },
  {
    method: 'GET',
    path: AgentRoute.archive,
    tag: 'files',
    summary: 'A folder of the workspace as a .tar.gz',
    querystring: ArchiveQuery,
    binaryResponse: 'application/gzip',
    errors: [...PATH_ERRORS, 'FILE_NOT_FOUND', 'NOT_A_DIRECTORY'],
  },
  {
    method: 'PUT',
    path: AgentRoute.archive,
    tag: 'files',
    summary: 'Extract a .tar.gz into a folder of the workspace (made if missing)',
    querystring: ArchiveQuery,
    binaryBody: 'application/gzip',
    responses: { 200: ArchiveExtractResult },
    errors: [...PATH_ERRORS, 'NOT_A_DIRECTORY', 'HARD_LINK_REFUSED', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'NO_SPACE'],
  },
  {
    method: 'POST',
    path: AgentRoute.exec,
    tag: 'exec',
    summary: 'Run a command as the learner and answer once it exits',
    body: ExecRequest,
    responses: { 200: ExecResult },
    errors: ['VALIDATION', 'INVALID_JSON', 'FILE_NOT_FOUND', 'NOT_A_DIRECTORY', 'PATH_OUTSIDE_WORKSPACE'],
  },
  {
    method: 'POST',
    path: AgentRoute.execStream,
    tag: 'exec',
    summary: 'Run a command as the learner and stream its output',
    description: 'One JSON frame per line as output arrives, heartbeats during silence, and an `exit` frame last.',
    body: ExecRequest,
    stream: { mediaType: NDJSON, frame: ExecFrame },
    errors: ['VALIDATION', 'INVALID_JSON', 'FILE_NOT_FOUND', 'NOT_A_DIRECTORY', 'PATH_OUTSIDE_WORKSPACE'],
  },
  {
    method: 'POST',
    path: AgentRoute.build,
    tag: 'docker',
    summary: 'Build an image from a folder of the workspace',
    description: 'A failed build answers 422 `BUILD_FAILED` with the builder output in `logs` at the top level.',
    body: BuildRequest,
    responses: { 200: BuildResult },
    errors: [...PATH_ERRORS, 'INVALID_JSON', 'FILE_NOT_FOUND', 'NOT_A_DIRECTORY', 'IS_A_DIRECTORY', 'BUILD_FAILED', ...DOCKER_ERRORS, 'NO_SPACE'],
  },
  {
    method: 'POST',
    path: AgentRoute.buildStream,
    tag: 'docker',
    summary: 'Build an image and stream the builder output',
    description: 'One JSON frame per line; the last is `done` (the answer of /build) or `error` (its error body).',
    body: BuildRequest,
    stream: { mediaType: NDJSON, frame: BuildFrame },
    errors: [...PATH_ERRORS, 'INVALID_JSON', 'FILE_NOT_FOUND', 'NOT_A_DIRECTORY', 'IS_A_DIRECTORY', ...DOCKER_ERRORS],
  },
  {
    method: 'POST',
    path: AgentRoute.run,
    tag: 'docker',
    summary: "Create and start a container on the session's Docker",
    body: RunRequest,
    responses: { 200: RunResult },
    errors: ['VALIDATION', 'INVALID_JSON', 'IMAGE_NOT_FOUND', 'CONTAINER_CONFLICT', 'PORT_IN_USE', 'RUN_FAILED', ...DOCKER_ERRORS],
  },
  {
    method: 'POST',
    path: AgentRoute.stop,
    tag: 'docker',
    summary: 'Stop a container and remove it',
    body: StopRequest,
    responses: { 200: StopResult },
    errors: ['VALIDATION', 'INVALID_JSON', 'CONTAINER_NOT_FOUND', ...DOCKER_ERRORS],
  },
  {
    method: 'GET',
    path: AgentRoute.containers,
    tag: 'docker',
    summary: "Containers on the session's Docker, running or not",
    responses: { 200: ContainerList },
    errors: [...DOCKER_ERRORS],
  },
  {
    method: 'GET',
    path: AgentRoute.images,
    tag: 'docker',
    summary: "Images on the session's Docker",
    responses: { 200: ImageList },
    errors: [...DOCKER_ERRORS],
  },
  {
    method: 'GET',
    path: AgentRoute.containerLogs,
    tag: 'docker',
    summary: "The last lines of a container's output",
    params: ContainerLogsParams,
    querystring: ContainerLogsQuery,
    responses: { 200: ContainerLogs },
    errors: ['VALIDATION', 'CONTAINER_NOT_FOUND', ...DOCKER_ERRORS],
  },
  {
    method: 'GET',
    path: AgentRoute.terminalWs,
    tag: 'terminal',
    summary: 'An interactive bash as the learner (WebSocket)',
    description:
      'Upgrade to a WebSocket. Every client frame is input for the shell, every server frame is binary shell output. ' +
      'The 101 answer carries `X-Terminal-Id`; connecting again with `?id=` reattaches to the same shell and replays its ' +
      'scrollback. Close codes: 1000 the shell exited (`exit <code>`), 4429 too many terminals, 4500 start failed.',
    querystring: TerminalWsQuery,
    websocket: { frames: 'raw terminal bytes both ways' },
    errors: ['VALIDATION', 'UPGRADE_REQUIRED'],
  },
  {
    method: 'GET',
    path: AgentRoute.terminals,
    tag: 'terminal',
    summary: 'Live terminals',
    responses: { 200: TerminalList },
    errors: [],
  },
  {
    method: 'POST',
    path: AgentRoute.terminalResize,
    tag: 'terminal',
    summary: 'Resize a terminal',
    params: TerminalParams,
    body: TerminalResizeBody,
    responses: { 200: TerminalInfo },
    errors: ['VALIDATION', 'INVALID_JSON', 'TERMINAL_NOT_FOUND'],
  },
  {
    method: 'DELETE',
    path: AgentRoute.terminal,
    tag: 'terminal',
    summary: 'End a terminal and its shell',
    params: TerminalParams,
    noContent: true,
    errors: ['VALIDATION', 'TERMINAL_NOT_FOUND'],
  },
  {
    method: 'GET',
    path: AgentRoute.watchWs,
    tag: 'watch',
    summary: 'Changes in the workspace as they happen (WebSocket)',
    description: 'Upgrade to a WebSocket; every server frame is one JSON WatchFrame text frame.',
    websocket: { frames: 'one JSON WatchFrame per text frame', frame: WatchFrame },
    errors: ['UPGRADE_REQUIRED'],
  },
  {
    method: 'GET',
    path: AgentRoute.watchSse,
    tag: 'watch',
    summary: 'Changes in the workspace as they happen (Server-Sent Events)',
    description: 'Each event is `data: <WatchFrame JSON>`; `: keepalive` comments come in between.',
    stream: { mediaType: EVENT_STREAM, frame: WatchFrame },
    errors: [],
  },
];
