/**
 * Yamux window updates at half a window.
 *
 * @chainsafe/libp2p-yamux (v8) answers every DATA frame it receives with a WINDOW_UPDATE frame as
 * soon as any of the receive window is used. dfs streams carry many small frames (Raft batches, RPC
 * headers and replies), so half of all muxer frames were window updates: each one a Noise message,
 * usually a socket write of its own on the receiver and a wake-up, decryption and dispatch on the
 * sender, none of it carrying data. Go's yamux (the protocol's reference implementation) sends an
 * update only once at least half the window has been consumed; this does the same: an established
 * stream with half its receive window or more still available sends nothing yet. The sender then
 * always has at least half a window to write into, so flow control and throughput are unchanged;
 * the library's own logic (flags on new streams, window growth, pausing) still decides every update
 * that does go out.
 */
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'

let installed = false

/** Patches YamuxStream once per process; throws if the library no longer has the shape relied on. */
export function installYamuxHalfWindowUpdates (): void {
  if (installed) return
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: (this: WindowState) => void }
  const original = proto.sendWindowUpdate
  if (typeof original !== 'function' || StreamState.Established === undefined) {
    throw new Error('@chainsafe/libp2p-yamux changed: YamuxStream.sendWindowUpdate or StreamState.Established is missing')
  }
  proto.sendWindowUpdate = function (this: WindowState): void {
    if (this.state === StreamState.Established && typeof this.recvWindow === 'number' &&
      this.recvWindowCapacity * 2 >= this.recvWindow) return
    original.call(this)
  }
  installed = true
}

/** The fields of a YamuxStream the patch reads (private in its typings). */
interface WindowState {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}
