"""Native kernels that ONNX Runtime runs as custom operators.

The C sources beside this module build into one shared library with the system C compiler
(``build.library``); ``rows_matmul`` puts its operator into a graph's int8 MatMuls where it is
faster than ORT's own kernel and computes the same (exact) sums.
"""
