/** `GET /nix-cache-info`: what Nix reads first to accept a URL as a binary cache. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { sendText } from './respond.js'

export function serveCacheInfo (req: IncomingMessage, res: ServerResponse, storeDir: string, priority: number): void {
  // WantMassQuery: Nix may ask for many narinfos at once (nix copy of a closure, `nix path-info`).
  sendText(req, res, 200, `StoreDir: ${storeDir}\nWantMassQuery: 1\nPriority: ${priority}\n`, {}, 'text/x-nix-cache-info')
}
