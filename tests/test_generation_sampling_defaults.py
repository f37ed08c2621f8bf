"""One default sampling everywhere a user generates: library, CLI, evaluation, demo and inference handler."""

from __future__ import annotations

import handler
from gigapiano.evaluation.arguments import GigaPianoEvaluationArguments
from gigapiano.evaluation.continuations import SamplingSetup
from gigapiano.generation import GenerationSettings
from gigapiano.generation.arguments import GenerateArguments
from gigapiano.generation.settings import (
    DEFAULT_MOTIF_MEMORY,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    MAX_MOTIF_BOOST,
)


def test_library_cli_and_evaluation_share_the_measured_default():
    assert (DEFAULT_TEMPERATURE, DEFAULT_TOP_P) == (1.0, 1.0)  # docs/sampling.md
    settings = GenerationSettings()
    assert (settings.temperature, settings.top_p) == (DEFAULT_TEMPERATURE, DEFAULT_TOP_P)
    cli = GenerateArguments(style="baroque")
    assert (cli.temperature, cli.top_p) == (DEFAULT_TEMPERATURE, DEFAULT_TOP_P)
    evaluation = GigaPianoEvaluationArguments()
    assert (evaluation.temperature, evaluation.top_p) == (DEFAULT_TEMPERATURE, DEFAULT_TOP_P)
    setup = SamplingSetup()
    assert (setup.temperature, setup.top_p) == (DEFAULT_TEMPERATURE, DEFAULT_TOP_P)


def test_inference_handler_restates_the_library_default():
    # the handler ships alone to an endpoint, so it keeps its own copy of the constants
    assert (handler.DEFAULT_TEMPERATURE, handler.DEFAULT_TOP_P) == (DEFAULT_TEMPERATURE, DEFAULT_TOP_P)
    assert handler.PARAMETERS["temperature"][1] == DEFAULT_TEMPERATURE
    assert handler.PARAMETERS["top_p"][1] == DEFAULT_TOP_P
    assert handler.DEFAULT_MOTIF_MEMORY == handler.PARAMETERS["motif_memory"][1] == DEFAULT_MOTIF_MEMORY
    assert handler.MAX_MOTIF_BOOST == MAX_MOTIF_BOOST
