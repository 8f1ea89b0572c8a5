"""Weights of the SNAP S2-Toolbox biophysical neural networks, as used by Sen4CAP's L3B.

See README.md in this folder for the source and licence; :mod:`capmon.signals.biophysical`
parses and evaluates them.
"""
