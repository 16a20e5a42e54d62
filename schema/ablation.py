"""An ablation as params.yaml declares it (Karras et al. 2022, Table 2): a configuration that names a
`parent` takes every setting it does not give from it (recursively), and differs from it in exactly
the axes it `varies`; the report groups configurations by (parent, varied axes). Where a
configuration sits in the study (`DESIGN`) is not what it computes."""

from models.options import refuse

DESIGN = frozenset({"parent", "varies", "grid"})  # where a configuration sits in the study; not what it computes


def inherited(configurations, name, seen=()):
    """The raw settings of configuration `name` with those it does not give taken from its parent's
    (recursively, but for `DESIGN`); an unknown parent or a cycle is refused with its key path."""
    given = configurations[name]
    parent = given.get("parent")
    if parent is None:
        return given
    at = ("configurations", name, "parent")
    if parent not in configurations or not isinstance(configurations[parent], dict):
        why = f"configuration {name!r} names parent {parent!r}, which is not a configuration; allowed: {sorted(configurations)}"
        refuse([(at, parent, why)])
    if parent in seen + (name,):
        refuse([(at, parent, f"configuration {name!r}: parents form a cycle {' -> '.join((*seen, name, parent))}; allowed: a tree")])
    own = {key: value for key, value in inherited(configurations, parent, seen + (name,)).items() if key not in DESIGN}
    return {**own, **given}


def ablation_problems(configurations, varied):
    """(key path, value, message) of each validated configuration (name -> `schema.study.Configuration`)
    that varies something without a parent, has a parent but no `varies`, or differs from its parent
    in other settings than those it varies; `varied`: what an ablation may vary."""
    for name, config in configurations.items():
        at = ("configurations", name, "varies")
        if config.parent is None:
            if config.varies:
                yield at, config.varies, f"configuration {name!r} varies {config.varies} but has no parent"
            continue
        if not config.varies:
            why = f"allowed: the axes it changes from {config.parent!r}, from {list(varied)}"
            yield at, None, f"configuration {name!r} has a parent but does not say which axis it varies; {why}"
            continue
        differences = config.differences(configurations[config.parent])
        if differences != set(config.varies):
            also = sorted(differences - set(config.varies))
            same = sorted(set(config.varies) - differences)
            why = "; ".join([f"it also changes {also}" for _ in also[:1]] + [f"it has the parent's {same}" for _ in same[:1]])
            message = f"configuration {name!r} must differ from its parent {config.parent!r} in exactly {config.varies}: {why}"
            yield ("configurations", name), config.varies, message


def ablations(configurations):
    """(parent, varied axes) -> the parent and the configurations that vary those axes from it, in params order."""
    groups = {}
    for config in configurations.values():
        if config.parent is not None:
            groups.setdefault((config.parent, tuple(config.varies)), [config.parent]).append(config.name)
    return groups
