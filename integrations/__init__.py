"""lowbit.integrations: data loading, error reports, the CLI (and later PyTorch)."""
