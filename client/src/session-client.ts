import { AgentRoute, ControllerRoute, sessionPath } from '../../shared/routes.js';
import type { Transport } from './transport.js';
import { readEventData, readNdjson } from './streams.js';
import type {
  AgentHealth,
  ArchiveExtractResult,
  BuildFrame,
  BuildInput,
  BuildResult,
  ContainerList,
  ContainerLogs,
  DeleteFileResult,
  ExecFrame,
  ExecInput,
  ExecResult,
  FileContent,
  FileList,
  GrantInput,
  GrantResponse,
  ImageList,
  MkdirResult,
  MoveInput,
  MoveResult,
  RunInput,
  RunResult,
  StopInput,
  RevokeGrantsResponse,
  StopResult,
  TerminalInfo,
  TerminalList,
  WatchFrame,
  WriteFileResult,
} from './types.js';

/** Where a new or existing terminal is reached: `id` reattaches to that shell (and replays its scrollback). */
export interface TerminalOptions {
  id?: string;
  cols?: number;
  rows?: number;
}

export interface StreamOptions {
  /** Ends the stream (and the request) when aborted. */
  signal?: AbortSignal;
}

/** `/workspace/a/b` or `a/b` → `/files/workspace/a/b`, each segment percent-encoded. */
function filesUrl(path: string): string {
  const absolute = path.startsWith('/') ? path : `/workspace/${path}`;
  const segments = absolute.split('/').filter((segment) => segment !== '');
  return `${AgentRoute.files}/${segments.map(encodeURIComponent).join('/')}`;
}

/** Everything below `/sessions/{id}`: files, exec, Docker, terminals and watch of one session. */
export class SessionClient {
  readonly #transport: Transport;
  readonly #prefix: string;

  constructor(
    transport: Transport,
    readonly id: string,
  ) {
    this.#transport = transport;
    this.#prefix = sessionPath(id);
  }

  #json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.#transport.json<T>(method, `${this.#prefix}${path}`, body);
  }

  /** The agent's health and its inner Docker daemon's. */
  health(): Promise<AgentHealth> {
    return this.#json('GET', AgentRoute.health);
  }

  exec(request: ExecInput): Promise<ExecResult> {
    return this.#json('POST', AgentRoute.exec, request);
  }

  /** Output frames as they come; the last is `{type: 'exit', exit_code, …}`. */
  async *execStream(request: ExecInput, options: StreamOptions = {}): AsyncGenerator<ExecFrame> {
    const body = await this.#transport.stream('POST', `${this.#prefix}${AgentRoute.execStream}`, request, options.signal);
    yield* readNdjson<ExecFrame>(body, options.signal);
  }

  listFiles(path = '/workspace', depth = 1): Promise<FileList> {
    const query = new URLSearchParams({ path, depth: String(depth) });
    return this.#json('GET', `${AgentRoute.files}?${query}`);
  }

  /** A file as JSON: text, or base64 when its bytes are not UTF-8. */
  readFile(path: string): Promise<FileContent> {
    return this.#json('GET', filesUrl(path));
  }

  /** A file's text (its bytes decoded as UTF-8). */
  async readText(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readBytes(path));
  }

  async readBytes(path: string): Promise<Uint8Array> {
    return this.#transport.bytes(`${this.#prefix}${filesUrl(path)}`);
  }

  /** Writes text (as JSON) or bytes (as `application/octet-stream`); folders on the way are created. */
  writeFile(path: string, content: string | Uint8Array): Promise<WriteFileResult> {
    const url = `${this.#prefix}${filesUrl(path)}`;
    return typeof content === 'string' ? this.#transport.json('PUT', url, { content }) : this.#transport.json('PUT', url, content);
  }

  deleteFile(path: string): Promise<DeleteFileResult> {
    return this.#json('DELETE', filesUrl(path));
  }

  mkdir(path: string): Promise<MkdirResult> {
    return this.#json('POST', AgentRoute.filesMkdir, { path });
  }

  move(request: MoveInput): Promise<MoveResult> {
    return this.#json('POST', AgentRoute.filesMove, request);
  }

  /** A folder of the workspace as `.tar.gz` bytes, packed by the agent as the learner. */
  downloadArchive(path = '/workspace'): Promise<Uint8Array> {
    return this.#transport.bytes(`${this.#prefix}${AgentRoute.archive}?${new URLSearchParams({ path })}`);
  }

  /** Extracts a `.tar` or `.tar.gz` into a folder of the workspace, as the learner; hostile entries are refused. */
  uploadArchive(path: string, archive: Uint8Array): Promise<ArchiveExtractResult> {
    // gzip starts with 1f 8b; anything else is sent as a plain tar.
    const type = archive[0] === 0x1f && archive[1] === 0x8b ? 'application/gzip' : 'application/x-tar';
    return this.#transport.upload('PUT', `${this.#prefix}${AgentRoute.archive}?${new URLSearchParams({ path })}`, archive, type);
  }

  /** Builds an image; a failed build throws a RunnerError `BUILD_FAILED` whose `body.logs` has the output. */
  build(request: BuildInput): Promise<BuildResult> {
    return this.#json('POST', AgentRoute.build, request);
  }

  /** Builder output as it comes; the last frame is `done` or `error`. */
  async *buildStream(request: BuildInput, options: StreamOptions = {}): AsyncGenerator<BuildFrame> {
    const body = await this.#transport.stream('POST', `${this.#prefix}${AgentRoute.buildStream}`, request, options.signal);
    yield* readNdjson<BuildFrame>(body, options.signal);
  }

  run(request: RunInput): Promise<RunResult> {
    return this.#json('POST', AgentRoute.run, request);
  }

  stop(request: StopInput): Promise<StopResult> {
    return this.#json('POST', AgentRoute.stop, request);
  }

  containers(): Promise<ContainerList> {
    return this.#json('GET', AgentRoute.containers);
  }

  images(): Promise<ImageList> {
    return this.#json('GET', AgentRoute.images);
  }

  containerLogs(name: string, tail = 100): Promise<ContainerLogs> {
    return this.#json('GET', `${AgentRoute.containerLogs.replace(':name', encodeURIComponent(name))}?tail=${tail}`);
  }

  terminals(): Promise<TerminalList> {
    return this.#json('GET', AgentRoute.terminals);
  }

  resizeTerminal(id: string, cols: number, rows: number): Promise<TerminalInfo> {
    return this.#json('POST', AgentRoute.terminalResize.replace(':terminal_id', encodeURIComponent(id)), { cols, rows });
  }

  async killTerminal(id: string): Promise<void> {
    await this.#json('DELETE', AgentRoute.terminal.replace(':terminal_id', encodeURIComponent(id)));
  }

  /** Changes in the workspace as they happen (Server-Sent Events); the first frame is `ready`. */
  async *watch(options: StreamOptions = {}): AsyncGenerator<WatchFrame> {
    const body = await this.#transport.stream('GET', `${this.#prefix}${AgentRoute.watchSse}`, undefined, options.signal);
    yield* readEventData<WatchFrame>(body, options.signal);
  }

  /** A URL a learner's browser opens as is: a terminal ticket, a preview origin or a file link (short-lived). */
  createGrant(request: GrantInput): Promise<GrantResponse> {
    return this.#transport.json('POST', this.#grantsPath(), request);
  }

  /** Refuses every earlier grant of the session and closes what was opened with one. */
  revokeGrants(): Promise<RevokeGrantsResponse> {
    return this.#transport.json('DELETE', this.#grantsPath());
  }

  #grantsPath(): string {
    return ControllerRoute.sessionGrants.replace(':id', encodeURIComponent(this.id));
  }

  /** The `ws:`/`wss:` URL of a terminal. */
  terminalUrl(options: TerminalOptions = {}): string {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(options)) if (value !== undefined) query.set(key, String(value));
    const search = query.size > 0 ? `?${query}` : '';
    return this.#transport.websocketUrl(`${this.#prefix}${AgentRoute.terminalWs}${search}`);
  }

  /**
   * A terminal in a browser, which cannot set `Authorization` on a WebSocket: mints a one-use terminal grant over
   * HTTP (bound to `id` when given: the same id reaches the same shell) and opens the socket with its ticket, so the
   * token never travels in the handshake. Call it again for every reconnect. Frames are raw terminal bytes both ways.
   */
  async openTerminalSocket(options: TerminalOptions = {}): Promise<WebSocket> {
    const grant = await this.createGrant({ capability: 'terminal', ...(options.id === undefined ? {} : { terminal_id: options.id }) });
    // The ticket, on the address this client uses: the grant's URL names the runner as browsers reach it publicly.
    const url = new URL(this.terminalUrl(options));
    url.searchParams.set('ticket', new URL(grant.url).searchParams.get('ticket') ?? '');
    const socket = new WebSocket(url);
    socket.binaryType = 'arraybuffer';
    return socket;
  }
}
