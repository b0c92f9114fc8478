"""One user's state: the event schema, sessions, windows, RFM, interests and context."""
