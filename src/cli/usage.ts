import { NAME } from './cli-io.js'
import { SASL_PASSWORD_ENV, SASL_USERNAME_ENV } from './sasl-flags.js'
import { SECRET_ENV } from './secret-flags.js'

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

SASL (memcached started with -S): every command authenticates as
--sasl-username <name> with the password in --sasl-password-file <path>, or else
as ${SASL_USERNAME_ENV} with ${SASL_PASSWORD_ENV}
from the environment (set both or neither). No flag takes the password itself:
it would show in ps.

Signed values: every command signs and verifies with the processes' secrets,
from --secret-file <path> (one per line, current first), or else ${SECRET_ENV}.
`
