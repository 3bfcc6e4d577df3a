/**
 * zstd on a slow link, through real parts: two daemons in network namespaces, A's side of the
 * link limited to 40 Mbit/s (tc tbf), and the real Nix client substituting a compressible
 * path through B's shim with `--wire-compression zstd`. Nix gets the path with A's signature
 * intact, and fewer bytes crossed the link than the NAR has (B's libp2p metrics and log).
 */
import assert from 'node:assert/strict'
import { NixEnv } from '../helpers/nix.js'
import { Lab } from '../helpers/netns.js'
import { LabDaemons } from '../helpers/daemon.js'

/** ~10 MB of text in one file: compresses several times over. */
const COMPRESSIBLE = `
builtins.derivation {
  name = "compressible";
  builder = "/bin/sh";
  args = [ "-c" "mkdir $out; seq -f 'line %g of a text file that compresses well' 1 250000 > $out/lines" ];
  system = builtins.currentSystem;
  PATH = "/bin:/usr/bin";
}
`

describe('zstd on a 40 Mbit/s link (two hosts in network namespaces, real Nix client)', function () {
  this.timeout(180_000)
  let nix: NixEnv
  let lab: Lab
  const daemons = new LabDaemons()

  before(async () => {
    nix = await NixEnv.create()
    lab = await Lab.create(2)
  })

  after(async () => {
    await daemons.stopAll()
    await lab?.cleanup()
    await nix?.cleanup()
  })

  it('substitutes the path through B with fewer bytes on the wire than its NAR', async () => {
    const [hostA, hostB] = lab.hosts
    const rootA = nix.storeRoot('hostA')
    const [path] = await nix.build(rootA, COMPRESSIBLE)
    const narSize = Number((await nix.run('nix-store', ['--store', rootA, '-q', '--size', path])).stdout.trim())
    assert.ok(narSize > 8_000_000, `NarSize ${narSize}`)
    const { secretFile: skA, publicKey: pkA } = await nix.generateKey('hostA-1')

    // A sends, so its egress is the slow side of the link
    await lab.exec(hostA, 'tc', ['qdisc', 'add', 'dev', hostA.dev, 'root', 'tbf', 'rate', '40mbit', 'burst', '64kbit', 'latency', '50ms'])
    await daemons.start(lab, hostA, nix, ['--store-root', rootA, '--signing-key-file', skA, '--serve', 'all', '--no-mdns'])
    const b = await daemons.start(lab, hostB, nix, ['--store-root', await nix.initStore('hostB'), '--trusted-public-keys', pkA,
      '--no-mdns', '--peer', `/ip4/${hostA.ip}/tcp/12305`, '--wire-compression', 'zstd'])
    await b.waitFor(/peer found/)

    const dest = nix.storeRoot('client')
    await lab.exec(hostB, 'nix', ['copy', '--from', b.url, '--to', dest, path, '--option', 'trusted-public-keys', pkA], { env: nix.env })
    await nix.run('nix', ['store', 'verify', '--store', dest, '--trusted-public-keys', pkA, path])

    const logged = /nar \w+: (\d+) bytes from peer \S+ took (\d+) on the wire \(asked for zstd, got zstd\)/.exec(await b.waitFor(/on the wire \(asked for zstd/))
    assert.equal(Number(logged?.[1]), narSize)
    assert.ok(Number(logged?.[2]) < narSize / 2, `B logged ${logged?.[2]} wire bytes for a NAR of ${narSize}`)

    const metrics = (await lab.exec(hostB, 'curl', ['-sf', `${b.url}/metrics`])).stdout
    const received = /^libp2p_data_transfer_bytes_total\{protocol="\/peerix\/nar\/1 received"\} (\d+)/m.exec(metrics)
    assert.ok(received !== null, 'no /peerix/nar/1 received series in B\'s /metrics')
    assert.ok(Number(received[1]) < narSize / 2, `${received[1]} bytes of /peerix/nar/1 arrived for a NAR of ${narSize}`)
  })
})
