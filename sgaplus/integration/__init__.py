"""Refinement inside programs written for a model: sgaplus.patch (a model's own compress refines) and
`sgaplus run` (another program run with every CompressionModel's compress refined)."""
