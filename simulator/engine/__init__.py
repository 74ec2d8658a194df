"""Running graphs: the compiled Program, StepEvents and the replayable Trace, gradient checks, evaluate()."""
