"""Segments: the online clusterer and its stable numbers, names, quality and re-fits; RFM
tiers, rule segments, segments that age, and the event-time order they learn in."""
