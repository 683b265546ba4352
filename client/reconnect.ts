// The connection's life, as a pure state machine the client drives:
//
//   connecting ──opened──▶ open ──lost──▶ reconnecting ──timer──▶ connecting
//       │                   │ healthy          ▲                      │
//       │                   ▼ (attempt = 0)    │                      │
//       └──────────────── lost ────────────────┴──────── lost ────────┘
//   any ──close──▶ closed (final)
//
// `attempt` counts connections lost since the connection was last healthy;
// the wait before the next one is the backoff delay for it (backoff.ts).
// An open alone does not reset it: a relay that closes every connection
// right after it opened (a refused subscribe, a 4xxx that will repeat) would
// otherwise see the client back at once, forever. The client reports
// `healthy` once a connection stayed open for a while (sdk.ts). step()
// returns the new state and what to do; the client owns sockets and timers.
import type { Status } from './events.ts';

export interface ConnectionState {
  status: Status;
  /** Connections lost or failed since the connection was last healthy. */
  attempt: number;
}

export type Input =
  | { type: 'opened' }
  /** The open connection stayed up long enough to count as working: backoff starts over. */
  | { type: 'healthy' }
  /** The socket closed, failed to connect, or the heartbeat timed out. */
  | { type: 'lost' }
  /** The backoff wait is over. */
  | { type: 'timer' }
  /** The application closed the client. */
  | { type: 'close' };

export type Effect = { type: 'none' } | { type: 'connect' } | { type: 'wait'; ms: number } | { type: 'shutdown' };

export const INITIAL_STATE: ConnectionState = { status: 'connecting', attempt: 0 };

const stay = (state: ConnectionState) => ({ state, effect: { type: 'none' } as Effect });

export function step(
  state: ConnectionState,
  input: Input,
  delay: (attempt: number) => number,
): { state: ConnectionState; effect: Effect } {
  if (state.status === 'closed') return stay(state);
  switch (input.type) {
    case 'close':
      return { state: { status: 'closed', attempt: state.attempt }, effect: { type: 'shutdown' } };
    case 'opened':
      if (state.status !== 'connecting') return stay(state);
      return { state: { status: 'open', attempt: state.attempt }, effect: { type: 'none' } };
    case 'healthy':
      if (state.status !== 'open') return stay(state);
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
