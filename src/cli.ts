#!/usr/bin/env -S node --max-semi-space-size=1
/**
 * The `peerix` command. The polyfill comes first: libp2p needs it at import time on Node 20.
 * The shebang's V8 flag is the daemon's (src/daemon/node-flags.ts says why).
 */
import './polyfill.js'
import { buildProgram } from './cli/program.js'

buildProgram().parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`peerix: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
