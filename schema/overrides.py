"""Overrides of params keys, as `dvc exp run -S` sets them: `--set KEY=VALUE` on every flow's command
line, and the `overrides` ({"dotted.key": value}) of every flow and deployment."""

import yaml


def parse(text):
    """("dotted.key", value) of a `--set dotted.key=value`, the value read as YAML."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise ValueError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.configurations.edm.steps=500")
    return key, yaml.safe_load(value)


def apply(raw, overrides, source):
    """The raw params `raw` with each `overrides` key "a.b.c" set (raw["a"]["b"]["c"] = value),
    creating sections that are absent."""
    for key, value in overrides.items():
        *sections, last = key.split(".")
        node = raw
        for depth, part in enumerate(sections):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{source}: override {key}={value!r}: {'.'.join(sections[: depth + 1])} is not a section (got {node!r})")
        node[last] = value
    return raw
