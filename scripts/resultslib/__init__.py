"""The parts of scripts/results_readme.py, which regenerates README.md's "Results so far"
section from the committed runs in docs/results/ (see its docstring for what each kind reads):

    common   ResultsError, formatting (numbers, ranges, sizes, wrapping) and file readers
    extract  the extractors: a kind's result files -> a plain dict of figures (unrounded)
    render   the renderers: a manifest entry -> the section's markdown lines (RENDERERS)
"""
