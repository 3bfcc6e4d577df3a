/** Assembles the commander program from one module per subcommand. */
import { Command } from 'commander'
import { VERSION } from '../version.js'
import { keygenCommand } from './keygen.js'
import { daemonCommand } from './daemon.js'
import { statusCommand } from './status.js'
import { peersCommand } from './peers.js'
import { whichCommand } from './which.js'

export function buildProgram (): Command {
  const program = new Command('peerix')
    .description('A peer-to-peer Nix binary cache: a localhost substituter backed by the other hosts\' stores')
    .version(VERSION)
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => { write(`peerix: ${str.replace(/^error: /, '')}`) } })
  program.exitOverride((err) => { process.exit(err.exitCode === 0 ? 0 : 2) })
  program.addCommand(daemonCommand())
  program.addCommand(keygenCommand())
  program.addCommand(statusCommand())
  program.addCommand(peersCommand())
  program.addCommand(whichCommand())
  // addCommand does not pass these on: subcommand errors must read and exit like the rest.
  for (const command of program.commands) command.copyInheritedSettings(program)
  return program
}
