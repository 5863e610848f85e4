import { NAME } from './cli-io.js'

/** What `kysely-memcache --help` prints, and what a bare `kysely-memcache` prints on stderr. */
export const USAGE = `Usage: ${NAME} <command> [options]

Commands:
  monitor   probe every memcached node each interval and publish the tier's mode;
            optionally warm returning nodes and keep a warm-up manifest
  mode      force the mode (degraded | normal) for a while, or give it back (auto)
  status    show each node, the published mode, any warm-up and the farm-wide hit ratio
  export    write a warm-up manifest of the farm's most valuable queries
  warmup    replay a warm-up manifest into memcached, read-only, with progress

Run "${NAME} <command> --help" for a command's options.
`
