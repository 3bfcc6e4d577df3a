#!/usr/bin/env node
/** The `peerix` command. The polyfill comes first: libp2p needs it at import time on Node 20. */
import './polyfill.js'
import { buildProgram } from './cli/program.js'

buildProgram().parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`peerix: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
