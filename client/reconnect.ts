// The connection's life, as a pure state machine the client drives:
//
//   connecting ──opened──▶ open ──lost──▶ reconnecting ──timer──▶ connecting
//       │                                      ▲                      │
//       └──────────────── lost ────────────────┴──────── lost ────────┘
//   any ──close──▶ closed (final)
//
// `attempt` counts failed connects since the last open; the wait before the
// next one is the backoff delay for it (backoff.ts). step() returns the new
// state and what to do; the client owns sockets and timers.
import type { Status } from './events.ts';

export interface ConnectionState {
  status: Status;
  /** Failed attempts since the connection was last open. */
  attempt: number;
}

export type Input =
  | { type: 'opened' }
  /** The socket closed, failed to connect, or the heartbeat timed out. */
  | { type: 'lost' }
  /** The backoff wait is over. */
  | { type: 'timer' }
  /** The application closed the client. */
  | { type: 'close' };

export type Effect =
  | { type: 'none' }
  | { type: 'connect' }
  | { type: 'wait'; ms: number }
  | { type: 'shutdown' };

export const INITIAL_STATE: ConnectionState = { status: 'connecting', attempt: 0 };

const stay = (state: ConnectionState) => ({ state, effect: { type: 'none' } as Effect });

export function step(state: ConnectionState, input: Input, delay: (attempt: number) => number): { state: ConnectionState; effect: Effect } {
  if (state.status === 'closed') return stay(state);
  switch (input.type) {
    case 'close':
      return { state: { status: 'closed', attempt: state.attempt }, effect: { type: 'shutdown' } };
    case 'opened':
      if (state.status !== 'connecting') return stay(state);
      return { state: { status: 'open', attempt: 0 }, effect: { type: 'none' } };
    case 'lost':
      if (state.status === 'reconnecting') return stay(state);
      return {
        state: { status: 'reconnecting', attempt: state.attempt + 1 },
        effect: { type: 'wait', ms: delay(state.attempt) },
      };
    case 'timer':
      if (state.status !== 'reconnecting') return stay(state);
      return { state: { status: 'connecting', attempt: state.attempt }, effect: { type: 'connect' } };
  }
}
