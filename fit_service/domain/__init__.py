"""Pure domain core: instruments, scoring, statistics, trajectories and risk rules.

Imports only the standard library and numpy; an import-linter contract holds this in CI.
"""
