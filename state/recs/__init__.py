"""Recommendations: the `Recommender` base class (`base`), one model per file, the hybrid,
live serving, prequential quality, A/B variants and the models by name (`settings`)."""
