// Type declarations of sessionhub.js, the browser client of sessionhub.
// Protocol: docs/PROTOCOL.md. Guide: docs/CLIENT.md.

/** Any JSON value. */
export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };

/** A wire error code (docs/PROTOCOL.md). */
export type ErrorCode =
  | 'invalid'
  | 'forbidden'
  | 'too_large'
  | 'too_many_pending'
  | 'rate_limited'
  | 'unavailable'
  | 'not_found'
  | 'internal';

/**
 * The WebSocket subprotocol the client asks for: a server frame may carry
 * several messages, one JSON object per line.
 */
export const subprotocol: 'sessionhub.v2';

/** The error codes, in the protocol's order. */
export const codes: readonly ErrorCode[];

/** The connection's status. */
export type Status = 'connecting' | 'connected' | 'reconnecting' | 'closed' | 'ended';

/** One op of a change. */
export type Op =
  | { type: 'set'; key: string; value: JSONValue }
  | { type: 'delete'; key: string }
  | { type: 'clear' };

export interface Options {
  /** Path prefix of the hub. Default: "/hub". */
  prefix?: string;
  /** The socket's URL. Default: ws(s)://<location.host><prefix>/ws. */
  url?: string;
  /** The bridge's URL. Default: <prefix>/flush. */
  flushURL?: string;
  /** Flush acknowledged changes into the cookie automatically. Default: true. */
  autoFlush?: boolean;
  /** Debounce of the automatic flush, in milliseconds. Default: 100. */
  flushDelay?: number;
  /** First reconnect delay in milliseconds (before jitter). Default: 250. */
  minReconnectDelay?: number;
  /** Longest reconnect delay in milliseconds. Default: 10000. */
  maxReconnectDelay?: number;
  /** A request without a reply in this many milliseconds drops the socket (0: never). Default: 15000. */
  requestTimeout?: number;
  /** WebSocket constructor. Default: globalThis.WebSocket. */
  WebSocket?: typeof WebSocket;
  /** fetch function. Default: globalThis.fetch. */
  fetch?: typeof fetch;
}

export interface WelcomeDetail {
  seq: number;
  values: Record<string, JSONValue>;
  /** True when the client resumed after a reconnect. */
  resumed: boolean;
}
export interface ChangeDetail {
  seq: number;
  ops: Op[];
  source: 'ws' | 'http';
  /** A resume's replay of a change the welcome already held: values did not change again. */
  replayed: boolean;
}
export interface ResetDetail {
  seq: number;
  values: Record<string, JSONValue>;
}
export interface StatusDetail {
  status: Status;
  /** The close code, when a socket closed. */
  code?: number;
  reason?: string;
  /** The delay before the next attempt, in milliseconds, when reconnecting. */
  delay?: number;
}
export interface AckDetail {
  id: number;
  seq: number;
  data?: JSONValue;
}
export interface FlushedDetail {
  seq: number;
  values: Record<string, JSONValue>;
}
export interface PushDetail {
  name: string;
  data: JSONValue;
}
export interface ErrorDetail {
  code: ErrorCode;
  message: string;
}

export interface EventMap {
  welcome: WelcomeDetail;
  change: ChangeDetail;
  reset: ResetDetail;
  resumed: { seq: number };
  status: StatusDetail;
  ack: AckDetail;
  flushed: FlushedDetail;
  push: PushDetail;
  error: ErrorDetail;
}

/** The error a request is rejected with. */
export class SessionhubError extends Error {
  constructor(code: ErrorCode, message?: string);
  readonly code: ErrorCode;
}

/** What to do after a close code: reconnect, and resume from the last seq. */
export function closePolicy(code: number): { reconnect: boolean; resume: boolean };

/** Reconnect delay of an attempt: exponential from min to max ms with equal jitter. */
export function backoff(attempt: number, min?: number, max?: number, random?: () => number): number;

export class Client extends EventTarget {
  constructor(options?: Options);
  readonly prefix: string;
  readonly url: string;
  readonly flushURL: string;
  autoFlush: boolean;
  flushDelay: number;
  readonly status: Status;
  /** The highest sequence seen: the version of values. */
  readonly seq: number;
  /** The highest sequence acknowledged to this client's requests. */
  readonly ackedSeq: number;
  /** The version of the session the cookie holds, as far as this client knows. */
  readonly inCookieSeq: number;
  /** Whether the last acknowledged change is already in the cookie (ackedSeq <= inCookieSeq). */
  readonly inCookie: boolean;
  /** A copy of the client-readable values. */
  readonly values: Record<string, JSONValue>;
  get(key: string): JSONValue | undefined;

  /** Resolves with the durable append's seq; rejects with a SessionhubError. */
  set(key: string, value: JSONValue): Promise<{ seq: number }>;
  delete(key: string): Promise<{ seq: number }>;
  /** Sends an event to the Go handler of name; resolves with its reply. */
  send(name: string, data?: JSONValue): Promise<JSONValue | undefined>;
  /** POST <prefix>/flush now. */
  flush(): Promise<{ seq: number; values: Record<string, JSONValue> }>;
  /** Stops automatic flushes; resolves once a flush in flight is done. */
  pauseFlush(): Promise<void>;
  resumeFlush(): void;
  /** Closes for good (status closed). */
  close(): void;
  /** Opens the socket (connect() does). */
  open(): void;

  on<K extends keyof EventMap>(name: K, fn: (detail: EventMap[K], event: CustomEvent<EventMap[K]>) => void): () => void;
}

/** Creates a client and connects it. */
export function connect(options?: Options): Client;
