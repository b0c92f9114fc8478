"""Everything that talks to Redis: the stream source, the sink and its scripts, the key
schema, routing, retries, the control stream, dead letters, erasure and permissions."""
