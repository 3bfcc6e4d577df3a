import assert from 'node:assert/strict'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { FormatError } from '../../src/nix/errors.js'
import { formatSha256Base16, formatSha256Sri, parseSha256 } from '../../src/nix/hash.js'
import { formatNarInfo, MAX_NARINFO_BYTES, parseNarInfo, type NarInfo } from '../../src/nix/narinfo.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { parseStorePath } from '../../src/nix/store-path.js'
import { NixEnv, sampleClosureExpr } from '../helpers/nix.js'

const NAR_HASH = 'sha256:1impfw8zdgisxkghq9a3q7cn7jb9zyzgxdydiamp8z2nlyyl0h5h'
const FILE_HASH = 'sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3'
const REF_A = '0d71ygfwbmy1xjlbj1v027dfmy9cqavy-libffi-3.3'
const REF_B = 'p4pclmv1gyja5kzc26npqpia1qqxrf0l-ruby-2.7.3'
const DRV = 'x1pa5ynb0k4gnmmhhdh7cpy0s8jzq3bl-ruby-2.7.3.drv'

/** Every field, in Nix's order. */
const FULL = [
  `StorePath: /nix/store/${REF_B}`,
  'URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz',
  'Compression: xz',
  `FileHash: ${FILE_HASH}`,
  'FileSize: 4029176',
  `NarHash: ${NAR_HASH}`,
  'NarSize: 18735072',
  `References: ${REF_A} ${REF_B}`,
  `Deriver: ${DRV}`,
  'System: x86_64-linux',
  'Sig: cache.nixos.org-1:GrGV/Ls10TzoOaCnrcAqmPbKXFLLSBDeGNh5EQGKyuGA4K1wv1LcRVb6/sU+NAPK8lDiam8XcdJzUngmdhfTBQ==',
  'Sig: peerix-a:tCbTbLWRYh6zpMXAuNWXx1qWbjAs1XpM+/JBB8GqR2r6TtomqdTw4bvZ1MOSmCgSLoaPPuKzJv8TIeZ/HvELDA==',
  'CA: fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h',
  ''
].join('\n')

const FULL_INFO: NarInfo = {
  storePath: `/nix/store/${REF_B}`,
  url: 'nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz',
  compression: 'xz',
  fileHash: FILE_HASH,
  fileSize: 4029176,
  narHash: NAR_HASH,
  narSize: 18735072,
  references: [REF_A, REF_B],
  deriver: DRV,
  system: 'x86_64-linux',
  sigs: [
    'cache.nixos.org-1:GrGV/Ls10TzoOaCnrcAqmPbKXFLLSBDeGNh5EQGKyuGA4K1wv1LcRVb6/sU+NAPK8lDiam8XcdJzUngmdhfTBQ==',
    'peerix-a:tCbTbLWRYh6zpMXAuNWXx1qWbjAs1XpM+/JBB8GqR2r6TtomqdTw4bvZ1MOSmCgSLoaPPuKzJv8TIeZ/HvELDA=='
  ],
  ca: 'fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h'
}

/** The smallest narinfo Nix accepts. */
const MINIMAL = `StorePath: /nix/store/${REF_A}\nURL: nar/x.nar\nNarHash: ${NAR_HASH}\nNarSize: 120\n`

/** FULL with line `n` (1-based) replaced by `line`, or removed when `line` is undefined. */
function withLine (n: number, line?: string): string {
  const lines = FULL.split('\n')
  lines.splice(n - 1, 1, ...(line === undefined ? [] : [line]))
  return lines.join('\n')
}

function throwsFormat (text: string, message: string): void {
  assert.throws(() => parseNarInfo(text), (err: Error) => {
    assert.ok(err instanceof FormatError, `expected a FormatError, got ${String(err)}`)
    assert.equal(err.message, message)
    return true
  })
}

describe('narinfo', () => {
  it('reads every field', () => {
    assert.deepEqual(parseNarInfo(FULL), FULL_INFO)
  })

  it('writes every field in Nix\'s order, and reads back byte for byte', () => {
    assert.equal(formatNarInfo(FULL_INFO), FULL)
    assert.equal(formatNarInfo(parseNarInfo(FULL)), FULL)
  })

  it('reads the smallest narinfo as Nix does: bzip2, no references, no signatures', () => {
    assert.deepEqual(parseNarInfo(MINIMAL), {
      storePath: `/nix/store/${REF_A}`, url: 'nar/x.nar', compression: 'bzip2', narHash: NAR_HASH, narSize: 120, references: [], sigs: []
    })
  })

  it('always writes Compression and References, with "References: " when there are none', () => {
    assert.equal(formatNarInfo({ ...parseNarInfo(MINIMAL), compression: 'none' }),
      `StorePath: /nix/store/${REF_A}\nURL: nar/x.nar\nCompression: none\nNarHash: ${NAR_HASH}\nNarSize: 120\nReferences: \n`)
  })

  it('normalises NarHash and FileHash to sha256:<nix32> from base16 and SRI', () => {
    const digest = parseSha256(NAR_HASH)
    const text = withLine(6, `NarHash: ${formatSha256Sri(digest)}`).replace(`FileHash: ${FILE_HASH}`, `FileHash: ${formatSha256Base16(parseSha256(FILE_HASH))}`)
    assert.deepEqual(parseNarInfo(text), FULL_INFO)
    assert.equal(formatNarInfo({ ...FULL_INFO, narHash: formatSha256Sri(digest) }), FULL)
  })

  it('skips keys it does not know, as Nix does', () => {
    assert.deepEqual(parseNarInfo(MINIMAL + 'Provenance: {"x":1}\nFutureField: anything at all\nFutureField: twice\n'), parseNarInfo(MINIMAL))
  })

  it('reads "Deriver: unknown-deriver" as no deriver, as Nix does', () => {
    assert.equal(parseNarInfo(withLine(9, 'Deriver: unknown-deriver')).deriver, undefined)
  })

  it('rejects malformed lines, naming the line number and content', () => {
    const cases: Array<[string, string]> = [
      [withLine(3, 'Compression:xz'), 'narinfo line 3 "Compression:xz": expected "Key: value"'],
      [withLine(3, 'Compression'), 'narinfo line 3 "Compression": expected "Key: value"'],
      [withLine(3, ''), 'narinfo line 3 "": expected "Key: value"'],
      [withLine(3, ': xz'), 'narinfo line 3 ": xz": expected "Key: value"'],
      [withLine(3, 'Com pression: xz'), 'narinfo line 3 "Com pression: xz": expected "Key: value"'],
      [withLine(2, 'URL: nar/x\r'), 'narinfo line 2 "URL: nar/x\\r": contains a control character'],
      [withLine(2, 'URL: '), 'narinfo line 2 "URL: ": expected a non-empty URL'],
      [withLine(3, 'Compression: x z'), 'narinfo line 3 "Compression: x z": expected a compression method such as none or xz'],
      [FULL.slice(0, -1), 'narinfo line 13 "CA: fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h": the file does not end with a newline'],
      [withLine(1, '/nix/store/x'), 'narinfo line 1 "/nix/store/x": expected "Key: value"']
    ]
    for (const [text, message] of cases) throwsFormat(text, message)
  })

  it('rejects bad store paths, hashes and numbers, naming the line', () => {
    const cases: Array<[string, string]> = [
      [withLine(1, 'StorePath: /nix/store/x'), 'narinfo line 1 "StorePath: /nix/store/x": invalid store path "/nix/store/x": too short for <32-character hash>-<name>'],
      [withLine(1, `StorePath: /nix/store/${REF_A}/bin`), `narinfo line 1 "StorePath: /nix/store/${REF_A}/bin": invalid store path "/nix/store/${REF_A}/bin": names something inside a store path, not the store path itself`],
      [withLine(4, 'FileHash: md5:abc'), 'narinfo line 4 "FileHash: md5:abc": invalid hash "md5:abc": expected sha256:… or sha256-…'],
      [withLine(6, 'NarHash: sha256:1impfw8zdgisxkghq9a3q7cn7jb9zyzgxdydiamp8z2nlyyl0h5'), 'narinfo line 6 "NarHash: sha256:1impfw8zdgisxkghq9a3q7cn7jb9zyzgxdydiamp8z2nlyyl0h5": invalid sha256 hash "sha256:1impfw8zdgisxkghq9a3q7cn7jb9zyzgxdydiamp8z2nlyyl0h5"'],
      [withLine(6, 'NarHash: sha256:eimpfw8zdgisxkghq9a3q7cn7jb9zyzgxdydiamp8z2nlyyl0h5h'), 'narinfo line 6 "NarHash: sha256:eimpfw8zdgisxkghq9a3q7cn7jb9zyzgxdydiamp8z2nlyyl0h5h": invalid nix32 character "e" in "eimpfw8zdgisxkghq9a3q7cn7jb9zyzgxdydiamp8z2nlyyl0h5h"'],
      [withLine(7, 'NarSize: -5'), 'narinfo line 7 "NarSize: -5": not a decimal number without sign or leading zeros'],
      [withLine(7, 'NarSize: 0x10'), 'narinfo line 7 "NarSize: 0x10": not a decimal number without sign or leading zeros'],
      [withLine(7, 'NarSize: 010'), 'narinfo line 7 "NarSize: 010": not a decimal number without sign or leading zeros'],
      [withLine(7, 'NarSize: 1e3'), 'narinfo line 7 "NarSize: 1e3": not a decimal number without sign or leading zeros'],
      [withLine(7, 'NarSize: 12.5'), 'narinfo line 7 "NarSize: 12.5": not a decimal number without sign or leading zeros'],
      [withLine(7, 'NarSize: '), 'narinfo line 7 "NarSize: ": not a decimal number without sign or leading zeros'],
      [withLine(7, 'NarSize: 9007199254740992'), 'narinfo line 7 "NarSize: 9007199254740992": larger than 9007199254740991'],
      [withLine(7, 'NarSize: 0'), 'narinfo line 7 "NarSize: 0": a NAR is never empty (Nix refuses NarSize 0)'],
      [withLine(5, 'FileSize: +1'), 'narinfo line 5 "FileSize: +1": not a decimal number without sign or leading zeros'],
      [withLine(8, `References: ${REF_A}  ${REF_B}`), `narinfo line 8 "References: ${REF_A}  ${REF_B}": references must be separated by single spaces`],
      [withLine(8, `References: ${REF_A} `), `narinfo line 8 "References: ${REF_A} ": references must be separated by single spaces`],
      [withLine(8, `References: ${REF_A} ${REF_A}`), `narinfo line 8 "References: ${REF_A} ${REF_A}": "${REF_A}" is listed twice`],
      [withLine(8, `References: /nix/store/${REF_A}`), `narinfo line 8 "References: /nix/store/${REF_A}": invalid store path base name "/nix/store/${REF_A}": expected <hash>-<name> without a directory`],
      [withLine(9, 'Deriver: x1pa5ynb0k4gnmmhhdh7cpy0s8jzq3bl-a b.drv'), 'narinfo line 9 "Deriver: x1pa5ynb0k4gnmmhhdh7cpy0s8jzq3bl-a b.drv": invalid store path base name "x1pa5ynb0k4gnmmhhdh7cpy0s8jzq3bl-a b.drv": the name contains the illegal character " " (allowed: A-Z a-z 0-9 + - . _ ? =)'],
      [withLine(10, 'System: x86_64 linux'), 'narinfo line 10 "System: x86_64 linux": expected a system such as x86_64-linux'],
      [withLine(11, 'Sig: nocolon'), 'narinfo line 11 "Sig: nocolon": expected <key name>:<base64 of a 64-byte signature>'],
      [withLine(11, 'Sig: :abc'), 'narinfo line 11 "Sig: :abc": expected <key name>:<base64 of a 64-byte signature>'],
      // what makes Nix throw "signature is not valid" under a key it trusts, failing the path
      [withLine(11, 'Sig: cache.nixos.org-1:AAAA'), 'narinfo line 11 "Sig: cache.nixos.org-1:AAAA": expected <key name>:<base64 of a 64-byte signature>'],
      [withLine(13, 'CA: sha256:abc'), 'narinfo line 13 "CA: sha256:abc": expected a content address text:sha256:<hash> or fixed:[r:]<algorithm>:<hash>'],
      // what makes Nix throw "content address hash must be in form '<algo>:<hash>'"
      [withLine(13, 'CA: fixed:garbage'), 'narinfo line 13 "CA: fixed:garbage": expected a content address text:sha256:<hash> or fixed:[r:]<algorithm>:<hash>'],
      [withLine(13, 'CA: fixed:r:sha256:abc'), 'narinfo line 13 "CA: fixed:r:sha256:abc": the sha256 hash of the content address is not base16, nix32 or base64 of 32 bytes']
    ]
    for (const [text, message] of cases) throwsFormat(text, message)
  })

  it('rejects a repeated single-valued key, naming the second line; Sig may repeat', () => {
    throwsFormat(FULL + 'URL: nar/other.nar\n', 'narinfo line 14 "URL: nar/other.nar": URL appears more than once')
    throwsFormat(FULL + 'References: \n', 'narinfo line 14 "References: ": References appears more than once')
    throwsFormat(FULL + 'NarHash: ' + NAR_HASH + '\n', `narinfo line 14 "NarHash: ${NAR_HASH}": NarHash appears more than once`)
    assert.equal(parseNarInfo(FULL + 'Sig: third:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n').sigs.length, 3)
  })

  it('rejects a narinfo missing a required field, naming it', () => {
    for (const [n, key] of [[1, 'StorePath'], [2, 'URL'], [6, 'NarHash'], [7, 'NarSize']] as const) {
      throwsFormat(withLine(n), `narinfo has no ${key} line`)
    }
    throwsFormat('', 'narinfo has no StorePath line')
  })

  it('rejects input over the size limit before reading it', () => {
    const big = MINIMAL + `X: ${'a'.repeat(MAX_NARINFO_BYTES)}\n`
    throwsFormat(big, `narinfo is ${Buffer.byteLength(big)} bytes, more than the limit of ${MAX_NARINFO_BYTES}`)
  })

  it('cuts long lines short in error messages', () => {
    assert.throws(() => parseNarInfo(withLine(2, 'URL ' + 'x'.repeat(5000))), (err: Error) => err.message.length < 300 && err.message.startsWith('narinfo line 2 "URL xxx') && err.message.includes('…'))
  })

  it('refuses to write a narinfo that would not read back, naming the field', () => {
    const cases: Array<[Partial<NarInfo>, string]> = [
      [{ url: 'nar/x\nSig: forged:abc' }, 'cannot write narinfo: URL "nar/x\\nSig: forged:abc": contains a control character'],
      [{ storePath: '/nix/store/bad' }, 'cannot write narinfo: StorePath "/nix/store/bad": invalid store path "/nix/store/bad": too short for <32-character hash>-<name>'],
      [{ narSize: -1 }, 'cannot write narinfo: NarSize "-1": not a decimal number without sign or leading zeros'],
      [{ narSize: 0 }, 'cannot write narinfo: NarSize "0": a NAR is never empty (Nix refuses NarSize 0)'],
      [{ fileSize: 1.5 }, 'cannot write narinfo: FileSize "1.5": not a decimal number without sign or leading zeros'],
      [{ narHash: 'sha256:zzz' }, 'cannot write narinfo: NarHash: invalid sha256 hash "sha256:zzz"'],
      [{ references: [REF_A, 'bad'] }, `cannot write narinfo: References "${REF_A} bad": invalid store path base name "bad": too short for <32-character hash>-<name>`],
      [{ sigs: ['no-colon'] }, 'cannot write narinfo: Sig "no-colon": expected <key name>:<base64 of a 64-byte signature>'],
      [{ compression: '' }, 'cannot write narinfo: Compression "": expected a compression method such as none or xz']
    ]
    for (const [change, message] of cases) {
      assert.throws(() => formatNarInfo({ ...FULL_INFO, ...change }), { name: 'FormatError', message })
    }
  })

  describe('on arbitrary input (property)', () => {
    /** Parsing either fails with a FormatError or yields a narinfo that writes and reads back. */
    function checkTotal (text: string): void {
      let info: NarInfo
      try {
        info = parseNarInfo(text)
      } catch (err) {
        if (err instanceof FormatError) return
        throw err
      }
      assert.deepEqual(parseNarInfo(formatNarInfo(info)), info)
    }

    it('throws nothing but FormatError on arbitrary strings', () => {
      const keys = fc.constantFrom('StorePath', 'URL', 'Compression', 'FileHash', 'FileSize', 'NarHash', 'NarSize', 'References', 'Deriver', 'System', 'Sig', 'CA', 'constructor', '__proto__', 'toString', 'X')
      const line = fc.tuple(keys, fc.string({ unit: 'binary', maxLength: 60 })).map(([k, v]) => `${k}: ${v}\n`)
      fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), fc.array(line, { maxLength: 15 }).map(ls => ls.join(''))), checkTotal),
        { seed: 4242, numRuns: 2000 })
    })

    it('throws nothing but FormatError on mutations of a valid narinfo', () => {
      const edit = fc.oneof(
        fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 20 }) }),
        fc.record({ op: fc.constant('insert' as const), at: fc.nat(), text: fc.string({ unit: 'binary', maxLength: 10 }) }),
        fc.record({ op: fc.constant('duplicateLine' as const), at: fc.nat() }),
        fc.record({ op: fc.constant('swapLines' as const), at: fc.nat(), with: fc.nat() })
      )
      fc.assert(fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), edits => {
        let text = FULL
        for (const e of edits) {
          const lines = text.split('\n')
          if (e.op === 'delete') { const at = e.at % (text.length + 1); text = text.slice(0, at) + text.slice(at + e.length) }
          if (e.op === 'insert') { const at = e.at % (text.length + 1); text = text.slice(0, at) + e.text + text.slice(at) }
          if (e.op === 'duplicateLine') { const at = e.at % lines.length; lines.splice(at, 0, lines[at]); text = lines.join('\n') }
          if (e.op === 'swapLines') {
            const a = e.at % lines.length
            const b = e.with % lines.length
            const saved = lines[a]
            lines[a] = lines[b]
            lines[b] = saved
            text = lines.join('\n')
          }
        }
        checkTotal(text)
      }), { seed: 4243, numRuns: 2000 })
    })
  })

  describe('against real Nix', function () {
    this.timeout(120_000)
    let nix: NixEnv
    let cache: string
    let pathInfos: Array<{ path: string, narHash: string, narSize: number, references: string[], deriver?: string, signatures?: string[], ca?: string }>
    let narinfoFiles: string[]

    before(async () => {
      nix = await NixEnv.create()
      const root = nix.storeRoot('host')
      const [top] = await nix.build(root, sampleClosureExpr('narinfo'))
      // Content-addressed paths, so that CA lines (flat and recursive) appear too.
      await writeFile(join(nix.dir, 'flat-file'), 'flat\n')
      const flat = (await nix.run('nix-store', ['--store', root, '--add-fixed', 'sha256', join(nix.dir, 'flat-file')])).stdout.trim()
      const recursive = (await nix.run('nix-store', ['--store', root, '--add', join(nix.dir, 'flat-file')])).stdout.trim()
      const paths = [top, flat, recursive]
      const key = await nix.generateKey('peerix-test-1')
      await nix.run('nix', ['store', 'sign', '--store', root, '--key-file', key.secretFile, '-r', ...paths])
      cache = join(nix.dir, 'cache')
      await nix.run('nix', ['copy', '--store', root, '--to', `file://${cache}?compression=none`, ...paths])
      pathInfos = JSON.parse((await nix.run('nix', ['path-info', '--json', '--store', root, '-r', ...paths])).stdout)
      narinfoFiles = (await readdir(cache)).filter(f => f.endsWith('.narinfo'))
    })
    after(async () => { await nix?.cleanup() })

    it('finds one narinfo per path of the closure, named by its hash part', () => {
      assert.equal(pathInfos.length, 5)
      assert.deepEqual(narinfoFiles.map(f => f.slice(0, -'.narinfo'.length)).sort(), pathInfos.map(p => parseStorePath(p.path).hashPart).sort())
    })

    it('reads each narinfo Nix wrote to what `nix path-info --json` reports', async () => {
      for (const file of narinfoFiles) {
        const info = parseNarInfo(await readFile(join(cache, file), 'utf8'))
        const expected = pathInfos.find(p => p.path === info.storePath)
        assert.ok(expected !== undefined, `${info.storePath} is not in nix path-info`)
        assert.equal(`${parseStorePath(info.storePath).hashPart}.narinfo`, file)
        assert.deepEqual(parseSha256(info.narHash), parseSha256(expected.narHash))
        assert.equal(info.narSize, expected.narSize)
        assert.deepEqual(info.references, expected.references.map(r => parseStorePath(r).path.slice('/nix/store/'.length)))
        assert.equal(info.deriver, expected.deriver === undefined ? undefined : expected.deriver.slice('/nix/store/'.length))
        assert.deepEqual(info.sigs, expected.signatures ?? [])
        assert.ok(info.sigs.some(s => s.startsWith('peerix-test-1:')))
        assert.equal(info.ca, expected.ca)
        assert.equal(info.compression, 'none')
        // An uncompressed file cache stores the NAR itself: same hash and size.
        assert.equal(info.fileHash, info.narHash)
        assert.equal(info.fileSize, info.narSize)
        assert.equal(info.url, `nar/${info.narHash.slice('sha256:'.length)}.nar`)
      }
      assert.ok(pathInfos.some(p => p.ca?.startsWith('fixed:r:sha256:') === true) && pathInfos.some(p => p.ca?.startsWith('fixed:sha256:') === true))
      assert.ok(pathInfos.some(p => p.references.length === 2 && p.deriver !== undefined))
    })

    it('writes each narinfo byte for byte as Nix did, from the parse and from path-info alone', async () => {
      for (const file of narinfoFiles) {
        const text = await readFile(join(cache, file), 'utf8')
        assert.equal(formatNarInfo(parseNarInfo(text)), text)

        const p = pathInfos.find(p => `${parseStorePath(p.path).hashPart}.narinfo` === file)
        assert.ok(p !== undefined)
        const narHash = `sha256:${toNix32(parseSha256(p.narHash))}`
        const fromPathInfo: NarInfo = {
          storePath: p.path,
          url: `nar/${narHash.slice('sha256:'.length)}.nar`,
          compression: 'none',
          fileHash: narHash,
          fileSize: p.narSize,
          narHash,
          narSize: p.narSize,
          references: p.references.map(r => r.slice('/nix/store/'.length)),
          ...(p.deriver !== undefined && { deriver: p.deriver.slice('/nix/store/'.length) }),
          sigs: p.signatures ?? [],
          ...(p.ca !== undefined && { ca: p.ca })
        }
        assert.equal(formatNarInfo(fromPathInfo), text)
      }
    })
  })
})
