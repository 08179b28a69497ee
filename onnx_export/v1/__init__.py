"""Magenta RT v1 (the 2-second chunk model): constants, checkpoints, synthetic weights, ONNX export."""
