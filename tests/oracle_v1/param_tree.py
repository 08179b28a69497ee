"""Print upstream v1's parameter tree (t5x path, shape) for a size, from the model's own init.

Runs in the v1 oracle env (scripts/setup_v1_oracle.sh). Uses ``jax.eval_shape``, so no
weights are allocated even for base/large. Output: one ``key<TAB>(shape)`` line per
parameter, sorted, the format of tests/data/v1/param_tree_<size>.tsv.

    .venv-v1-oracle/bin/python tests/oracle_v1/param_tree.py tiny > tests/data/v1/param_tree_tiny.tsv
"""

from __future__ import annotations

import sys

from _common import parse_gin, quiet_logs


def main() -> None:
    quiet_logs()
    import jax
    from flax import traverse_util

    from onnx_export.v1 import config as v1

    size = v1.get_size(sys.argv[1] if len(sys.argv) > 1 else "tiny")
    model, lengths = parse_gin(size)
    shapes = {
        "encoder_input_tokens": (2, lengths["inputs"]),
        "decoder_input_tokens": (2, lengths["targets"]),
    }
    variables = jax.eval_shape(lambda: model.get_initial_variables(jax.random.PRNGKey(0), shapes))
    for key, leaf in sorted(traverse_util.flatten_dict(variables["params"]).items()):
        print("/".join(key) + "\t" + str(tuple(leaf.shape)))


if __name__ == "__main__":
    main()
