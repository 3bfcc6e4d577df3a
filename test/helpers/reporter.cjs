// The spec reporter, plus one plain closing line ("tests: N passed, N failed, N skipped")
// that CI reads whatever the runner.
const Mocha = require('mocha')
const { Spec } = Mocha.reporters
const { EVENT_RUN_END } = Mocha.Runner.constants

class PeerixReporter extends Spec {
  constructor (runner, options) {
    super(runner, options)
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats
      process.stdout.write(`tests: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`)
    })
  }
}
module.exports = PeerixReporter
