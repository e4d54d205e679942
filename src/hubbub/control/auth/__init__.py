"""Tokens, the Director and JWT enforcement.

patterns.py  stream patterns (exact, `*` wildcard, anchored regex) and origin / IP rules
keys.py      the node's ES256 signing key (data dir) and its JWK set
jwts.py      issue and verify the short-lived, stream-bound JWTs (RFC 8725)
schema.py    token table and the versioned migrations run at startup
store.py     TokenStore: create/list/get/update/revoke/delete, lookup by secret hash
datadir.py   first-start setup of the data dir and the admin API secret
service.py   Auth: everything above wired together for one node
api.py       FastAPI router: /api/publish_token, /api/subscribe_token (admin secret)
director.py  FastAPI router: /api/director/publish|subscribe and the JWK set
http.py      Millicast-shaped replies, body size limit, CORS for browser-facing paths
gate.py      the WebSocket check: ?token=, audience, Origin, client IP
"""
