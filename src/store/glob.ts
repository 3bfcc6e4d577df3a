/**
 * Shell-style globs (`*`, `?`, `[…]`) over store path names, for `--serve-deny`. Case does not
 * count (`*secret*` denies `MySecret`): a deny list errs on the side of serving less.
 */
import { FormatError } from '../nix/errors.js'

export function globToRegExp (glob: string): RegExp {
  if (glob === '' || glob.length > 256) throw new FormatError(`invalid glob ${JSON.stringify(glob)}: must be 1 to 256 characters`)
  let re = '^'
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]
    if (c === '*') re += '.*'
    else if (c === '?') re += '.'
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2)
      if (end < 0) throw new FormatError(`invalid glob ${JSON.stringify(glob)}: '[' without a closing ']'`)
      let body = glob.slice(i + 1, end)
      if (body.startsWith('!')) body = '^' + body.slice(1)
      re += `[${body.replace(/[\\\]]/g, '\\$&')}]`
      i = end
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&')
  }
  return new RegExp(re + '$', 'i')
}
