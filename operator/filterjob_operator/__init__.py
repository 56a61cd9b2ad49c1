"""FilterJob control plane: the FilterJob API model, source planning, runners and CLI."""
