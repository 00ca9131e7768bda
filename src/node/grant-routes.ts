/**
 * Key grants kept by the node (docs/api.md "Key grants"): a mailbox, never an authority. Owners
 * and managers store the KeyGrants and PasskeyGrants they sign; a grantee signed in with SIWE
 * fetches the grants made out to its address. The car decides from the grant alone, offline; the
 * node only refuses to keep what no car would honour anyway:
 *
 * - storing needs a session of the vehicle's current owner or a manager, and a grant for that
 *   vehicle whose EIP-712 signature recovers to the owner or a manager (GRANT_BAD_SIGNATURE for a
 *   tampered or foreign grant);
 * - listing a vehicle's grants and removing one needs the owner's or a manager's session;
 * - `GET /v1/grants` lists only the grants whose grantee is the signed-in address.
 *
 * Each listed grant carries its status read at that moment: on chain (revoked, void by an epoch
 * bump or by its signer no longer holding the title), by time (expired, not yet valid), and by
 * the car's own `access.used` events in the ledger (used, for a limited grant whose uses are spent).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { type Address, getAddress, type Hex } from 'viem'
import { BaseError } from '../errors.ts'
import { grantSigner } from '../keys/grant.ts'
import { epochOf, isOwnerOrManager, isRevoked } from '../keys/registry.ts'
import {
  type AnyGrant,
  type AnySignedGrant,
  isPasskeyGrant,
  type KeyDomain,
  parseAnyGrant,
  parseAnySignedGrant,
  parseBytes32,
} from '../keys/typed-data.ts'
import { fromHex, toHex } from '../ledger/bytes.ts'
import { sessionAddress } from './auth.ts'
import type { NodeContext } from './context.ts'

/** A stored grant's state now, as a car would see it (`active` opens the car). */
export type GrantStatus = 'active' | 'revoked' | 'void' | 'expired' | 'not-yet-valid' | 'used'

/** A grant as the node lists it. */
export type StoredGrant = AnySignedGrant & {
  /** The owner or manager who signed it (checksummed). */
  signer: Address
  /** The signed-in account that stored it. */
  storedBy: Address
  storedAt: string
  status: GrantStatus
  /** Uses the car recorded in the ledger (limited grants; null when unlimited). */
  uses: number | null
}

const address = { type: 'string', pattern: '^0x[0-9a-fA-F]{40}$' } as const
const bytes32 = { type: 'string', pattern: '^0x[0-9a-fA-F]{64}$' } as const
const signedGrantBody = {
  type: 'object',
  required: ['grant', 'signature'],
  additionalProperties: false,
  properties: {
    // checked field by field by parseAnyGrant (KeyGrant or PasskeyGrant, docs/keys.md)
    grant: { type: 'object' },
    signature: { type: 'string', pattern: '^0x[0-9a-fA-F]{130}$' },
  },
} as const

/** The key domain of this node's chain (KeyRegistry). */
export function keyDomain(context: NodeContext): KeyDomain {
  return { chainId: context.clients.chain.id, keyRegistry: context.contracts.KeyRegistry }
}

async function signedInAccount(context: NodeContext, request: FastifyRequest): Promise<Address> {
  const account = await sessionAddress(context.db, request)
  if (!account) throw new BaseError('UNAUTHENTICATED', 'sign in with Ethereum (POST /v1/auth/siwe) first')
  return account
}

function ownerOrManager(context: NodeContext, vehicle: Address, account: Address): Promise<boolean> {
  return isOwnerOrManager(context.clients.publicClient, {
    vehicleRegistry: context.contracts.VehicleRegistry,
    vehicle,
    account,
  })
}

async function requireOwnerOrManager(context: NodeContext, request: FastifyRequest, vehicle: Address) {
  const account = await signedInAccount(context, request)
  if (!(await ownerOrManager(context, vehicle, account)))
    throw new BaseError('FORBIDDEN', `${account} is neither the owner nor a manager of ${vehicle}`, {
      details: { account, vehicle },
    })
  return account
}

type Row = {
  vehicle: Uint8Array
  grant_json: unknown
  signature: Uint8Array
  signer: Uint8Array
  stored_by: Uint8Array
  created_at: Date
}

const columns = 'vehicle, grant_json, signature, signer, stored_by, created_at'

/** Uses of `grantId` the car recorded (its `access.used` events still holding their payload). */
async function recordedUses(context: NodeContext, vehicle: Address, grantId: Hex): Promise<number> {
  const { rows } = await context.db.query<{ uses: number | null }>(
    `select max((data->>'uses')::bigint)::float8 as uses from ledger_leaves
      where vehicle = $1 and kind = 'access.used' and data->>'grantId' = $2`,
    [fromHex(vehicle.toLowerCase(), 'vehicle', 20), grantId],
  )
  return rows[0]?.uses ?? 0
}

async function grantStatus(
  context: NodeContext,
  grant: AnyGrant,
  signer: Address,
): Promise<{ status: GrantStatus; uses: number | null }> {
  const client = context.clients.publicClient
  const keyRegistry = context.contracts.KeyRegistry
  const [revoked, epoch, signerHolds, uses] = await Promise.all([
    isRevoked(client, { keyRegistry, vehicle: grant.vehicle, grantId: grant.grantId }),
    epochOf(client, { keyRegistry, vehicle: grant.vehicle }),
    ownerOrManager(context, grant.vehicle, signer),
    grant.maxUses > 0 ? recordedUses(context, grant.vehicle, grant.grantId) : Promise.resolve(null),
  ])
  const nowSec = Math.floor(Date.now() / 1000)
  let status: GrantStatus = 'active'
  if (revoked) status = 'revoked'
  else if (epoch !== grant.epoch || !signerHolds) status = 'void'
  else if (nowSec > grant.notAfter) status = 'expired'
  else if (nowSec < grant.notBefore) status = 'not-yet-valid'
  else if (uses !== null && uses >= grant.maxUses) status = 'used'
  return { status, uses }
}

async function toStored(context: NodeContext, row: Row): Promise<StoredGrant> {
  // Parsed again: what leaves the node is exactly what a car would accept as a grant.
  const grant = parseAnyGrant(row.grant_json)
  const signer = getAddress(toHex(new Uint8Array(row.signer)))
  return {
    grant,
    signature: toHex(new Uint8Array(row.signature)),
    signer,
    storedBy: getAddress(toHex(new Uint8Array(row.stored_by))),
    storedAt: new Date(row.created_at).toISOString(),
    ...(await grantStatus(context, grant, signer)),
  } as StoredGrant
}

/** Stores a signed grant after checking who signed it and who stores it. */
async function storeGrant(
  context: NodeContext,
  vehicle: Address,
  storedBy: Address,
  body: unknown,
): Promise<StoredGrant> {
  const signed = parseAnySignedGrant(body)
  const { grant } = signed
  if (getAddress(grant.vehicle) !== vehicle)
    throw new BaseError('GRANT_WRONG_VEHICLE', `the grant is for ${grant.vehicle}, not ${vehicle}`, {
      details: { vehicle, grantVehicle: grant.vehicle },
    })
  const recovered = grantSigner(keyDomain(context), signed)
  const signer = recovered === undefined ? undefined : getAddress(recovered)
  if (signer === undefined || !(await ownerOrManager(context, vehicle, signer)))
    throw new BaseError(
      'GRANT_BAD_SIGNATURE',
      `the grant is signed by ${signer ?? 'nobody (a malformed signature)'}, neither the owner nor a manager of ${vehicle}`,
      { details: { vehicle, signer: signer ?? null } },
    )
  const vehicleBytes = fromHex(vehicle.toLowerCase(), 'vehicle', 20)
  const grantId = fromHex(grant.grantId, 'grantId', 32)
  const signature = fromHex(signed.signature, 'signature', 65)
  const inserted = await context.db.query<Row>(
    `insert into node_key_grants
       (vehicle, grant_id, grantee, passkey, signer, stored_by, grant_json, signature)
     values ($1, $2, $3, $4, $5, $6, $7, $8)
     on conflict (vehicle, grant_id) do nothing
     returning ${columns}`,
    [
      vehicleBytes,
      grantId,
      isPasskeyGrant(grant) ? null : fromHex(grant.grantee, 'grantee', 20),
      isPasskeyGrant(grant) ? fromHex(grant.passkey, 'passkey', 65) : null,
      fromHex(signer.toLowerCase(), 'signer', 20),
      fromHex(storedBy.toLowerCase(), 'storedBy', 20),
      JSON.stringify(grant),
      signature,
    ],
  )
  let row = inserted.rows[0]
  if (row === undefined) {
    // Stored before: the same signed grant again is fine (idempotent), another one is not.
    const { rows } = await context.db.query<Row>(
      `select ${columns} from node_key_grants where vehicle = $1 and grant_id = $2`,
      [vehicleBytes, grantId],
    )
    row = rows[0]
    if (row === undefined || !Buffer.from(row.signature).equals(signature))
      throw new BaseError('GRANT_EXISTS', `another grant with id ${grant.grantId} is stored for ${vehicle}`, {
        details: { vehicle, grantId: grant.grantId },
      })
  }
  return toStored(context, row)
}

/** `POST`/`GET`/`DELETE /v1/vehicles/{vehicle}/grants` and `GET /v1/grants`. */
export function grantRoutes(context: NodeContext) {
  const { db } = context
  const vehicleOf = (request: FastifyRequest) => getAddress((request.params as { vehicle: string }).vehicle)
  return (app: FastifyInstance) => {
    app.post(
      '/v1/vehicles/:vehicle/grants',
      {
        schema: {
          summary:
            'Store a signed KeyGrant or PasskeyGrant (owner or manager, signed in; signed by the owner or a manager)',
          params: { type: 'object', properties: { vehicle: address } },
          body: signedGrantBody,
        },
      },
      async (request, reply) => {
        const vehicle = vehicleOf(request)
        const account = await requireOwnerOrManager(context, request, vehicle)
        const stored = await storeGrant(context, vehicle, account, request.body)
        reply.status(201)
        return stored
      },
    )
    app.get(
      '/v1/vehicles/:vehicle/grants',
      {
        schema: {
          summary: 'The grants stored for a vehicle, with their status now (owner or manager, signed in)',
          params: { type: 'object', properties: { vehicle: address } },
        },
      },
      async (request) => {
        const vehicle = vehicleOf(request)
        await requireOwnerOrManager(context, request, vehicle)
        const { rows } = await db.query<Row>(
          `select ${columns} from node_key_grants where vehicle = $1 order by created_at desc, grant_id`,
          [fromHex(vehicle.toLowerCase(), 'vehicle', 20)],
        )
        return { grants: await Promise.all(rows.map((row) => toStored(context, row))) }
      },
    )
    app.delete(
      '/v1/vehicles/:vehicle/grants/:grantId',
      {
        schema: {
          summary:
            'Remove a stored grant from the node (owner or manager, signed in). It does not revoke it: revoke on chain',
          params: { type: 'object', properties: { vehicle: address, grantId: bytes32 } },
        },
      },
      async (request) => {
        const vehicle = vehicleOf(request)
        await requireOwnerOrManager(context, request, vehicle)
        const grantId = parseBytes32((request.params as { grantId: string }).grantId, 'grantId')
        const { rows } = await db.query(
          'delete from node_key_grants where vehicle = $1 and grant_id = $2 returning grant_id',
          [fromHex(vehicle.toLowerCase(), 'vehicle', 20), fromHex(grantId, 'grantId', 32)],
        )
        return { removed: rows.length }
      },
    )
    app.get(
      '/v1/grants',
      {
        schema: {
          summary: 'The grants made out to the signed-in account (its address as grantee), with their status',
        },
      },
      async (request) => {
        const account = await signedInAccount(context, request)
        const { rows } = await db.query<Row>(
          `select ${columns} from node_key_grants where grantee = $1 order by created_at desc, grant_id`,
          [fromHex(account.toLowerCase(), 'account', 20)],
        )
        return { grants: await Promise.all(rows.map((row) => toStored(context, row))) }
      },
    )
  }
}
