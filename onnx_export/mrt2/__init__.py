"""Magenta RealTime 2 (the 40 ms frame depthformer): checkpoint layout, sizes, graphs, export."""
