"""Communicating nodes: decentralized training by sharing labels, logits or
features (Lacaille 2018, chapter 2), simulated in one process or run as real
processes over torch.distributed. See docs/results/nodes.md."""
