/** Prefix of every dfs protocol id: `/${PROTOCOL_PREFIX}/${name}/${version}`. */
export const PROTOCOL_PREFIX = 'dfs'

/** The client/admin RPC protocol (file and cluster operations). */
export const RPC_PROTOCOL = `/${PROTOCOL_PREFIX}/rpc/1.0.0`

/** Largest frame on an RPC stream (payload, excluding the varint length prefix). */
export const FRAME_BYTES_MAX = 1024 * 1024 + 4096

/** Largest chunk of bulk bytes in one DATA frame. */
export const DATA_CHUNK_BYTES_MAX = 1024 * 1024

/** DATA frames a receiver lets a sender have in flight before it grants more (flow control window). */
export const DATA_WINDOW_FRAMES = 8
/**
 * A receiver of DATA grants consumed frames back in CREDIT frames of at least this many (half the
 * window, as TCP and Yamux acknowledge windows): the sender always keeps at least half a window in
 * flight, and a transfer that fits in half a window — one small extent or file — costs no CREDIT
 * frame, no muxer frame and no wake-up on either side. One CREDIT per DATA frame made a 4 KiB put
 * four messages per hop instead of two.
 */
export const CREDIT_BATCH_FRAMES = DATA_WINDOW_FRAMES / 2

/** Default deadline of a unary call. */
export const CALL_TIMEOUT_MS_DEFAULT = 30_000

/** Longest a streaming call may go without progress (a frame in either direction). */
export const STREAM_IDLE_TIMEOUT_MS_DEFAULT = 30_000

/** Deadline of dialling a node. */
export const DIAL_TIMEOUT_MS_DEFAULT = 10_000

/** Concurrent inbound RPC streams a node accepts from one connection. */
export const RPC_INBOUND_STREAMS_MAX = 64

/** Idle streams a client keeps per connection for reuse. */
export const RPC_IDLE_STREAMS_MAX = 4

/**
 * A server ends a streaming call (upload, download) whose caller has neither sent a frame nor made
 * room for one for this long, whatever deadline the caller asked for (DeadlineExceeded).
 */
export const RPC_PEER_IDLE_TIMEOUT_MS_DEFAULT = 60_000

/** A server closes an RPC stream that carries no new call for this long. */
export const RPC_STREAM_IDLE_CLOSE_MS = 60_000

/**
 * A client reuses an idle stream only this long (half the server's RPC_STREAM_IDLE_CLOSE_MS), so it
 * never sends a call on a stream the server is closing: a benchmark whose client had streams left
 * idle since a burst of concurrent uploads got NodeUnreachable ("the node closed the stream during
 * fs.put") once its sequential calls fell back on one of them about 60 s later.
 */
export const RPC_STREAM_REUSE_IDLE_MS = RPC_STREAM_IDLE_CLOSE_MS / 2

/** Inbound connections one remote host may open per second before the node refuses more. */
export const INBOUND_CONNECTIONS_PER_SECOND_MAX = 100

/** Inbound connections still in their handshake at once. */
export const INBOUND_PENDING_CONNECTIONS_MAX = 64

/** Open connections a node keeps. */
export const CONNECTIONS_MAX = 1000

/** Initial Yamux receive window of a stream (the sender may have this much in flight on it). */
export const STREAM_WINDOW_BYTES = 4 * 1024 * 1024

/**
 * Largest Yamux receive window of a stream. Yamux grows a window up to this when it measures a
 * round trip; held at the initial window, what a peer can make a node buffer on one connection is
 * at most CONNECTION_INBOUND_STREAMS_MAX × this (and a stranger's at most STRANGER_STREAMS_MAX_DEFAULT
 * streams' worth, see admission.ts).
 */
export const STREAM_WINDOW_BYTES_MAX = STREAM_WINDOW_BYTES

/**
 * Concurrent inbound streams of all protocols on one connection: RPC_INBOUND_STREAMS_MAX for RPC,
 * and room for Raft, gossipsub, kad, identify and ping. Yamux resets any beyond.
 */
export const CONNECTION_INBOUND_STREAMS_MAX = 2 * RPC_INBOUND_STREAMS_MAX

/**
 * Inbound streams a connection may open before this node has finished admitting it (Yamux's
 * "early streams"; beyond the limit Yamux kills the whole connection). A client that starts many
 * calls at once on a new connection opens them all in that window, so it must cover the RPC limit:
 * Yamux's default of 10 made 16 simultaneous first calls of a new client fail together, while its
 * connection was still being judged (admission reads the peer's standing).
 */
export const CONNECTION_EARLY_STREAMS_MAX = RPC_INBOUND_STREAMS_MAX
