/**
 * The key app's way to a car's short-range link (docs/keys.md "The short-range link"): a
 * WebSocket to the node's relay for the demo fleet (`/v1/sim/vehicles/{vehicle}/link`), which
 * carries the frames to the car unchanged. The car sends a fresh challenge on connect; the app
 * answers it at once, so the relay bound (2 s) covers the whole tap → answer.
 */
import type { Hex } from '../api.ts'

export type CarChallenge = { type: 'challenge'; vehicle: Hex; challenge: Hex; time: number }
export type CarResult = { type: 'result'; ok: boolean; code: string; eventId: Hex | null }

/** The relay's URL for `vehicle` on this page's node. */
export function relayUrl(vehicle: string): string {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:'
  return `${scheme}//${window.location.host}/v1/sim/vehicles/${vehicle}/link`
}

/**
 * One attempt: connect, take the car's challenge, let `answer` build the request frame for it,
 * send it and resolve with the car's result.
 */
export function attempt(
  vehicle: string,
  answer: (challenge: CarChallenge) => Promise<unknown>,
  timeoutMs = 60_000,
): Promise<CarResult> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(relayUrl(vehicle))
    let answered = false
    const timer = setTimeout(() => fail(new Error('the car did not answer in time')), timeoutMs)
    const fail = (error: Error) => {
      clearTimeout(timer)
      socket.close()
      reject(error)
    }
    socket.onerror = () =>
      fail(new Error('no link to the car (is it in range, and the node’s demo fleet running?)'))
    socket.onmessage = (event) => {
      let message: CarChallenge | CarResult
      try {
        message = JSON.parse(String(event.data)) as CarChallenge | CarResult
      } catch {
        return fail(new Error('the car sent something that is not a link message'))
      }
      if (message.type === 'challenge' && !answered) {
        answered = true
        answer(message).then(
          (request) => socket.send(JSON.stringify(request)),
          (error: Error) => fail(error),
        )
      } else if (message.type === 'result') {
        clearTimeout(timer)
        socket.close()
        resolve(message)
      }
    }
  })
}
