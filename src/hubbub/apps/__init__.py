"""Applications built on the platform as ordinary clients (Director + WebSocket protocol)."""
