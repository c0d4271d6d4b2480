"""AudioHook Monitor: Genesys Cloud streams a call's audio to us; we recognise and score what is said.

`signature` (upgrade authentication) and `protocol` (the session state machine) are pure: fed
headers, frames and `now`, they return verdicts and actions. `segment` cuts speech per channel,
`engines` recognise it, `workers` runs both in worker processes, and `server` is the asyncio shell
mounted on the exporter's web listener at `/audiohook`.
"""
