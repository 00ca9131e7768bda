/**
 * The repository is self-contained (issue 19 #20): no doc, comment or source points to a design
 * file outside it — docs/spec.md states the external contracts. Only test code may reach outside,
 * and only for the conformance vectors CI provides next to the repository (`../shared/vectors`).
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
/** Built, not written out, so this file does not name what it looks for. */
const designFile = ['DESIGN', 'md'].join('.')
const outside = ['..', 'shared'].join('/')
const vectors = `${outside}/vectors`

const skippedDirs = new Set(['node_modules', '.git', 'dist', 'out', 'cache', 'data', 'img'])
const textFile = /\.(ts|tsx|js|mjs|cjs|json|md|sol|toml|sh|html|css|ya?ml|sql|txt)$|^[^.]+$/

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return skippedDirs.has(entry.name) ? [] : files(path)
    return entry.isFile() && textFile.test(entry.name) ? [path] : []
  })
}

/** Test code that reads the conformance vectors (and the forge permission to read them). */
const readsVectors = (file: string) =>
  /\.test\.ts$/.test(file) ||
  file.startsWith('test/') ||
  file.startsWith('contracts/test/') ||
  file === 'contracts/foundry.toml'

test('nothing in the repository points to a design file or folder outside it', () => {
  const offending: string[] = []
  for (const path of files(root)) {
    const file = relative(root, path)
    const lines = readFileSync(path, 'utf8').split('\n')
    lines.forEach((line, index) => {
      const where = `${file}:${index + 1}: ${line.trim()}`
      if (line.includes(designFile)) offending.push(where)
      for (const match of line.matchAll(/(?:\.\.\/)+shared\b[^\s'"`)]*/g)) {
        const reference = match[0].replace(/^(\.\.\/)+/, '../')
        if (!(reference.startsWith(vectors) && readsVectors(file))) offending.push(where)
      }
    })
  }
  assert.deepEqual(offending, [], 'write the fact into docs/spec.md (or the fitting doc) instead')
})

test('docs/spec.md states the external contracts', () => {
  const spec = readFileSync(join(root, 'docs/spec.md'), 'utf8')
  for (const fact of [
    'KeyGrant(address vehicle,address grantee,uint32 scopes,uint64 notBefore,uint64 notAfter,uint32 maxUses,uint64 epoch,bytes32 grantId,string purpose)',
    'AccessRequest(bytes32 grantId,uint32 action,bytes32 challenge)',
    'Voucher(bytes32 channelId,uint256 cumulativeAmount,uint64 meterWh)',
    'Tariff(string evseId,address token,uint256 pricePerKWh,uint256 sessionFee,uint64 validUntil)',
    'function anchor(bytes32 logId, uint64 treeSize, bytes32 rootHash, bytes32[] calldata proof) external;',
    'event Anchored(bytes32 indexed logId, uint64 treeSize, bytes32 rootHash);',
    'GET /v1/log/proof/consistency?first=M&second=N',
    'GET /v1/sim/vehicles',
    // added by the security review (issue 19)
    'DataGrant(address vehicle,address reader,uint64 notAfter,uint64 issuedAtMs)',
    'LedgerAck(address vehicle,bytes32 leafHash,uint64 leafIndex,uint64 treeSize,bytes32 rootHash)',
    'operator address (20 bytes) ‖ 12 bytes',
    'vehicleProof',
  ])
    assert.ok(spec.includes(fact), fact)
})
