"""The math without graphs: cs231n layer functions (*_forward -> (out, cache), *_backward), torch.optim's optimizers and learning-rate schedules, on the Numba kernels."""
