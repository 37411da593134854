"""shadowlab: prove an LLM model switch is safe before cutover."""

__version__ = "0.1.0"
