/**
 * A value from outside (a narinfo, a key, a store path, a frame) that does not have the form
 * it must have. The message names the value and what is wrong with it.
 */
export class FormatError extends Error {
  override name = 'FormatError'
}
