/**
 * Everything the CLI's base command needs to reach a node, in one module: the build bundles it with
 * its whole libp2p graph into `dist/client/bundle.js` (see `bundle:client` in package.json), which a
 * client command loads as one file instead of some 700 modules. Add here only what client commands
 * use; node-side code must stay out of it.
 */
export { DfsClient, resolveNode } from './index.js'
export { loadIdentityKey, peerIdString } from '../net/keys.js'
