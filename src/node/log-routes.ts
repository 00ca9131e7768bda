/**
 * The public log API (docs/spec.md "Public log API"): the verification surface anyone can use without
 * trusting the node — every answer can be checked against the root anchored on chain.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { BaseError } from '../errors.ts'
import { listAnchors, readAnchored } from '../ledger/anchor.ts'
import { toBase64, toHex } from '../ledger/bytes.ts'
import { MAX_SHARDS, withShard } from '../ledger/shards.ts'
import {
  getCheckpoint,
  getConsistencyProof,
  getEntries,
  getInclusionProof,
  MAX_ENTRIES_PAGE,
} from '../ledger/store.ts'
import type { NodeContext } from './context.ts'

const hex32 = { type: 'string', pattern: '^0x[0-9a-f]{64}$' } as const
const size = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const

const shardParams = {
  type: 'object',
  required: ['shard'],
  properties: { shard: { type: 'integer', minimum: 0, maximum: MAX_SHARDS - 1 } },
} as const

/**
 * `/v1/log/…` serves shard 0 (the whole log of a one-shard deployment, as docs/spec.md has it);
 * `/v1/log/shards/{shard}/…` serves each shard the same way, and `/v1/log/shards` lists them.
 */
export function logRoutes(context: NodeContext) {
  return (app: FastifyInstance) => {
    app.get(
      '/v1/log/shards',
      {
        schema: {
          summary:
            'The deployment’s log shards: their count, the rule placing a vehicle in one, and each shard’s log id and head',
        },
      },
      async () => {
        // Every shard's head in one query.
        const { rows } = await context.db.query<{ shard: number; tree_size: bigint; root_hash: Uint8Array }>(
          'select shard, tree_size, root_hash from ledger_log order by shard',
        )
        return {
          count: context.shards,
          rule: SHARD_RULE,
          shards: rows.map((row) => ({
            shard: row.shard,
            logId: context.logIds[row.shard],
            treeSize: Number(row.tree_size),
            rootHash: toHex(row.root_hash),
          })),
        }
      },
    )
    shardLogRoutes(context, app, '/v1/log', () => 0, undefined)
    shardLogRoutes(
      context,
      app,
      '/v1/log/shards/:shard',
      (request) => {
        const { shard } = request.params as { shard: number }
        if (shard >= context.shards)
          throw new BaseError('NOT_FOUND', `the log has ${context.shards} shard(s), no shard ${shard}`, {
            details: { shard, shards: context.shards },
          })
        return shard
      },
      shardParams,
    )
  }
}

/** The rule `/v1/log/shards` names: see docs/ledger.md "Shards" and `shardOfVehicle`. */
export const SHARD_RULE = 'sha256(vehicle address bytes)[0:4] big-endian mod count'

function shardLogRoutes(
  context: NodeContext,
  app: FastifyInstance,
  prefix: string,
  shardOfRequest: (request: FastifyRequest) => number,
  params: typeof shardParams | undefined,
) {
  // Shard 0's paths take no parameters (a schema of none makes Fastify warn).
  const withParams = params === undefined ? {} : { params }
  const scoped = (request: FastifyRequest) => {
    const shard = shardOfRequest(request)
    return {
      shard,
      db: withShard(context.db, shard),
      logId: shard === 0 ? context.logId : context.logIds[shard]!,
    }
  }
  app.get(
    `${prefix}/checkpoint`,
    {
      schema: {
        summary: 'The log head and the newest root anchored on chain',
        ...withParams,
        response: {
          200: {
            type: 'object',
            required: ['logId', 'treeSize', 'rootHash', 'anchored', 'contract', 'chainId'],
            properties: {
              logId: hex32,
              treeSize: size,
              rootHash: hex32,
              anchored: {
                type: ['object', 'null'],
                properties: { treeSize: size, rootHash: hex32, txHash: hex32, blockNumber: size },
              },
              contract: { type: 'string' },
              chainId: { type: 'integer' },
            },
          },
        },
      },
    },
    async (request) => {
      const { db, logId } = scoped(request)
      const head = await getCheckpoint(db)
      const [latest] = await listAnchors(db, 1)
      return {
        logId,
        treeSize: head.treeSize,
        rootHash: head.rootHash,
        anchored: latest
          ? {
              treeSize: latest.treeSize,
              rootHash: latest.rootHash,
              txHash: latest.txHash,
              blockNumber: latest.blockNumber,
            }
          : null,
        contract: context.contracts.LedgerAnchor,
        chainId: context.clients.chain.id,
      }
    },
  )

  app.get(
    `${prefix}/entries`,
    {
      schema: {
        ...withParams,
        summary: `Log entries [start, end), at most ${MAX_ENTRIES_PAGE}; leafInput is base64`,
        querystring: { type: 'object', required: ['start', 'end'], properties: { start: size, end: size } },
      },
    },
    async (request) => {
      const { start, end } = request.query as { start: number; end: number }
      const { entries } = await getEntries(scoped(request).db, start, end)
      return {
        entries: entries.map((e) => ({
          index: e.index,
          leafInput: toBase64(e.leafInput),
          leafHash: e.leafHash,
        })),
      }
    },
  )

  app.get(
    `${prefix}/proof/inclusion`,
    {
      schema: {
        ...withParams,
        summary: 'RFC 9162 §2.1.3 inclusion proof of a leaf in the tree of the given size',
        querystring: {
          type: 'object',
          required: ['leafHash', 'treeSize'],
          properties: { leafHash: hex32, treeSize: size },
        },
      },
    },
    async (request) => {
      const { leafHash, treeSize } = request.query as { leafHash: `0x${string}`; treeSize: number }
      return getInclusionProof(scoped(request).db, leafHash, treeSize)
    },
  )

  app.get(
    `${prefix}/proof/consistency`,
    {
      schema: {
        ...withParams,
        summary: 'RFC 9162 §2.1.4 consistency proof between two tree sizes',
        querystring: {
          type: 'object',
          required: ['first', 'second'],
          properties: { first: size, second: size },
        },
      },
    },
    async (request) => {
      const { first, second } = request.query as { first: number; second: number }
      return getConsistencyProof(scoped(request).db, first, second)
    },
  )

  app.get(
    `${prefix}/anchors`,
    {
      schema: {
        ...withParams,
        summary: 'The anchors on chain, newest first',
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
        },
      },
    },
    async (request) => {
      const { limit } = request.query as { limit: number }
      const anchors = await listAnchors(scoped(request).db, limit)
      return { anchors: anchors.map((a) => ({ ...a, anchoredAt: a.anchoredAt.toISOString() })) }
    },
  )

  app.get(
    `${prefix}/anchored`,
    { schema: { summary: 'What LedgerAnchor holds for this log, read from the chain now', ...withParams } },
    async (request) => {
      const { logId } = scoped(request)
      try {
        return await readAnchored(context.clients, context.contracts.LedgerAnchor, logId)
      } catch (error) {
        throw new BaseError('CHAIN_UNREACHABLE', 'cannot read LedgerAnchor', { cause: error })
      }
    },
  )
}
