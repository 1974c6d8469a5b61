import type { z } from 'zod';
import type { BuildFrame, BuildRequest, BuildResult, ContainerList, ContainerSummary, ContainerLogs, ImageList, RunRequest, RunResult, StopRequest, StopResult } from '../../shared/schemas/docker.js';
import type { ExecFrame, ExecRequest, ExecResult } from '../../shared/schemas/exec.js';
import type { DeleteFileResult, FileContent, FileEntry, FileList, MkdirResult, MoveRequest, MoveResult, WriteFileResult } from '../../shared/schemas/files.js';
import type { AgentHealth } from '../../shared/schemas/health.js';
import type { ControllerHealth, CreateSessionRequest, DeleteSessionQuery, DeleteSessionResponse, SessionInfo, SessionList, SessionUsage } from '../../shared/schemas/session.js';
import type { TerminalInfo, TerminalList } from '../../shared/schemas/terminal.js';
import type { WatchFrame } from '../../shared/schemas/watch.js';
import type { GrantRequest, GrantResponse, RevokeGrantsResponse } from '../../shared/schemas/grants.js';
import type { ErrorBody, ErrorCode } from '../../shared/errors.js';
import type { ArchiveExtractResult } from '../../shared/schemas/archive.js';

// Requests are what a caller may send (defaults optional), answers what the runner sends: both from shared/.
export type CreateSessionInput = z.input<typeof CreateSessionRequest>;
export type ExecInput = z.input<typeof ExecRequest>;
export type BuildInput = z.input<typeof BuildRequest>;
export type RunInput = z.input<typeof RunRequest>;
export type StopInput = z.input<typeof StopRequest>;
export type MoveInput = z.input<typeof MoveRequest>;
export type GrantInput = z.input<typeof GrantRequest>;
/** `{ keep_workspace: true }` keeps the workspace for a new session of the same id. */
export type DeleteSessionOptions = Partial<z.output<typeof DeleteSessionQuery>>;

export type {
  AgentHealth,
  ArchiveExtractResult,
  BuildFrame,
  BuildResult,
  ContainerList,
  ContainerLogs,
  ContainerSummary,
  ControllerHealth,
  DeleteFileResult,
  DeleteSessionResponse,
  ErrorBody,
  ErrorCode,
  ExecFrame,
  ExecResult,
  FileContent,
  FileEntry,
  FileList,
  GrantResponse,
  ImageList,
  MkdirResult,
  MoveResult,
  RevokeGrantsResponse,
  RunResult,
  SessionInfo,
  SessionList,
  SessionUsage,
  StopResult,
  TerminalInfo,
  TerminalList,
  WatchFrame,
  WriteFileResult,
};
