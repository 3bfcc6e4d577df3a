/** The peerix version, announced as `peerix/<version>` in identify and shown by `--version`. */
export const VERSION = '0.1.0'
