"""Networks: layer records, Network, Trainer, weights files and the PyTorch export."""
