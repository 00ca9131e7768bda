/**
 * Vehicles at the node: registration by certificate, the fleet summary, a vehicle's timeline and
 * the ingest endpoint for its event batches.
 *
 * A vehicle authenticates with its certificate once (`POST /v1/vehicles`): the chain must lead to
 * an OEM root the on-chain registry trusts, the certificate must not be revoked (CRL-free here:
 * the registry's revocation is authoritative at the node), and the registry must hold this
 * certificate's fingerprint for the vehicle's address. From then on every batch is authenticated
 * by its checkpoint signature with the certified key, so no vehicle can upload for another.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { type Address, getAddress, recoverTypedDataAddress } from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import { BaseError } from '../errors.ts'
import { fromPem, parseCertificate } from '../identity/certificate.ts'
import { registryRevocation } from '../identity/registry-revocation.ts'
import { validateCertificate } from '../identity/validate.ts'
import { isOwnerOrManager as isTitleOwnerOrManager } from '../keys/registry.ts'
import { listAnchors } from '../ledger/anchor.ts'
import { fromHex, type Hex, toHex } from '../ledger/bytes.ts'
import type { VehicleAddress } from '../ledger/envelope.ts'
import { erasePayload, eraseVehicle, getEvent } from '../ledger/store.ts'
import { listVehicleEvents, summarizeVehicles } from '../ledger/timeline.ts'
import { createDisclosure } from '../ledger/verify.ts'
import { ingestAck } from './ack.ts'
import { sessionAddress } from './auth.ts'
import type { NodeContext } from './context.ts'

const address = { type: 'string', pattern: '^0x[0-9a-fA-F]{40}$' } as const
const OEM_ROLE = 0

export type RegisterVehicleParameters = { certificate: string; chain: string[] }

/** Validates a vehicle certificate against the chain's trust and registry; stores the vehicle. */
export async function registerVehicle(context: NodeContext, parameters: RegisterVehicleParameters) {
  const { publicClient } = context.clients
  const registry = context.contracts.VehicleRegistry
  const chainDers = parameters.chain.flatMap((pem) => fromPem(pem))
  // Roots offered in the chain that the registry trusts for the OEM role.
  const trusted: string[] = []
  for (const der of chainDers) {
    const cert = parseCertificate(der)
    if (Buffer.compare(Buffer.from(cert.subject.der), Buffer.from(cert.issuer.der)) !== 0) continue
    const ok = await publicClient.readContract({
      address: registry,
      abi: vehicleRegistryAbi,
      functionName: 'isTrustedRoot',
      args: [OEM_ROLE, `0x${cert.fingerprint}`],
    })
    if (ok) trusted.push(cert.fingerprint)
  }
  const identity = await validateCertificate({
    certificate: parameters.certificate,
    chain: chainDers,
    role: 'vehicle',
    trustAnchors: { oem: trusted },
    isRevoked: registryRevocation(publicClient, registry),
  })
  if (!identity.wallet)
    throw new BaseError(
      'CERT_WRONG_ROLE',
      'a vehicle certificate must bind its wallet (subjectAltName did:pkh)',
    )
  if (identity.wallet.chainId !== context.clients.chain.id)
    throw new BaseError(
      'CERT_WRONG_ROLE',
      `the certificate binds a wallet on chain ${identity.wallet.chainId}, not ${context.clients.chain.id}`,
    )
  const vehicle = getAddress(identity.wallet.address)
  const registered = await publicClient.readContract({
    address: registry,
    abi: vehicleRegistryAbi,
    functionName: 'certFingerprintOf',
    args: [vehicle],
  })
  if (registered.toLowerCase() !== `0x${identity.fingerprint}`)
    throw new BaseError(
      'VEHICLE_NOT_REGISTERED',
      `the registry holds no title for ${vehicle} with this certificate`,
      {
        details: { vehicle, fingerprint: identity.fingerprint, registered },
      },
    )
  const leaf = identity.path[0]!
  await context.db.query(
    `insert into node_vehicles (vehicle, vin, certificate, chain, fingerprint, public_key) values ($1, $2, $3, $4, $5, $6)
     on conflict (vehicle) do update set vin = excluded.vin, certificate = excluded.certificate, chain = excluded.chain,
       fingerprint = excluded.fingerprint, public_key = excluded.public_key, registered_at = now()`,
    [
      fromHex(vehicle, 'vehicle', 20),
      identity.vin ?? identity.commonName,
      leaf.der,
      identity.path.slice(1).map((c) => c.der),
      Buffer.from(identity.fingerprint, 'hex'),
      identity.publicKey,
    ],
  )
  context.ingest.forget(vehicle)
  return {
    vehicle,
    vin: identity.vin ?? identity.commonName,
    fingerprint: `0x${identity.fingerprint}` as Hex,
  }
}

/** Whether `account` is `vehicle`'s owner or a manager, on chain now. */
function isOwnerOrManager(context: NodeContext, vehicle: Address, account: Address): Promise<boolean> {
  return isTitleOwnerOrManager(context.clients.publicClient, {
    vehicleRegistry: context.contracts.VehicleRegistry,
    vehicle,
    account,
  })
}

/**
 * Whether `reader` may read `vehicle`'s payloads: its owner or a manager, or a reader they
 * admitted with a DataGrant that has not expired and whose signer still owns or manages the car
 * (a sale ends every reader the old owner admitted).
 */
async function mayReadPayloads(
  context: NodeContext,
  vehicle: Address,
  reader: Address | undefined,
): Promise<boolean> {
  if (!reader) return false
  if (await isOwnerOrManager(context, vehicle, reader)) return true
  const { rows } = await context.db.query<{ granted_by: Uint8Array }>(
    'select granted_by from node_readers where vehicle = $1 and reader = $2 and not_after >= $3',
    [fromHex(vehicle, 'vehicle', 20), fromHex(reader, 'reader', 20), Math.floor(Date.now() / 1000)],
  )
  const grantor = rows[0] && getAddress(toHex(new Uint8Array(rows[0].granted_by)))
  return grantor !== undefined && (await isOwnerOrManager(context, vehicle, grantor))
}

/** EIP-712 `DataGrant`: an owner or manager admits `reader` to a vehicle's payloads until `notAfter`. */
export const dataGrantTypes = {
  DataGrant: [
    { name: 'vehicle', type: 'address' },
    { name: 'reader', type: 'address' },
    { name: 'notAfter', type: 'uint64' },
  ],
} as const

/** The DataGrant typed data for this node's chain (domain: Carchain / 1 / VehicleRegistry). */
export function dataGrantTypedData(
  context: NodeContext,
  grant: { vehicle: Address; reader: Address; notAfter: number },
) {
  return {
    domain: {
      name: 'Carchain',
      version: '1',
      chainId: context.clients.chain.id,
      verifyingContract: context.contracts.VehicleRegistry,
    },
    types: dataGrantTypes,
    primaryType: 'DataGrant' as const,
    message: { vehicle: grant.vehicle, reader: grant.reader, notAfter: BigInt(grant.notAfter) },
  }
}

export function vehicleRoutes(context: NodeContext) {
  const { db } = context
  const listVehicles = async () => {
    const [summaries, known] = await Promise.all([
      summarizeVehicles(db),
      db.query<{ vehicle: Uint8Array; vin: string }>('select vehicle, vin from node_vehicles'),
    ])
    const byVehicle = new Map(summaries.map((s) => [s.vehicle, s]))
    const vins = new Map(known.rows.map((r) => [toHex(new Uint8Array(r.vehicle)), r.vin]))
    const all = [...new Set([...vins.keys(), ...byVehicle.keys()])].sort()
    return Promise.all(
      all.map(async (vehicle) => {
        const summary = byVehicle.get(vehicle as VehicleAddress)
        return {
          vehicle: getAddress(vehicle),
          vin: vins.get(vehicle) ?? null,
          owner: await context.indexer.ownerOf(getAddress(vehicle)),
          registered: vins.has(vehicle),
          events: summary?.events ?? 0,
          lastEvent: summary?.lastEvent ?? null,
          odometerKm: summary?.odometerKm ?? null,
        }
      }),
    )
  }

  return (app: FastifyInstance) => {
    app.post(
      '/v1/vehicles',
      {
        schema: {
          summary: 'Register a vehicle at this node by its certificate (validated against the chain)',
          body: {
            type: 'object',
            required: ['certificate', 'chain'],
            additionalProperties: false,
            properties: {
              certificate: { type: 'string', maxLength: 4096 },
              chain: { type: 'array', maxItems: 4, items: { type: 'string', maxLength: 4096 } },
            },
          },
        },
      },
      async (request) => registerVehicle(context, request.body as RegisterVehicleParameters),
    )

    app.get(
      '/v1/vehicles',
      { schema: { summary: 'The fleet: every vehicle known to the node' } },
      async () => ({
        vehicles: await listVehicles(),
      }),
    )

    app.get(
      '/v1/vehicles/:vehicle',
      { schema: { summary: 'One vehicle', params: { type: 'object', properties: { vehicle: address } } } },
      async (request) => {
        const vehicle = getAddress((request.params as { vehicle: string }).vehicle)
        const found = (await listVehicles()).find((v) => v.vehicle === vehicle)
        if (!found) throw new BaseError('NOT_FOUND', `no vehicle ${vehicle} at this node`)
        return found
      },
    )

    app.get(
      '/v1/vehicles/:vehicle/events',
      {
        schema: {
          summary: 'A vehicle’s events, newest first; payloads only for its owner or managers (signed in)',
          params: { type: 'object', properties: { vehicle: address } },
          querystring: {
            type: 'object',
            properties: {
              before: { type: 'integer', minimum: 0 },
              limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
            },
          },
        },
      },
      async (request) => {
        const vehicle = getAddress((request.params as { vehicle: string }).vehicle)
        const { before, limit } = request.query as { before?: number; limit: number }
        const reader = await sessionAddress(db, request)
        const withPayloads = await mayReadPayloads(context, vehicle, reader)
        const events = await listVehicleEvents(db, {
          vehicle: vehicle.toLowerCase() as VehicleAddress,
          beforeSeq: before,
          limit,
          withPayloads,
        })
        return {
          events,
          payloads: withPayloads ? 'included' : reader ? 'forbidden' : 'sign in to read payloads',
        }
      },
    )

    /** The signed-in owner or manager of `vehicle`, or UNAUTHENTICATED / FORBIDDEN. */
    const requireOwner = async (request: FastifyRequest, vehicle: Address) => {
      const reader = await sessionAddress(db, request)
      if (!reader) throw new BaseError('UNAUTHENTICATED', 'sign in with Ethereum (POST /v1/auth/siwe) first')
      if (!(await isOwnerOrManager(context, vehicle, reader)))
        throw new BaseError('FORBIDDEN', `${reader} is neither the owner nor a manager of ${vehicle}`, {
          details: { reader, vehicle },
        })
      return reader
    }
    const eventParams = {
      type: 'object',
      properties: { id: { type: 'string', pattern: '^0x[0-9a-fA-F]{64}$' } },
    } as const

    app.post(
      '/v1/vehicles/:vehicle/readers',
      {
        schema: {
          summary: 'Admit a reader to the vehicle’s payloads with an owner’s or manager’s EIP-712 DataGrant',
          params: { type: 'object', properties: { vehicle: address } },
          body: {
            type: 'object',
            required: ['reader', 'notAfter', 'signature'],
            additionalProperties: false,
            properties: {
              reader: address,
              notAfter: { type: 'integer', minimum: 0, maximum: 2 ** 53 - 1 },
              signature: { type: 'string', pattern: '^0x[0-9a-fA-F]{130}$' },
            },
          },
        },
      },
      async (request) => {
        const vehicle = getAddress((request.params as { vehicle: string }).vehicle)
        const body = request.body as { reader: string; notAfter: number; signature: Hex }
        const reader = getAddress(body.reader)
        const signer = await recoverTypedDataAddress({
          ...dataGrantTypedData(context, { vehicle, reader, notAfter: body.notAfter }),
          signature: body.signature,
        })
        if (!(await isOwnerOrManager(context, vehicle, signer)))
          throw new BaseError(
            'FORBIDDEN',
            `the DataGrant is signed by ${signer}, neither the owner nor a manager`,
            {
              details: { signer, vehicle },
            },
          )
        await db.query(
          `insert into node_readers (vehicle, reader, granted_by, not_after, signature) values ($1, $2, $3, $4, $5)
           on conflict (vehicle, reader) do update set granted_by = excluded.granted_by, not_after = excluded.not_after,
             signature = excluded.signature, created_at = now()`,
          [
            fromHex(vehicle, 'vehicle', 20),
            fromHex(reader, 'reader', 20),
            fromHex(signer, 'signer', 20),
            body.notAfter,
            fromHex(body.signature, 'signature', 65),
          ],
        )
        return { vehicle, reader, notAfter: body.notAfter, grantedBy: signer }
      },
    )

    app.delete(
      '/v1/vehicles/:vehicle/readers/:reader',
      {
        schema: {
          summary: 'Remove a reader (owner or manager, signed in)',
          params: { type: 'object', properties: { vehicle: address, reader: address } },
        },
      },
      async (request) => {
        const params = request.params as { vehicle: string; reader: string }
        const vehicle = getAddress(params.vehicle)
        await requireOwner(request, vehicle)
        const { rows } = await db.query(
          'delete from node_readers where vehicle = $1 and reader = $2 returning 1',
          [fromHex(vehicle, 'vehicle', 20), fromHex(params.reader, 'reader', 20)],
        )
        return { removed: rows.length }
      },
    )

    app.get(
      '/v1/events/:id/disclosure',
      {
        schema: {
          summary:
            'A disclosure bundle (envelope, payload, inclusion proof at the anchored size) — owner, manager or admitted reader',
          params: eventParams,
        },
      },
      async (request) => {
        const id = (request.params as { id: Hex }).id.toLowerCase() as Hex
        const event = await getEvent(db, id)
        const vehicle = getAddress(event.envelope.vehicle)
        if (!(await mayReadPayloads(context, vehicle, await sessionAddress(db, request))))
          throw new BaseError(
            'FORBIDDEN',
            `sign in as the owner, a manager or an admitted reader of ${vehicle}`,
          )
        const [anchored] = await listAnchors(db, 1)
        if (!anchored || anchored.treeSize <= event.index)
          throw new BaseError(
            'NOT_FOUND',
            `event ${id} is not anchored yet; try again after the next anchor`,
            {
              details: { id, index: event.index, anchoredTreeSize: anchored?.treeSize ?? 0 },
            },
          )
        return createDisclosure(db, { id, treeSize: anchored.treeSize })
      },
    )

    app.delete(
      '/v1/events/:id/payload',
      {
        schema: {
          summary: 'Erase one event’s payload (its proofs stay valid) — owner or manager only',
          params: eventParams,
        },
      },
      async (request) => {
        const id = (request.params as { id: Hex }).id.toLowerCase() as Hex
        const event = await getEvent(db, id)
        const by = await requireOwner(request, getAddress(event.envelope.vehicle))
        return { erased: (await erasePayload(db, id)) ? 1 : 0, by }
      },
    )

    app.delete(
      '/v1/vehicles/:vehicle/payloads',
      {
        schema: {
          summary: 'Erase every payload of a vehicle (right to erasure) — owner or manager only',
          params: { type: 'object', properties: { vehicle: address } },
        },
      },
      async (request) => {
        const vehicle = getAddress((request.params as { vehicle: string }).vehicle)
        const by = await requireOwner(request, vehicle)
        return { erased: await eraseVehicle(db, vehicle.toLowerCase() as VehicleAddress), by }
      },
    )

    app.post(
      '/v1/vehicles/:vehicle/events',
      {
        bodyLimit: 16 * 1024 * 1024,
        schema: {
          summary: 'Upload a signed batch of events (docs/ledger.md); answers once durable',
          params: { type: 'object', properties: { vehicle: address } },
        },
      },
      async (request) => {
        const vehicle = (request.params as { vehicle: string }).vehicle.toLowerCase()
        const result = await context.ingest.accept(request.body, vehicle as VehicleAddress)
        return {
          accepted: result.ids.length - result.duplicates,
          duplicates: result.duplicates,
          ids: result.ids,
          treeSize: result.treeSize,
          ack: await ingestAck(context, result),
        }
      },
    )
  }
}
