"""Dataset files as input: the replay source and the readers (adapters) for each format."""
