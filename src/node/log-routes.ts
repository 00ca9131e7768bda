/**
 * The public log API (docs/spec.md "Public log API"): the verification surface anyone can use without
 * trusting the node — every answer can be checked against the root anchored on chain.
 */
import type { FastifyInstance } from 'fastify'
import { BaseError } from '../errors.ts'
import { listAnchors, readAnchored } from '../ledger/anchor.ts'
import { toBase64 } from '../ledger/bytes.ts'
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

export function logRoutes(context: NodeContext) {
  const { db } = context
  return (app: FastifyInstance) => {
    app.get(
      '/v1/log/checkpoint',
      {
        schema: {
          summary: 'The log head and the newest root anchored on chain',
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
      async () => {
        const head = await getCheckpoint(db)
        const [latest] = await listAnchors(db, 1)
        return {
          logId: context.logId,
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
      '/v1/log/entries',
      {
        schema: {
          summary: `Log entries [start, end), at most ${MAX_ENTRIES_PAGE}; leafInput is base64`,
          querystring: { type: 'object', required: ['start', 'end'], properties: { start: size, end: size } },
        },
      },
      async (request) => {
        const { start, end } = request.query as { start: number; end: number }
        const { entries } = await getEntries(db, start, end)
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
      '/v1/log/proof/inclusion',
      {
        schema: {
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
        return getInclusionProof(db, leafHash, treeSize)
      },
    )

    app.get(
      '/v1/log/proof/consistency',
      {
        schema: {
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
        return getConsistencyProof(db, first, second)
      },
    )

    app.get(
      '/v1/log/anchors',
      {
        schema: {
          summary: 'The anchors on chain, newest first',
          querystring: {
            type: 'object',
            properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          },
        },
      },
      async (request) => {
        const { limit } = request.query as { limit: number }
        const anchors = await listAnchors(db, limit)
        return { anchors: anchors.map((a) => ({ ...a, anchoredAt: a.anchoredAt.toISOString() })) }
      },
    )

    app.get(
      '/v1/log/anchored',
      { schema: { summary: 'What LedgerAnchor holds for this log, read from the chain now' } },
      async () => {
        try {
          return await readAnchored(context.clients, context.contracts.LedgerAnchor, context.logId)
        } catch (error) {
          throw new BaseError('CHAIN_UNREACHABLE', 'cannot read LedgerAnchor', { cause: error })
        }
      },
    )
  }
}
