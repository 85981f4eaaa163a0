#!/usr/bin/env node
/** The `webhook-outbox` command line. */
console.log('webhook-outbox: the CLI and demo are not built yet (see the open issue "CLI, the demo ...").');
