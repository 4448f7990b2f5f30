"""Converters from peer checkpoint layouts into the engine's model directory.

Entry point: tools/convert.py (see docs/converters.md). Python callers can use
`convert.cli.main([...argv...])`, which returns the exit status.
"""
