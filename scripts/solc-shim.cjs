#!/usr/bin/env node
// A solc executable for forge, over solc-js (npm `solc`): no native solc can be
// downloaded here. forge only needs `--version` and `--standard-json` (stdin → stdout).
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const solc = require('solc')

const args = process.argv.slice(2)
if (args.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`)
} else if (args.includes('--standard-json')) {
  const chunks = []
  process.stdin.on('data', (chunk) => chunks.push(chunk))
  process.stdin.on('end', () => {
    const input = Buffer.concat(chunks).toString('utf8')
    // forge sends the project's sources; libraries under ../node_modules are read on demand,
    // relative to forge's working directory (the Foundry project root).
    const findImports = (importPath) => {
      try {
        return { contents: fs.readFileSync(path.resolve(process.cwd(), importPath), 'utf8') }
      } catch (error) {
        return { error: `solc-shim: cannot read ${importPath}: ${error.message}` }
      }
    }
    process.stdout.write(solc.compile(input, { import: findImports }))
  })
} else {
  process.stderr.write('solc-shim: only --version and --standard-json are supported\n')
  process.exit(2)
}
