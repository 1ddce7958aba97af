"""Evaluators by name: ``config.evals`` is the only route from a config to in-loop metrics.

An evaluator is a callable ``evaluator(generate, step) -> {metric: float}`` that the image trainer
runs every ``eval_every`` steps and at the end (``generate(z, labels)`` samples the generator);
its optional ``protocol()`` is recorded in ``summary.json`` under ``protocols``. The registry maps
a name to a factory ``(config) -> evaluator``:

* ``inception`` — FID / KID / IS with pytorch-fid Inception weights (:mod:`.inception`);
* ``digits`` — offline classifier metrics on sklearn digits (:mod:`.digits`);
* ``times`` — the same metrics on the Times-font sets of the small-variance study.

Every evaluator reads the config-wide ``num_eval_samples`` (generated images per evaluation) and
``eval_seed`` (seed of their fixed latent batch). They score images in [−1, 1], the range in which
the trainer's ``generate`` returns them (:func:`lsgan_jax.training.step.make_generate` maps a
sigmoid G there). New evaluators join with :func:`register`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from lsgan_jax.errors import ConfigError

#: An in-loop evaluator: ``(generate, step) -> {metric: value}``.
Evaluator = Callable[[Callable[..., Any], int], dict[str, float]]
#: Builds an evaluator from an experiment config (fails before training when it cannot).
Factory = Callable[[Any], Evaluator]

#: name -> factory. Fill with :func:`register`.
EVALUATORS: dict[str, Factory] = {}

__all__ = ["EVALUATORS", "Evaluator", "Factory", "check_names", "make_evaluators", "register"]


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: ``@register("name")`` adds a factory ``(config) -> evaluator`` to the registry."""

    def deco(factory: Factory) -> Factory:
        if name in EVALUATORS:
            raise ValueError(f"An evaluator named {name!r} is already registered.")
        EVALUATORS[name] = factory
        return factory

    return deco


def check_names(names: Any) -> tuple[str, ...]:
    """``names`` as a tuple; an unknown name is a ConfigError with the closest known name."""
    if isinstance(names, str):
        raise ConfigError(
            f"config.evals must be a tuple of names, got the string {names!r}; write "
            f"--config.evals=\"('{names}',)\"."
        )
    names = tuple(names)
    for name in names:
        if name not in EVALUATORS:
            close = difflib.get_close_matches(str(name), EVALUATORS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown evaluator {name!r} in config.evals.{hint} Known: {sorted(EVALUATORS)}."
            )
    return names


def make_evaluators(config: Any) -> dict[str, Evaluator] | None:
    """The evaluators named in ``config.evals``, built now (None when there are none).

    Built before training, so a missing dataset, a wrong dataset for the evaluator or missing
    Inception weights fail at once.

    Raises:
      ConfigError: an unknown name (with the closest known one) or an unusable config.
    """
    names = check_names(config.get("evals", ()))
    return {name: EVALUATORS[name](config) for name in names} or None


@register("inception")
def _inception(config: Any) -> Evaluator:
    from lsgan_jax.evaluators import inception  # noqa: PLC0415

    return inception.make_inception_evaluator(config)


@register("digits")
def _digits(config: Any) -> Evaluator:
    from lsgan_jax.evaluators import digits  # noqa: PLC0415

    return digits.make_classifier_evaluator(config, "digits")


@register("times")
def _times(config: Any) -> Evaluator:
    from lsgan_jax.evaluators import digits  # noqa: PLC0415

    return digits.make_classifier_evaluator(config, "times")
