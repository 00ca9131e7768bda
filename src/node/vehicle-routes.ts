/**
 * Vehicles at the node, as thin routes over the libraries: registration by certificate
 * (src/identity/vehicle-registration.ts), the fleet summary and a vehicle's timeline
 * (src/ledger/timeline.ts), payload access and readers (src/ledger/payload-access.ts, the
 * DataGrant in src/ledger/data-grant.ts), erasure and disclosure (src/ledger/store.ts,
 * src/ledger/verify.ts), and the ingest endpoint for a vehicle's event batches.
 *
 * A vehicle authenticates with its certificate once (`POST /v1/vehicles`); from then on every
 * batch is authenticated by its checkpoint signature with the certified key, so no vehicle can
 * upload for another.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { type Address, getAddress } from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import { BaseError } from '../errors.ts'
import {
  listRegisteredVehicles,
  type RegisterVehicleParameters,
  type RegisterVehicleReturnType,
  registerVehicle as registerCertifiedVehicle,
  registeredCertificates,
} from '../identity/vehicle-registration.ts'
import { isOwnerOrManager as isTitleOwnerOrManager } from '../keys/registry.ts'
import { listAnchors } from '../ledger/anchor.ts'
import type { Hex } from '../ledger/bytes.ts'
import { type DataGrantDomain, recoverDataGrantSigner } from '../ledger/data-grant.ts'
import type { VehicleAddress } from '../ledger/envelope.ts'
import {
  admitReader,
  inPeriods,
  type PayloadAccess,
  payloadAccess,
  removeReader,
  type TitleChain,
  type TitleCheck,
} from '../ledger/payload-access.ts'
import { withShard } from '../ledger/shards.ts'
import { erasePayload, eraseVehicle, getEvent } from '../ledger/store.ts'
import { latestOdometerKm, listVehicleEvents, summarizeVehicles } from '../ledger/timeline.ts'
import { createDisclosure } from '../ledger/verify.ts'
import { ingestAck } from './ack.ts'
import { sessionAddress } from './auth.ts'
import type { NodeContext } from './context.ts'

const address = { type: 'string', pattern: '^0x[0-9a-fA-F]{40}$' } as const
const vehicleParams = { type: 'object', properties: { vehicle: address } } as const
const eventParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^0x[0-9a-fA-F]{64}$' } },
} as const

/** Registers a certified vehicle (src/identity/vehicle-registration.ts) and drops ingest's cached key. */
export async function registerVehicle(
  context: NodeContext,
  parameters: RegisterVehicleParameters,
): Promise<RegisterVehicleReturnType> {
  const registered = await registerCertifiedVehicle(context.db, chainOf(context), parameters)
  context.ingest.forget(registered.vehicle)
  return registered
}

function chainOf(context: NodeContext) {
  return {
    client: context.clients.publicClient,
    chainId: context.clients.chain.id,
    vehicleRegistry: context.contracts.VehicleRegistry,
  }
}

/** The DataGrant domain of this node's chain and VehicleRegistry. */
export function dataGrantDomain(context: NodeContext): DataGrantDomain {
  return { chainId: context.clients.chain.id, vehicleRegistry: context.contracts.VehicleRegistry }
}

/** `VehicleRegistry.isOwnerOrManager` on chain now. */
function titleCheck(context: NodeContext): TitleCheck {
  return (vehicle, account) =>
    isTitleOwnerOrManager(context.clients.publicClient, {
      vehicleRegistry: context.contracts.VehicleRegistry,
      vehicle,
      account,
    })
}

/** The title's owner on chain now, or null (not minted, burnt). */
async function chainOwnerOf(context: NodeContext, vehicle: Address): Promise<Address | null> {
  try {
    return await context.clients.publicClient.readContract({
      address: context.contracts.VehicleRegistry,
      abi: vehicleRegistryAbi,
      functionName: 'ownerOf',
      args: [BigInt(vehicle)],
    })
  } catch (error) {
    // ERC-721 reverts for a title that does not exist; anything else is the chain failing.
    if (error instanceof Error && /ERC721NonexistentToken/.test(error.message)) return null
    throw error
  }
}

function titleChain(context: NodeContext): TitleChain {
  return { isOwnerOrManager: titleCheck(context), ownerOf: (vehicle) => chainOwnerOf(context, vehicle) }
}

/**
 * What the signed-in `account` may read and erase of `vehicle`'s payloads (its title periods,
 * src/ledger/payload-access.ts); a sale the indexer has not seen yet is indexed first.
 */
async function accessOf(
  context: NodeContext,
  vehicle: Address,
  account: Address | undefined,
): Promise<PayloadAccess> {
  try {
    return await payloadAccess(context.db, titleChain(context), vehicle, account)
  } catch (error) {
    if (!(error instanceof BaseError) || error.code !== 'TITLES_BEHIND') throw error
    await context.indexer.sync()
    return payloadAccess(context.db, titleChain(context), vehicle, account)
  }
}

const vehicleOf = (request: FastifyRequest) => getAddress((request.params as { vehicle: string }).vehicle)
const eventIdOf = (request: FastifyRequest) => (request.params as { id: Hex }).id.toLowerCase() as Hex

/**
 * Every vehicle known to the node (registered or with events), its owner and activity. The
 * odometer is payload data: only the signed-in `account` sees it, for the cars it owns (as the
 * index says) and from a reading of its own title periods that it has not erased.
 */
async function listVehicles(context: NodeContext, account: Address | undefined) {
  const [summaries, registered] = await Promise.all([
    summarizeVehicles(context.db),
    listRegisteredVehicles(context.db),
  ])
  const byVehicle = new Map(summaries.map((s) => [s.vehicle, s]))
  const vins = new Map(registered.map((r) => [r.vehicle, r.vin]))
  const all = [...new Set([...vins.keys(), ...byVehicle.keys()])].sort()
  return Promise.all(
    all.map(async (vehicle) => {
      const summary = byVehicle.get(vehicle as VehicleAddress)
      const owner = await context.indexer.ownerOf(getAddress(vehicle))
      return {
        vehicle: getAddress(vehicle),
        vin: vins.get(vehicle) ?? null,
        owner,
        registered: vins.has(vehicle),
        events: summary?.events ?? 0,
        lastEvent: summary?.lastEvent ?? null,
        odometerKm:
          account !== undefined && owner === account
            ? await latestOdometerKm(
                context.db,
                vehicle as VehicleAddress,
                (await accessOf(context, getAddress(vehicle), account)).readable,
              )
            : null,
      }
    }),
  )
}

/** The signed-in account, or UNAUTHENTICATED. */
async function requireSignedIn(context: NodeContext, request: FastifyRequest): Promise<Address> {
  const account = await sessionAddress(context.db, request)
  if (!account) throw new BaseError('UNAUTHENTICATED', 'sign in with Ethereum (POST /v1/auth/siwe) first')
  return account
}

/** The signed-in owner or manager of `vehicle`, or UNAUTHENTICATED / FORBIDDEN. */
async function requireOwner(context: NodeContext, request: FastifyRequest, vehicle: Address) {
  const account = await requireSignedIn(context, request)
  if (!(await titleCheck(context)(vehicle, account)))
    throw new BaseError('FORBIDDEN', `${account} is neither the owner nor a manager of ${vehicle}`, {
      details: { reader: account, vehicle },
    })
  return account
}

/**
 * The request's event (`:id`) if its time lies in the `right` periods of `account`, else
 * FORBIDDEN with the message `refusal` gives.
 */
async function eventWithin(
  context: NodeContext,
  request: FastifyRequest,
  account: Address | undefined,
  right: keyof PayloadAccess,
  refusal: (vehicle: Address) => string,
) {
  const id = eventIdOf(request)
  const event = await getEvent(context.db, id)
  const vehicle = getAddress(event.envelope.vehicle)
  const access = await accessOf(context, vehicle, account)
  if (!inPeriods(event.envelope.time, access[right]))
    throw new BaseError('FORBIDDEN', refusal(vehicle), {
      details: { id, vehicle, timeMs: event.envelope.time, account: account ?? null },
    })
  return { id, event }
}

/** How much of a page of events the reader's periods cover, as the `payloads` field says it. */
function payloadsCoverage(events: readonly { timeMs: number }[], access: PayloadAccess, signedIn: boolean) {
  if (!signedIn) return 'sign in to read payloads'
  const covered = events.filter((event) => inPeriods(event.timeMs, access.readable)).length
  if (access.readable.length === 0 || (covered === 0 && events.length > 0)) return 'forbidden'
  return covered === events.length ? 'included' : 'partial'
}

/** `POST /v1/vehicles` and `GET /v1/vehicles[/{vehicle}]`: registration and the fleet. */
function fleetRoutes(context: NodeContext, app: FastifyInstance) {
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
    async (request) => ({ vehicles: await listVehicles(context, await sessionAddress(context.db, request)) }),
  )
  app.get(
    '/v1/vehicles/:vehicle',
    { schema: { summary: 'One vehicle', params: vehicleParams } },
    async (request) => {
      const vehicle = vehicleOf(request)
      const account = await sessionAddress(context.db, request)
      const found = (await listVehicles(context, account)).find((v) => v.vehicle === vehicle)
      if (!found) throw new BaseError('NOT_FOUND', `no vehicle ${vehicle} at this node`)
      return found
    },
  )
}

/** `GET /v1/vehicles/{vehicle}/events` and `GET /v1/events/{id}/disclosure`: reads, payloads by right. */
function readRoutes(context: NodeContext, app: FastifyInstance) {
  const { db } = context
  app.get(
    '/v1/vehicles/:vehicle/events',
    {
      schema: {
        summary:
          'A vehicle’s events, newest first; payloads of the caller’s title periods only (owner, manager, past owner, admitted reader)',
        params: vehicleParams,
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
      const vehicle = vehicleOf(request)
      const { before, limit } = request.query as { before?: number; limit: number }
      const reader = await sessionAddress(db, request)
      const access = await accessOf(context, vehicle, reader)
      const events = await listVehicleEvents(db, {
        vehicle: vehicle.toLowerCase() as VehicleAddress,
        beforeSeq: before,
        limit,
        payloadPeriods: access.readable,
      })
      return { events, payloads: payloadsCoverage(events, access, reader !== undefined) }
    },
  )
  app.get(
    '/v1/events/:id/disclosure',
    {
      schema: {
        summary:
          'A disclosure (envelope, payload, inclusion proof at the anchored size, the car’s signature and certificate) — owner, manager or admitted reader',
        params: eventParams,
      },
    },
    async (request) => {
      const { id, event } = await eventWithin(
        context,
        request,
        await sessionAddress(db, request),
        'readable',
        (vehicle) =>
          `sign in as the owner or a manager of ${vehicle}, or a reader they admitted, while the event's time lies in their title`,
      )
      // The event's own shard: its log, its anchors.
      const log = withShard(db, event.shard)
      const [anchored] = await listAnchors(log, 1)
      if (!anchored || anchored.treeSize <= event.index)
        throw new BaseError('NOT_FOUND', `event ${id} is not anchored yet; try again after the next anchor`, {
          details: { id, index: event.index, anchoredTreeSize: anchored?.treeSize ?? 0 },
        })
      // The certificate the car registered with: the disclosure carries the car's signature.
      return createDisclosure(log, {
        id,
        treeSize: anchored.treeSize,
        certificates: await registeredCertificates(db, getAddress(event.envelope.vehicle)),
      })
    },
  )
}

/** `POST` and `DELETE /v1/vehicles/{vehicle}/readers`: admitting readers with a DataGrant. */
function readerRoutes(context: NodeContext, app: FastifyInstance) {
  app.post(
    '/v1/vehicles/:vehicle/readers',
    {
      schema: {
        summary: 'Admit a reader to the vehicle’s payloads with an owner’s or manager’s EIP-712 DataGrant',
        params: vehicleParams,
        body: {
          type: 'object',
          required: ['reader', 'notAfter', 'issuedAtMs', 'signature'],
          additionalProperties: false,
          properties: {
            reader: address,
            notAfter: { type: 'integer', minimum: 0, maximum: 2 ** 53 - 1 },
            issuedAtMs: { type: 'integer', minimum: 0, maximum: 2 ** 53 - 1 },
            signature: { type: 'string', pattern: '^0x[0-9a-fA-F]{130}$' },
          },
        },
      },
    },
    async (request) => {
      const vehicle = vehicleOf(request)
      const body = request.body as { reader: string; notAfter: number; issuedAtMs: number; signature: Hex }
      const grant = {
        vehicle,
        reader: getAddress(body.reader),
        notAfter: body.notAfter,
        issuedAtMs: body.issuedAtMs,
      }
      const signer = await recoverDataGrantSigner(dataGrantDomain(context), grant, body.signature)
      const titleOwner = await chainOwnerOf(context, vehicle)
      if (!titleOwner || !(await titleCheck(context)(vehicle, signer)))
        throw new BaseError(
          'FORBIDDEN',
          `the DataGrant is signed by ${signer}, neither the owner nor a manager`,
          {
            details: { signer, vehicle },
          },
        )
      await admitReader(context.db, { ...grant, grantedBy: signer, titleOwner, signature: body.signature })
      return { ...grant, grantedBy: signer }
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
      const vehicle = vehicleOf(request)
      await requireOwner(context, request, vehicle)
      const reader = getAddress((request.params as { reader: string }).reader)
      return { removed: await removeReader(context.db, vehicle, reader) }
    },
  )
}

/** `DELETE /v1/events/{id}/payload` and `DELETE /v1/vehicles/{vehicle}/payloads`: erasure. */
function erasureRoutes(context: NodeContext, app: FastifyInstance) {
  const { db } = context
  app.delete(
    '/v1/events/:id/payload',
    {
      schema: {
        summary:
          'Erase one event’s payload (its proofs stay valid) — the owner or a manager of the title when it was recorded',
        params: eventParams,
      },
    },
    async (request) => {
      const by = await requireSignedIn(context, request)
      const { id } = await eventWithin(
        context,
        request,
        by,
        'erasable',
        (vehicle) =>
          `${by} did not hold ${vehicle}'s title (as owner or manager) when this event was recorded`,
      )
      return { erased: (await erasePayload(db, id)) ? 1 : 0, by }
    },
  )
  app.delete(
    '/v1/vehicles/:vehicle/payloads',
    {
      schema: {
        summary:
          'Erase the payloads of a vehicle from the caller’s title periods (right to erasure) — owners and managers, present or past',
        params: vehicleParams,
      },
    },
    async (request) => {
      const vehicle = vehicleOf(request)
      const by = await requireSignedIn(context, request)
      const { erasable } = await accessOf(context, vehicle, by)
      if (erasable.length === 0)
        throw new BaseError('FORBIDDEN', `${by} has never been the owner nor a manager of ${vehicle}`, {
          details: { reader: by, vehicle },
        })
      return { erased: await eraseVehicle(db, vehicle.toLowerCase() as VehicleAddress, erasable), by }
    },
  )
}

/** `POST /v1/vehicles/{vehicle}/events`: a vehicle's signed batch, answered once durable. */
function ingestRoutes(context: NodeContext, app: FastifyInstance) {
  app.post(
    '/v1/vehicles/:vehicle/events',
    {
      bodyLimit: 16 * 1024 * 1024,
      // An unregistered vehicle is refused before its body is read, after the per-client
      // budget (an onRequest hook) has counted the request (issue 19 #9).
      preParsing: async (request, _reply, payload) => {
        await context.ingest.requireRegistered((request.params as { vehicle: string }).vehicle)
        return payload
      },
      schema: {
        summary: 'Upload a signed batch of events (docs/ledger.md); answers once durable',
        params: vehicleParams,
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

/** Every vehicle route, mounted in steps: fleet, reads, readers, erasure, ingest. */
export function vehicleRoutes(context: NodeContext) {
  return (app: FastifyInstance) => {
    fleetRoutes(context, app)
    readRoutes(context, app)
    readerRoutes(context, app)
    erasureRoutes(context, app)
    ingestRoutes(context, app)
  }
}
