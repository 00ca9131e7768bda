/**
 * The online path, for comparison with the car's offline decision: the phone asks the node over
 * HTTP, the node checks chain state directly (eth_call per fact, no cache), and answers with a
 * command it signed, which the car verifies and obeys. It is how most connected-car unlocks work
 * today; the benchmark times it against the offline path.
 *
 * The node's command is EIP-712 typed data in the keys' domain:
 * `VehicleCommand(address vehicle,uint32 action,bytes32 grantId,bytes32 nonce,uint64 notAfter)`,
 * signed by the node's operator account; the car trusts that one address, refuses another vehicle's
 * command (GRANT_WRONG_VEHICLE), a stale one (CHALLENGE_EXPIRED), a nonce seen before
 * (CHALLENGE_UNKNOWN) and any other signer (UNAUTHENTICATED).
 *
 * Routes (`keyRoutes(app, deps)`, mounted by the node): `POST /v1/keys/challenge {vehicle}` →
 * `{vehicle, challenge, time}`; `POST /v1/keys/unlock {vehicle, challenge, grant, grantSignature,
 * action, signature}` → `{ok, code, command, commandSignature}`, or a `{code, message, details}`
 * error with the decision's code.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import {
  type Address,
  type Chain,
  type Hex,
  hashTypedData,
  type PublicClient,
  recoverTypedDataAddress,
  type Transport,
} from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import { BaseError, type ErrorCode } from '../errors.ts'
import type { TypedDataSigner } from './grant.ts'
import { epochOf, isOwnerOrManager, isRevoked, titleTokenId } from './registry.ts'
import { recoverAddress } from './signatures.ts'
import {
  accessRequestTypedData,
  hashAccessRequest,
  hashGrant,
  type KeyDomain,
  type KeyGrant,
  parseAction,
  parseAddress,
  parseBytes32,
  parseGrant,
  parseSignatureHex,
  RENTAL_SCOPES,
  typedDataDomain,
  ZERO_GRANT_ID,
} from './typed-data.ts'
import { MemoryUseCounter, type UseCounter } from './use-counter.ts'

const bytes = (hex: Hex): Buffer => Buffer.from(hex.slice(2), 'hex')

/** The node's command to a car. */
export type VehicleCommand = { vehicle: Address; action: number; grantId: Hex; nonce: Hex; notAfter: number }
export type SignedCommand = { command: VehicleCommand; signature: Hex }

export const vehicleCommandTypes = {
  VehicleCommand: [
    { name: 'vehicle', type: 'address' },
    { name: 'action', type: 'uint32' },
    { name: 'grantId', type: 'bytes32' },
    { name: 'nonce', type: 'bytes32' },
    { name: 'notAfter', type: 'uint64' },
  ],
} as const

function commandTypedData(domain: KeyDomain, command: VehicleCommand) {
  return {
    domain: typedDataDomain(domain),
    types: vehicleCommandTypes,
    primaryType: 'VehicleCommand' as const,
    message: { ...command, notAfter: BigInt(command.notAfter) },
  }
}

export type OnlineKeyDeps = {
  client: PublicClient<Transport, Chain | undefined>
  domain: KeyDomain
  vehicleRegistry: Address
  /** The node's signing account (the car trusts its address). */
  signer: TypedDataSigner
  /** Use counters the node keeps per grant (default: memory). */
  uses?: UseCounter
  /** How long a challenge may be answered; default 5000 ms. */
  challengeTtlMs?: number
  /** How long a command is valid; default 30 s. */
  commandTtlSec?: number
  clock?: () => number
}

/** The request the phone posts. */
export type OnlineRequest = {
  vehicle: Address
  challenge: Hex
  grant: KeyGrant | null
  grantSignature: Hex | null
  action: number
  signature: Hex
}

/** The node's side: challenges it issued and the decision. */
export class OnlineKeyService {
  readonly #deps: OnlineKeyDeps
  readonly #uses: UseCounter
  readonly #clock: () => number
  readonly #challenges = new Map<string, { vehicle: Address; expiresAtMs: number }>()

  constructor(deps: OnlineKeyDeps) {
    this.#deps = deps
    this.#uses = deps.uses ?? new MemoryUseCounter()
    this.#clock = deps.clock ?? Date.now
  }

  /** A fresh single-use challenge for `vehicle`. */
  challenge(vehicle: Address): { vehicle: Address; challenge: Hex; time: number } {
    const now = this.#clock()
    for (const [key, entry] of this.#challenges) if (entry.expiresAtMs < now) this.#challenges.delete(key)
    const challenge: Hex = `0x${randomBytes(32).toString('hex')}`
    this.#challenges.set(challenge, { vehicle, expiresAtMs: now + (this.#deps.challengeTtlMs ?? 5000) })
    return { vehicle, challenge, time: Math.floor(now / 1000) }
  }

  /**
   * Decides from chain state read now (the same checks and codes as the car's offline
   * decision) and signs the command. Throws a BaseError with the code when refused.
   */
  async decide(request: OnlineRequest): Promise<SignedCommand> {
    const { client, domain, vehicleRegistry } = this.#deps
    const issued = this.#challenges.get(request.challenge)
    this.#challenges.delete(request.challenge)
    const deny = (code: ErrorCode, message: string): never => {
      throw new BaseError(code, message, { details: { vehicle: request.vehicle, action: request.action } })
    }
    if (!issued || issued.vehicle !== request.vehicle) deny('CHALLENGE_UNKNOWN', 'unknown or used challenge')
    if ((issued?.expiresAtMs ?? 0) < this.#clock()) deny('CHALLENGE_EXPIRED', 'the challenge expired')
    const nowSec = Math.floor(this.#clock() / 1000)
    const grant = request.grant
    let grantId: Hex = ZERO_GRANT_ID
    if (grant === null) {
      if ((RENTAL_SCOPES & request.action) !== request.action)
        deny('GRANT_SCOPE', 'a renter may unlock, lock, start')
      const [user, expires, signer] = await Promise.all([
        client.readContract({
          address: vehicleRegistry,
          abi: vehicleRegistryAbi,
          functionName: 'userOf',
          args: [titleTokenId(request.vehicle)],
        }),
        client.readContract({
          address: vehicleRegistry,
          abi: vehicleRegistryAbi,
          functionName: 'userExpires',
          args: [titleTokenId(request.vehicle)],
        }),
        recoverTypedDataAddress({
          ...accessRequestTypedData(domain, {
            grantId,
            action: request.action,
            challenge: request.challenge,
          }),
          signature: request.signature,
        }),
      ])
      if (user.toLowerCase() !== signer.toLowerCase() || Number(expires) < nowSec)
        deny('RENTAL_NOT_ACTIVE', 'the signer is not the current renter')
    } else {
      grantId = grant.grantId
      const issuer = recoverAddress(bytes(hashGrant(domain, grant)), bytes(request.grantSignature ?? '0x'))
      const [managed, epoch, revoked] = await Promise.all([
        issuer === undefined
          ? false
          : isOwnerOrManager(client, { vehicleRegistry, vehicle: request.vehicle, account: issuer }),
        epochOf(client, { keyRegistry: domain.keyRegistry, vehicle: request.vehicle }),
        isRevoked(client, { keyRegistry: domain.keyRegistry, vehicle: request.vehicle, grantId }),
      ])
      if (!managed) deny('GRANT_BAD_SIGNATURE', 'not signed by the owner or a manager')
      if (grant.vehicle !== request.vehicle) deny('GRANT_WRONG_VEHICLE', 'the grant is for another vehicle')
      if (grant.epoch !== epoch) deny('GRANT_EPOCH', 'the grant is from an old epoch')
      if (revoked) deny('GRANT_REVOKED', 'the grant was revoked')
      if (nowSec < grant.notBefore) deny('GRANT_NOT_YET_VALID', 'not valid yet')
      if (nowSec > grant.notAfter) deny('GRANT_EXPIRED', 'expired')
      if ((grant.scopes & request.action) !== request.action) deny('GRANT_SCOPE', 'action outside the scopes')
      // From the use check to the consume nothing awaits: concurrent requests on a limited grant
      // are decided one after the other (issue 19 #12). A failure to sign the command afterwards
      // keeps the use counted, erring on the side of refusing as the car's counter does.
      if (grant.maxUses > 0 && this.#uses.used(grantId) >= grant.maxUses)
        deny('GRANT_USED_UP', 'no uses left')
      const requestDigest = hashAccessRequest(domain, {
        grantId,
        action: request.action,
        challenge: request.challenge,
      })
      const signer = recoverAddress(bytes(requestDigest), bytes(request.signature))
      if (signer !== grant.grantee) deny('REQUEST_BAD_SIGNATURE', 'not signed by the grantee')
      if (grant.maxUses > 0) this.#uses.consume(grantId)
    }
    const command: VehicleCommand = {
      vehicle: request.vehicle,
      action: request.action,
      grantId,
      nonce: `0x${randomBytes(32).toString('hex')}`,
      notAfter: nowSec + (this.#deps.commandTtlSec ?? 30),
    }
    const signature = await this.#deps.signer.signTypedData(commandTypedData(domain, command))
    return { command, signature }
  }
}

/** Parses the phone's posted body strictly. */
export function parseOnlineRequest(body: unknown): OnlineRequest {
  const record = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
  return {
    vehicle: parseAddress(record.vehicle, 'vehicle'),
    challenge: parseBytes32(record.challenge, 'challenge'),
    grant: record.grant === null ? null : parseGrant(record.grant),
    grantSignature: record.grant === null ? null : parseSignatureHex(record.grantSignature, 'grantSignature'),
    action: parseAction(record.action),
    signature: parseSignatureHex(record.signature, 'signature'),
  }
}

/** The car's check of a node command. Returns 'OK' or the refusal code. */
export class CommandVerifier {
  readonly #vehicle: Address
  readonly #domain: KeyDomain
  readonly #node: Address
  readonly #clock: () => number
  readonly #seen = new Map<string, number>()

  constructor(options: { vehicle: Address; domain: KeyDomain; trustedNode: Address; clock?: () => number }) {
    this.#vehicle = options.vehicle.toLowerCase() as Address
    this.#domain = options.domain
    this.#node = options.trustedNode.toLowerCase() as Address
    this.#clock = options.clock ?? Date.now
  }

  verify(signed: SignedCommand): 'OK' | ErrorCode {
    const { command } = signed
    const nowSec = Math.floor(this.#clock() / 1000)
    const digest = bytes(hashTypedData(commandTypedData(this.#domain, command)))
    if (recoverAddress(digest, bytes(signed.signature)) !== this.#node) return 'UNAUTHENTICATED'
    if (command.vehicle.toLowerCase() !== this.#vehicle) return 'GRANT_WRONG_VEHICLE'
    if (command.notAfter < nowSec) return 'CHALLENGE_EXPIRED'
    for (const [nonce, notAfter] of this.#seen) if (notAfter < nowSec) this.#seen.delete(nonce)
    if (this.#seen.has(command.nonce)) return 'CHALLENGE_UNKNOWN'
    this.#seen.set(command.nonce, command.notAfter)
    return 'OK'
  }
}

const hexString = { type: 'string', pattern: '^0x[0-9a-fA-F]*$' } as const

/** The node's key routes (fastify plugin function). */
export function keyRoutes(app: FastifyInstance, deps: OnlineKeyDeps | OnlineKeyService): void {
  const service = deps instanceof OnlineKeyService ? deps : new OnlineKeyService(deps)
  app.post(
    '/v1/keys/challenge',
    {
      schema: {
        summary: 'A single-use challenge for an online unlock (the comparison path to the offline link)',
        body: { type: 'object', required: ['vehicle'], properties: { vehicle: hexString } },
      },
    },
    async (request) =>
      service.challenge(parseAddress((request.body as { vehicle: unknown }).vehicle, 'vehicle')),
  )
  app.post(
    '/v1/keys/unlock',
    {
      schema: {
        summary: 'Decide an access request from chain state and return a node-signed command for the car',
        body: {
          type: 'object',
          required: ['vehicle', 'challenge', 'grant', 'action', 'signature'],
          properties: {
            vehicle: hexString,
            challenge: hexString,
            grant: { type: ['object', 'null'] },
            grantSignature: { type: ['string', 'null'] },
            action: { type: 'integer' },
            signature: hexString,
          },
        },
      },
    },
    async (request) => {
      const signed = await service.decide(parseOnlineRequest(request.body))
      return { ok: true, code: 'OK', command: signed.command, commandSignature: signed.signature }
    },
  )
}

/** The phone's side of the online path: challenge, sign, post; returns the node's command. */
export async function onlineUnlock(parameters: {
  nodeUrl: string
  signer: TypedDataSigner
  domain: KeyDomain
  vehicle: Address
  grant: { grant: KeyGrant; signature: Hex } | null
  action: number
}): Promise<SignedCommand> {
  const post = async (path: string, body: unknown) => {
    const response = await fetch(new URL(path, parameters.nodeUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    const json = (await response.json()) as Record<string, unknown>
    if (!response.ok)
      throw new BaseError(
        (json.code as ErrorCode) ?? 'INTERNAL',
        String(json.message ?? response.statusText),
        {
          details: (json.details as Record<string, unknown>) ?? {},
        },
      )
    return json
  }
  const { challenge } = (await post('/v1/keys/challenge', { vehicle: parameters.vehicle })) as {
    challenge: Hex
  }
  const grantId = parameters.grant?.grant.grantId ?? ZERO_GRANT_ID
  const signature = await parameters.signer.signTypedData(
    accessRequestTypedData(parameters.domain, { grantId, action: parameters.action, challenge }),
  )
  const answer = await post('/v1/keys/unlock', {
    vehicle: parameters.vehicle,
    challenge,
    grant: parameters.grant?.grant ?? null,
    grantSignature: parameters.grant?.signature ?? null,
    action: parameters.action,
    signature,
  })
  return { command: answer.command as VehicleCommand, signature: answer.commandSignature as Hex }
}
