#!/usr/bin/env node
// The installed `carchain` binary. Node 24 runs the TypeScript sources directly; an older Node
// (the system's, outside npm scripts) cannot, so say what to do instead of failing obscurely.
const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  process.stderr.write(
    `error CONFIG_INVALID: carchain needs Node.js 24 or newer (this is ${process.version}); ` +
      'run it through npm (npm run carchain -- …) or npx carchain, which use the pinned Node 24\n',
  )
  process.exit(1)
}
const { main } = await import('../src/cli/main.ts')
await main()
