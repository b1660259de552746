"""The operator UI of the TODO lists: the verdict and the debug admin (dashboard, process map,
list, item and event pages), /health/ and /metrics. It reads the engine (todolists/*.py) and
never the other way round: an import-linter contract in pyproject.toml enforces it."""
